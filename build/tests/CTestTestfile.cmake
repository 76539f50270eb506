# CMake generated Testfile for 
# Source directory: /work/main/tests
# Build directory: /work/main/build/tests
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
add_test([=[child_env_test]=] "/work/main/build/bin/child_env_test")
set_tests_properties([=[child_env_test]=] PROPERTIES  LABELS "unit" TIMEOUT "300" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;20;add_test;/work/main/tests/CMakeLists.txt;25;kz_add_tests;/work/main/tests/CMakeLists.txt;0;")
add_test([=[config_test]=] "/work/main/build/bin/config_test")
set_tests_properties([=[config_test]=] PROPERTIES  LABELS "unit" TIMEOUT "300" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;20;add_test;/work/main/tests/CMakeLists.txt;25;kz_add_tests;/work/main/tests/CMakeLists.txt;0;")
add_test([=[test_canary]=] "/usr/bin/python3" "-m" "unittest" "-v" "test_canary")
set_tests_properties([=[test_canary]=] PROPERTIES  ENVIRONMENT "KZ_BIN=/work/main/build/bin/kz" LABELS "integration" TIMEOUT "600" WORKING_DIRECTORY "/work/main/tests/integration" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;43;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test([=[test_run_cli]=] "/usr/bin/python3" "-m" "unittest" "-v" "test_run_cli")
set_tests_properties([=[test_run_cli]=] PROPERTIES  ENVIRONMENT "KZ_BIN=/work/main/build/bin/kz" LABELS "integration" TIMEOUT "600" WORKING_DIRECTORY "/work/main/tests/integration" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;43;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test([=[test_run_pty]=] "/usr/bin/python3" "-m" "unittest" "-v" "test_run_pty")
set_tests_properties([=[test_run_pty]=] PROPERTIES  ENVIRONMENT "KZ_BIN=/work/main/build/bin/kz" LABELS "integration" TIMEOUT "600" WORKING_DIRECTORY "/work/main/tests/integration" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;43;add_test;/work/main/tests/CMakeLists.txt;0;")
