#!/usr/bin/env bash
# Where a replicated write's cost comes from: `meridian bench --ops set`
# against five cluster shapes on this machine, one at a time, in turn,
# ROUNDS times, at 1, 16 and 64 requests in flight:
#
#   single    one node, N = 1 (regions/single.toml)
#   n1x3      three nodes, N = 1: no replication, keys spread over three
#             processes
#   n2x2      two nodes, N = 2, W = all: one replica besides the coordinator
#   n2x3      three nodes, N = 2, W = all: the same over three processes
#   n3x3      three nodes, N = 3, W = quorum (regions/bench-region.toml)
#
# n2x3 against n3x3 gives what the third replica's delta and
# acknowledgement cost; n1x3 against single what spreading one client's
# requests over three processes costs with no replication at all.
#
# Needs a release build of meridian.
# Usage: bash benches/region_shapes.sh [ROUNDS] [SECONDS]   (default 3 rounds, 3 s)
# Raw figures go to $OUT (default: a temporary file, named at the end).
set -euo pipefail
rounds=${1:-3}
seconds=${2:-3}
cd "$(dirname "$0")/.."
meridian=${MERIDIAN:-${CARGO_TARGET_DIR:-target}/release/meridian}
concurrencies=${CONCURRENCY:-"1 16 64"}
shapes=${SHAPES:-"single n1x3 n2x2 n2x3 n3x3"}
dir=$(mktemp -d)
out=${OUT:-$dir/figures.csv}

# topology SHAPE: writes the shape's topology file and prints its path.
topology() {
    case $1 in
    single) echo regions/single.toml ;;
    n3x3) echo regions/bench-region.toml ;;
    *)
        local n=${1:1:1} nodes=${1:3:1} w
        if [ "$n" = 1 ]; then w=one; else w=all; fi
        {
            printf '[cluster]\nname = "shape-%s"\nreplication_factor = %s\n' "$1" "$n"
            printf 'write_consistency = "%s"\nread_consistency = "one"\n\n[[region]]\nname = "bench"\n' "$w"
            for i in $(seq "$nodes"); do
                printf '\n[[region.node]]\nid = "bench-%s"\nclient_addr = "127.0.0.1:75%02d"\npeer_addr = "127.0.0.1:75%02d"\n' \
                    "$i" "$i" "$((10 + i))"
            done
        } >"$dir/$1.toml"
        echo "$dir/$1.toml"
        ;;
    esac
}

down() { "$meridian" --state-dir "$dir/$1" cluster down >/dev/null 2>&1 || true; }
trap 'for s in $shapes; do down "$s"; done' EXIT

up() { # up SHAPE
    # A log left from the round before would say "is up" at once.
    rm -rf "${dir:?}/$1" "$dir/$1.log"
    "$meridian" --state-dir "$dir/$1" cluster up "$(topology "$1")" >"$dir/$1.log" 2>&1 &
    for _ in $(seq 300); do
        grep -qs "is up" "$dir/$1.log" && return 0
        sleep 0.1
    done
    cat "$dir/$1.log" >&2
    return 1
}

echo "round,shape,concurrency,ops_per_s,p50_us,errors" >"$out"
for round in $(seq "$rounds"); do
    order=$shapes
    if ! ((round % 2)); then order=$(echo "$shapes" | tr ' ' '\n' | tac | tr '\n' ' '); fi
    for shape in $order; do
        up "$shape"
        for c in $concurrencies; do
            echo "round $round: $shape, $c in flight (load average $(cut -d' ' -f1 /proc/loadavg))" >&2
            "$meridian" --state-dir "$dir/$shape" bench --ops set --keys 10000 --value-size 64 \
                --concurrency "$c" --duration "$seconds" --busy-poll-us 100 --json 2>"$dir/bench.err" |
                python3 -c '
import json, sys
t = json.load(sys.stdin)["total"]
print("%s,%s,%s,%.0f,%.0f,%d" % (sys.argv[1], sys.argv[2], sys.argv[3],
      t["ops_per_s"], t["latency"]["p50_us"], t["errors"]))' "$round" "$shape" "$c" >>"$out" ||
                { cat "$dir/bench.err" "$dir/$shape.log" >&2; exit 1; }
        done
        down "$shape"
        sleep 1
    done
done

python3 - "$out" "$shapes" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
shapes = sys.argv[2].split()
cs = sorted({r["concurrency"] for r in rows}, key=int)
def med(shape, c, field="ops_per_s"):
    xs = [float(r[field]) for r in rows if (r["shape"], r["concurrency"]) == (shape, c)]
    return statistics.median(xs) if xs else float("nan")
print("| shape | " + " | ".join(f"{c} in flight: writes/s (p50), / single" for c in cs) + " |")
print("|---|" + "---:|" * len(cs))
for s in shapes:
    cells = []
    for c in cs:
        ratio = med(s, c) / med("single", c) if "single" in shapes else float("nan")
        cells.append(f"{med(s, c):,.0f} ({med(s, c, 'p50_us'):.0f} µs), {ratio:.2f}×")
    print(f"| {s} | " + " | ".join(cells) + " |")
print(f"\nerrors in all runs: {sum(int(r['errors']) for r in rows)}")
print(f"raw figures: {sys.argv[1]}", file=sys.stderr)
PY
