#!/usr/bin/env bash
# Builds the real client programs of the blind-mode end-to-end tests into OUT_DIR:
#
#   tests/clients/build_clients.sh OUT_DIR [go]     (go: the Go programs only)
#
#   OUT_DIR/go_client            Go net/http, static (CGO_ENABLED=0)
#   OUT_DIR/go_h2_client         Go net/http over HTTP/2, concurrent streams (CGO_ENABLED=0)
#   OUT_DIR/static_client        OpenSSL, fully static (libc included)
#   OUT_DIR/static_ssl_client    OpenSSL linked statically, libc dynamically
#   OUT_DIR/java/JavaClient.class  java.net.http (run: java -cp OUT_DIR/java JavaClient ...)
#   OUT_DIR/write_trust_bundles  kz's TrustBundles::write as a command (used by check_clients.sh)
# node_client.mjs needs no build (run: node tests/clients/node_client.mjs ...).
#
# Each client: CLIENT URL ENVVAR [BODY]; see the header of its source. What cannot be
# built prints "SKIP: <tool> missing" (and is not an error); a failed build is.
# Idempotent: an output newer than its sources is not rebuilt. Offline: Go's cache and
# module path live under OUT_DIR/.go, GOPROXY=off, GOFLAGS=-mod=mod (works as root in CI).
set -euo pipefail
out=${1:?usage: build_clients.sh OUT_DIR [go]}
src=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)

# up_to_date OUTPUT SOURCE...: OUTPUT exists and is newer than every SOURCE.
up_to_date() {
  local o=$1 s
  shift
  [ -e "$o" ] || return 1
  for s in "$@"; do [ "$o" -nt "$s" ] || return 1; done
}

# Go: no external modules; everything Go writes stays under OUT_DIR.
for prog in go_client go_h2_client; do
  if ! command -v go >/dev/null; then
    echo "SKIP: go missing ($prog)"
  elif up_to_date "$out/$prog" "$src/$prog/main.go" "$src/$prog/go.mod"; then
    echo "up to date: $prog"
  else
    (cd "$src/$prog" &&
      env CGO_ENABLED=0 GOENV=off GOPROXY=off GOFLAGS=-mod=mod GOTOOLCHAIN=local \
        GOCACHE="$out/.go/cache" GOPATH="$out/.go/path" GOMODCACHE="$out/.go/path/pkg/mod" \
        go build -trimpath -o "$out/$prog.tmp" .)
    mv -f "$out/$prog.tmp" "$out/$prog"
    echo "built: $prog"
  fi
done
[ "${2:-}" = go ] && exit 0

# C: needs gcc and the static OpenSSL archives (libssl-dev); the fully static variant
# also needs libc.a (libc6-dev). gcc -print-file-name echoes the bare name when absent.
have_archive() { [ "$(gcc -print-file-name="$1")" != "$1" ]; }
if ! command -v gcc >/dev/null; then
  echo "SKIP: gcc missing (static_client, static_ssl_client)"
elif ! have_archive libssl.a || ! have_archive libcrypto.a; then
  echo "SKIP: libssl.a missing (static_client, static_ssl_client; install libssl-dev)"
else
  cflags=(-O2 -Wall -Wextra -Werror -std=c11)
  ssl_static=(-l:libssl.a -l:libcrypto.a -lpthread -ldl)
  if up_to_date "$out/static_ssl_client" "$src/static_client.c"; then
    echo "up to date: static_ssl_client"
  else
    gcc "${cflags[@]}" -o "$out/static_ssl_client.tmp" "$src/static_client.c" "${ssl_static[@]}"
    mv -f "$out/static_ssl_client.tmp" "$out/static_ssl_client"
    echo "built: static_ssl_client"
  fi
  if ! have_archive libc.a; then
    echo "SKIP: libc.a missing (static_client)"
  elif up_to_date "$out/static_client" "$src/static_client.c"; then
    echo "up to date: static_client"
  else
    # glibc warns that getaddrinfo/dlopen (referenced by libcrypto, not called by this
    # client) need its shared libraries at run time; that is expected, so it is filtered.
    gcc "${cflags[@]}" -static -o "$out/static_client.tmp" "$src/static_client.c" "${ssl_static[@]}" 2>&1 |
      { grep -v -e "statically linked applications requires at runtime" -e ": in function " || true; } >&2
    [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "static_client: build failed" >&2; exit 1; }
    mv -f "$out/static_client.tmp" "$out/static_client"
    echo "built: static_client"
  fi
fi

# Java: class files for `java -cp OUT_DIR/java JavaClient` (the source also runs as
# `java JavaClient.java`, which compiles it at every start).
if command -v javac >/dev/null; then
  if up_to_date "$out/java/JavaClient.class" "$src/JavaClient.java"; then
    echo "up to date: java/JavaClient.class"
  else
    mkdir -p "$out/java"
    javac -d "$out/java" "$src/JavaClient.java"
    echo "built: java/JavaClient.class"
  fi
else
  echo "SKIP: javac missing (JavaClient)"
fi

command -v node >/dev/null || echo "SKIP: node missing (node_client.mjs)"

# write_trust_bundles: kz's TrustBundles::write as a command (for check_clients.sh), built
# straight from the sources so that it always matches them.
root=$(cd "$src/../.." && pwd)
tb_sources=("$src/write_trust_bundles.cpp" "$root/launcher/proxy/trust_bundles.cpp" "$root/launcher/proxy/trust_bundles.h")
if ! command -v g++ >/dev/null; then
  echo "SKIP: g++ missing (write_trust_bundles)"
elif up_to_date "$out/write_trust_bundles" "${tb_sources[@]}"; then
  echo "up to date: write_trust_bundles"
else
  g++ -std=c++20 -O2 -Wall -Wextra -Werror -I"$root/launcher" -I"$root/common/include" -I"$root/providers/include" \
    -o "$out/write_trust_bundles.tmp" "$src/write_trust_bundles.cpp" "$root/launcher/proxy/trust_bundles.cpp" -lssl -lcrypto
  mv -f "$out/write_trust_bundles.tmp" "$out/write_trust_bundles"
  echo "built: write_trust_bundles"
fi
exit 0
