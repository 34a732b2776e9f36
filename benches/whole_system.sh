#!/usr/bin/env bash
# Whole-system throughput: `meridian bench` against a single node
# (regions/single.toml, N = 1) and a three-node region
# (regions/bench-region.toml, N = 3, W = quorum), and redis-benchmark
# against redis-server, side by side in one session: get, set, incr and hset
# with 64-byte values over 10,000 keys, at 1, 16 and 64 requests in flight.
# The three targets run in turn, in alternating order, ROUNDS times; the
# summary gives medians and ratios.
#
# Needs a release build of meridian, redis-server and redis-benchmark
# (Debian: redis-server, redis-tools).
# Usage: bash benches/whole_system.sh [ROUNDS] [SECONDS]   (default 3 rounds, 4 s)
# ROUTE sets meridian bench --route (default read-home, the SDK's default;
# primary or home);
# BUSY_POLL_US sets the client's busy polling (default 100 µs, 0: sleep).
# PIN=1 pins every process to a CPU: the nodes with `cluster up
# --pin-cpus` (in turn over the CPUs this script may use), each meridian
# bench client with `--cpus` on the next CPU in turn, and redis-server and
# redis-benchmark with taskset on the first two; the region's client then
# reads from a home node on another CPU than its own (`--home`, unless
# ROUTE=primary). PIN=0 (the default) leaves placement to the kernel.
# Raw figures go to $OUT (default: a temporary file, named at the end).
set -euo pipefail
rounds=${1:-3}
seconds=${2:-4}
cd "$(dirname "$0")/.."
meridian=${MERIDIAN:-${CARGO_TARGET_DIR:-target}/release/meridian}
port=${REDIS_PORT:-6390}
concurrencies=${CONCURRENCY:-"1 16 64"}
route=${ROUTE:-read-home}   # meridian bench --route: read-home, primary or home
busy_poll_us=${BUSY_POLL_US:-100}   # meridian bench --busy-poll-us (0: sleep)
pin=${PIN:-0}
read -r -a cpus <<<"$(python3 -c 'import os; print(*sorted(os.sched_getaffinity(0)))')"
if [ "${#cpus[@]}" -eq 0 ]; then echo "cannot list the CPUs this script may use" >&2; exit 1; fi
# The CPU after `nodes` nodes placed in turn: the client's.
next_cpu() { echo "${cpus[$(($1 % ${#cpus[@]}))]}"; }
if [ "$pin" = 1 ]; then
    pin_up=(--pin-cpus)
    redis_server_pin=(taskset -c "$(next_cpu 0)")
    redis_bench_pin=(taskset -c "$(next_cpu 1)")
    declare -A bench_pin=([single]="--cpus $(next_cpu 1)" [region]="--cpus $(next_cpu 3)")
else
    pin_up=()
    redis_server_pin=()
    redis_bench_pin=()
    declare -A bench_pin=([single]="" [region]="")
fi
ops="get set incr hset"
dir=$(mktemp -d)
out=${OUT:-$dir/figures.csv}

stop() {
    "$meridian" --state-dir "$dir/single" cluster down >/dev/null 2>&1 || true
    "$meridian" --state-dir "$dir/region" cluster down >/dev/null 2>&1 || true
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
}
trap stop EXIT

up() { # up NAME TOPOLOGY
    "$meridian" --state-dir "$dir/$1" cluster up "$2" "${pin_up[@]}" >"$dir/$1.log" 2>&1 &
    for _ in $(seq 300); do
        grep -q "is up" "$dir/$1.log" && return 0
        sleep 0.1
    done
    cat "$dir/$1.log" >&2
    return 1
}
up single regions/single.toml
up region regions/bench-region.toml
if [ "$pin" = 1 ] && [ "$route" != primary ]; then
    # A home on the client's own CPU would serve its reads from the core it
    # polls on: take the first node on another.
    home=$(python3 - "$dir/region/cluster.json" "$(next_cpu 3)" <<'PY'
import json, sys
nodes = json.load(open(sys.argv[1]))["nodes"]
print(next((n["id"] for n in nodes if n.get("cpu") != int(sys.argv[2])), nodes[0]["id"]))
PY
)
    bench_pin[region]+=" --home $home"
    echo "pinned: the region's client on CPU $(next_cpu 3) reads from $home" >&2
fi
"${redis_server_pin[@]}" redis-server --port "$port" --save '' --appendonly no --dir "$dir" --daemonize yes \
    --logfile "$dir/redis.log" >/dev/null
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done

echo "round,target,concurrency,op,ops_per_s,p50_us,p99_us,errors,error_kinds" >"$out"

run_redis() { # run_redis ROUND C
    # -c clients, each with one request in flight; about $seconds s per test.
    local n=$(($2 == 1 ? 25000 * seconds : 75000 * seconds))
    "${redis_bench_pin[@]}" redis-benchmark -p "$port" -t get,set,incr,hset -c "$2" -n "$n" -r 10000 -d 64 -P 1 --csv |
        tr -d '"' | awk -F, -v r="$1" -v c="$2" 'NR > 1 {
            printf "%s,redis,%s,%s,%s,%.0f,%.0f,0,\n", r, c, tolower($1), $2, $5 * 1000, $7 * 1000 }' >>"$out"
}

run_meridian() { # run_meridian ROUND TARGET C
    for op in $ops; do
        "$meridian" --state-dir "$dir/$2" bench --ops "$op" --keys 10000 --value-size 64 \
            --concurrency "$3" --duration "$seconds" --route "$route" \
            --busy-poll-us "$busy_poll_us" ${bench_pin[$2]} --json 2>/dev/null |
            python3 -c '
import json, sys
r = json.load(sys.stdin); t = r["total"]
kinds = ";".join("%s:%d" % (e["kind"], e["count"]) for e in r["errors"])
print("%s,%s,%s,%s,%.0f,%.0f,%.0f,%d,%s" % (sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4],
      t["ops_per_s"], t["latency"]["p50_us"], t["latency"]["p99_us"], t["errors"], kinds))' \
                "$1" "$2" "$3" "$op" >>"$out"
    done
}

for round in $(seq "$rounds"); do
    if ((round % 2)); then order="redis single region"; else order="region single redis"; fi
    for c in $concurrencies; do
        for target in $order; do
            echo "round $round, $c in flight: $target (load average $(cut -d' ' -f1 /proc/loadavg))" >&2
            if [ "$target" = redis ]; then run_redis "$round" "$c"; else run_meridian "$round" "$target" "$c"; fi
        done
    done
done

python3 - "$out" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
def med(target, c, op, field="ops_per_s"):
    xs = [float(r[field]) for r in rows if (r["target"], r["concurrency"], r["op"]) == (target, c, op)]
    return statistics.median(xs) if xs else float("nan")
print("| op | in flight | redis ops/s (p50) | single node ops/s (p50) | 3-node region ops/s (p50) | single / redis | region / single |")
print("|---|---:|---:|---:|---:|---:|---:|")
for c in sorted({r["concurrency"] for r in rows}, key=int):
    for op in ["get", "set", "incr", "hset"]:
        red, one, three = (med(t, c, op) for t in ("redis", "single", "region"))
        lat = lambda t: med(t, c, op, "p50_us")
        print(f"| {op} | {c} | {red:,.0f} ({lat('redis'):.0f} µs) | {one:,.0f} ({lat('single'):.0f} µs) | "
              f"{three:,.0f} ({lat('region'):.0f} µs) | {one / red:.2f}× | {three / one:.2f}× |")
errors = sum(int(r["errors"]) for r in rows)
print(f"\nerrors in all meridian runs: {errors}")
for r in rows:
    if int(r["errors"]):
        print(f"  round {r['round']}, {r['target']}, {r['op']} at {r['concurrency']} in flight: {r['error_kinds']}")
PY
echo "raw figures: $out" >&2
