#!/usr/bin/env bash
# Debian packages the real-component tests use: Prometheus (a real scraper and promtool),
# h2load/wrk for the benchmark drivers, valgrind (helgrind) for the C worker threads.
# Installed only when missing, so repeated runs are fast.
set -euo pipefail
need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v h2load >/dev/null 2>&1 || need+=(nghttp2-client)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v valgrind >/dev/null 2>&1 || need+=(valgrind)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "system-deps: missing ${need[*]} and not root; tests needing them will skip" >&2
  fi
fi
