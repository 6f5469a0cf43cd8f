#!/usr/bin/env bash
# Regenerate benchmarks/results/bench/<cube>.{json,md,png}: `d2ar bench` on every sample cube,
# then SUMMARY.md (best classical codec per target over all cubes, quoted in BENCHMARKS.md).
#
# Multi-date cubes are benched on their held-out dates (last 20%), with the earlier dates as the
# climatology's history; single-date cubes whole. --crop 512 keeps the central 512x512 pixels of
# the two large single-date scenes (smaller cubes are unaffected). About 6-8 minutes on 2 cores.
# Usage: benchmarks/run_bench_all.sh [extra d2ar bench options]   (RATIOS=10,100 to change ratios)
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results/bench
ratios=${RATIOS:-10,100,1000,10000}
mkdir -p "$out"

d2ar_cli() {
  if command -v d2ar >/dev/null 2>&1; then
    d2ar "$@"
  else
    python -c 'import sys; from xr_d2ar.cli import main; sys.exit(main(sys.argv[1:]))' "$@"
  fi
}

cubes=$(python -c 'from xr_d2ar import datasets; print(" ".join(datasets.available()))')
start=$(date +%s)
for cube in $cubes; do
  d2ar_cli bench --data "$cube" --ratios "$ratios" --crop 512 --out "$out" "$@"
done
echo "benched $(echo $cubes | wc -w) cubes in $(( $(date +%s) - start )) s -> $out"
python -c 'import sys; from xr_d2ar import bench; print("summary:", bench.write_summary(sys.argv[1]))' "$out"
