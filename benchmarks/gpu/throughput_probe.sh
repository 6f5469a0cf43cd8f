#!/usr/bin/env bash
# Where the training step's time goes, on 1 and 2 GPUs, for the shipped size and the `large` preset.
# Each step is one throughput.py run (torch.compile + bf16, 5 s timed after warm-up, then a 5-step
# kernel profile written beside its JSON); OUTDIR.tgz (or $PROBE_TGZ) is refreshed after every step so that a
# call cut short by its time limit still brings back what finished.
# Run from the repository root on a 2-GPU machine with the tile pack in .gpu/pack.
# Usage: bash benchmarks/gpu/throughput_probe.sh OUTDIR [STEP ...]   (no STEP: all, in this order)
#   default_1gpu_b512 default_2gpu_b512 default_2gpu_b512_static default_1gpu_b2048
#   default_2gpu_b2048_static large_1gpu_b256 large_2gpu_b256 large_1gpu_b512 codec
set -uo pipefail
OUTDIR=${1:-runs/probe}
shift || true
STEPS=${*:-default_1gpu_b512 default_2gpu_b512 default_2gpu_b512_static default_1gpu_b2048 \
default_2gpu_b2048_static large_1gpu_b256 large_2gpu_b256 large_1gpu_b512 codec}
mkdir -p "$OUTDIR"
export PYTHONUNBUFFERED=1
LITE=benchmarks/gpu/lite.py
T0=$(date +%s)
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nvidia-smi topo -m;
  nproc; grep -m1 "model name" /proc/cpuinfo; python3 -c "import torch; print('torch', torch.__version__)"; } \
  > "$OUTDIR/machine.txt" 2>&1
run() {  # run NAME NPROC ARGS...
  local name=$1 n=$2; shift 2
  echo "== $name ($(( $(date +%s) - T0 )) s)"
  timeout 170 torchrun --standalone --nproc_per_node="$n" $LITE benchmarks/gpu/throughput.py --pack .gpu/pack \
    --compile on --seconds 5 --warmup 8 --profile-steps 5 --out "$OUTDIR/$name.json" "$@" > "$OUTDIR/$name.log" 2>&1
  echo "rc $?"; grep -E '^(vae|flow)_' "$OUTDIR/$name.log" | cut -c1-260; head -4 "$OUTDIR/$name".json.flow*rank0.prof.txt 2>/dev/null
}
for s in $STEPS; do
  case $s in
    default_1gpu_b512) run "$s" 1 --batch 512 --stages vae,flow ;;
    default_2gpu_b512) run "$s" 2 --batch 512 --stages flow ;;
    default_2gpu_b512_static) run "$s" 2 --batch 512 --stages flow --static-graph ;;
    default_1gpu_b2048) run "$s" 1 --batch 2048 --stages flow ;;
    default_2gpu_b2048_static) run "$s" 2 --batch 2048 --stages flow --static-graph ;;
    large_1gpu_b256) run "$s" 1 --preset large --batch 256 --stages flow ;;
    large_2gpu_b256) run "$s" 2 --preset large --batch 256 --stages flow --static-graph ;;
    large_1gpu_b512) run "$s" 1 --preset large --batch 512 --stages flow ;;
    codec)
      echo "== codec ($(( $(date +%s) - T0 )) s)"
      timeout 90 python3 $LITE benchmarks/gpu/codec_throughput.py --prior xr_d2ar/prior/d2ar-default.safetensors \
        --pack .gpu/pack --device cuda --tiles 2048 --out "$OUTDIR/codec_cuda.json" > "$OUTDIR/codec.log" 2>&1
      echo "rc $?"; tail -3 "$OUTDIR/codec.log" ;;
    *) echo "unknown step $s"; exit 2 ;;
  esac
  tar -czf "${PROBE_TGZ:-$OUTDIR.tgz}" -C "$OUTDIR" . 2>/dev/null
done
echo "== done ($(( $(date +%s) - T0 )) s)"
