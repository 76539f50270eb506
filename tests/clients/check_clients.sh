#!/usr/bin/env bash
# Checks the real client programs of the blind-mode end-to-end tests against a local TLS
# API, without kz: each one must reach tests/servers/echo_api.py when it trusts the test
# CA through the variables kz sets for redirected programs, and must fail when it does
# not (proof that it verifies certificates and has no trust of its own for the CA).
#
#   tests/clients/check_clients.sh [OUT_DIR]      (default: a temporary directory,
#                                                  removed at the end)
#
# Trust comes from kz's own TrustBundles::write (OUT_DIR/write_trust_bundles) with the
# test CA as the "run CA": SSL_CERT_FILE for the Go and static OpenSSL clients,
# NODE_EXTRA_CA_CERTS for node, the PKCS#12 trust store in JAVA_TOOL_OPTIONS for Java.
# The server offers ALPN http/1.1 only, as kz's fallback proxy does (Go and Java offer
# h2 first; echo_api would pick it and then hang up, since it only speaks HTTP/1.1).
#
# Not run by ctest: for humans and for wiring the clients into the integration tests.
# Prints one PASS/FAIL/SKIP line per check; exits 1 if anything failed.
set -uo pipefail
src=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$src/../.." && pwd)
temp_out=
if [ $# -ge 1 ]; then
  out=$1
  mkdir -p "$out"
else
  out=$(mktemp -d /tmp/kz-clients-XXXXXX)
  temp_out=$out
fi
out=$(cd "$out" && pwd)
work=$(mktemp -d /tmp/kz-check-clients-XXXXXX)
server_pid=
cleanup() {
  exec 3>&- 2>/dev/null   # closing the server's stdin stops it
  [ -n "$server_pid" ] && wait "$server_pid" 2>/dev/null
  rm -rf "$work" ${temp_out:+"$temp_out"}
}
trap cleanup EXIT

"$src/build_clients.sh" "$out" || { echo "FAIL: build_clients.sh"; exit 1; }

"$root/tests/support/make_test_ca.sh" "$work/ca" || { echo "FAIL: make_test_ca.sh"; exit 1; }
py=/usr/bin/python3
[ -x "$py" ] || py=python3
mkfifo "$work/server.in"
"$py" "$root/tests/servers/echo_api.py" --cert "$work/ca/server.pem" --key "$work/ca/server.key" \
  --alpn http/1.1 --record "$work/record.jsonl" <"$work/server.in" >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
exec 3>"$work/server.in"
port=
for _ in $(seq 100); do
  port=$(sed -n 's/^PORT \([0-9]*\)$/\1/p' "$work/server.out")
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { echo "FAIL: echo_api did not start"; cat "$work/server.err"; exit 1; }
echo "echo_api on port $port"

# The run's trust files, made by kz's code from a parent environment without any trust
# variables (so the bundles are the system bundle + the CA).
mkdir -m 0700 "$work/trust"
trust_env=()
if [ -x "$out/write_trust_bundles" ]; then
  if vars=$(env -u SSL_CERT_FILE -u NODE_EXTRA_CA_CERTS -u REQUESTS_CA_BUNDLE -u CURL_CA_BUNDLE -u JAVA_TOOL_OPTIONS \
      "$out/write_trust_bundles" "$work/trust" "$work/ca/ca.pem"); then
    while IFS= read -r line; do trust_env+=("$line"); done <<<"$vars"
  else
    echo "FAIL: write_trust_bundles"
    exit 1
  fi
fi
trust_var() {   # the value write_trust_bundles gave NAME
  local kv
  for kv in "${trust_env[@]}"; do [ "${kv%%=*}" = "$1" ] && { echo "${kv#*=}"; return; }; done
}

failures=0
export KZ_CHECK_KEY="kz-check-value-0123456789"
base_env=(env -u SSL_CERT_FILE -u SSL_CERT_DIR -u NODE_EXTRA_CA_CERTS -u JAVA_TOOL_OPTIONS
          -u HTTPS_PROXY -u https_proxy -u HTTP_PROXY -u http_proxy -u ALL_PROXY -u all_proxy)

# check NAME TRUST_VAR_ASSIGNMENT|"" CMD...: with trust: an HTTP answer that shows the
# credential arrived (GET /echo), a POST body, a non-2xx status still exiting 0;
# without trust: a non-zero exit (TLS failure).
check() {
  local name=$1 trust=$2
  shift 2
  local url="https://localhost:$port"
  local o rc
  o=$("${base_env[@]}" "$trust" "$@" "$url/echo" KZ_CHECK_KEY 2>"$work/err"); rc=$?
  if [ $rc -eq 0 ] && grep -q '^status 200$' <<<"$o" && grep -q "Bearer $KZ_CHECK_KEY" <<<"$o"; then
    echo "PASS: $name GET /echo"
  else
    echo "FAIL: $name GET /echo (exit $rc): $o $(cat "$work/err")"; failures=$((failures + 1))
  fi
  o=$("${base_env[@]}" "$trust" "$@" "$url/upload" KZ_CHECK_KEY '{"hello":"world"}' 2>"$work/err"); rc=$?
  if [ $rc -eq 0 ] && grep -q '"method": "POST"' <<<"$o" && grep -q '"body_bytes": 17' <<<"$o"; then
    echo "PASS: $name POST body"
  else
    echo "FAIL: $name POST body (exit $rc): $o $(cat "$work/err")"; failures=$((failures + 1))
  fi
  o=$("${base_env[@]}" "$trust" "$@" "$url/status/503" KZ_CHECK_KEY 2>"$work/err"); rc=$?
  if [ $rc -eq 0 ] && grep -q '^status 503$' <<<"$o"; then
    echo "PASS: $name 503 exits 0"
  else
    echo "FAIL: $name 503 (exit $rc): $o $(cat "$work/err")"; failures=$((failures + 1))
  fi
  o=$("${base_env[@]}" "$@" "$url/echo" KZ_CHECK_KEY 2>"$work/err"); rc=$?
  if [ $rc -ne 0 ] && ! grep -q '^status' <<<"$o"; then
    echo "PASS: $name untrusted CA fails (exit $rc: $(head -c 160 "$work/err" | tr '\n' ' '))"
  else
    echo "FAIL: $name untrusted CA did not fail (exit $rc): $o"; failures=$((failures + 1))
  fi
}

ssl_cert_file=$(trust_var SSL_CERT_FILE)
node_extra=$(trust_var NODE_EXTRA_CA_CERTS)
java_opts=$(trust_var JAVA_TOOL_OPTIONS)
if [ -z "$ssl_cert_file" ]; then
  # No write_trust_bundles (no g++): the test CA file itself still checks the clients.
  echo "SKIP: write_trust_bundles missing; trusting the test CA file directly (Java skipped)"
  ssl_cert_file=$work/ca/ca.pem
  node_extra=$work/ca/ca.pem
fi

if command -v node >/dev/null; then
  check "node https.request" "NODE_EXTRA_CA_CERTS=$node_extra" node "$src/node_client.mjs" https
  check "node fetch" "NODE_EXTRA_CA_CERTS=$node_extra" node "$src/node_client.mjs" fetch
else
  echo "SKIP: node missing"
fi
for bin in go_client static_client static_ssl_client; do
  if [ -x "$out/$bin" ]; then
    check "$bin" "SSL_CERT_FILE=$ssl_cert_file" "$out/$bin"
  else
    echo "SKIP: $bin not built"
  fi
done
if [ -n "$java_opts" ] && [ -f "$out/java/JavaClient.class" ] && command -v java >/dev/null; then
  check "java HttpClient" "JAVA_TOOL_OPTIONS=$java_opts" java -cp "$out/java" JavaClient
else
  echo "SKIP: java client (java, JavaClient.class or the trust store missing)"
fi

if [ $failures -ne 0 ]; then
  echo "$failures check(s) FAILED"
  exit 1
fi
echo "all client checks passed"
