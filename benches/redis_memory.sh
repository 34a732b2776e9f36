#!/usr/bin/env bash
# Memory per key in Redis for the same shape as examples/memory_per_key.rs:
# N string keys of 16 bytes ("key:%012d") holding 64-byte values.
# Needs redis-server and redis-cli (Debian: redis-server, redis-tools).
# Usage: bash benches/redis_memory.sh [KEYS]   (default 1000000)
set -euo pipefail
keys=${1:-1000000}
port=${REDIS_PORT:-6399}
dir=$(mktemp -d)
redis-server --port "$port" --save '' --appendonly no --dir "$dir" --daemonize yes --logfile "$dir/log" >/dev/null
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done
field() { redis-cli -p "$port" info memory | tr -d '\r' | awk -F: -v f="$1" '$1==f {print $2}'; }
used0=$(field used_memory); rss0=$(field used_memory_rss)
python3 - "$keys" <<'PY' | redis-cli -p "$port" --pipe >/dev/null
import sys
n = int(sys.argv[1]); v = "x" * 64; out = sys.stdout
for i in range(n):
    k = "key:%012d" % i
    out.write("*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$64\r\n%s\r\n" % (len(k), k, v))
PY
used1=$(field used_memory); rss1=$(field used_memory_rss)
echo "redis $(redis-server --version | awk '{print $3}')"
echo "keys                         $(redis-cli -p "$port" dbsize)"
python3 -c "print('used_memory growth per key   %.1f bytes' % (($used1-$used0)/$keys))"
python3 -c "print('rss growth per key           %.1f bytes' % (($rss1-$rss0)/$keys))"
