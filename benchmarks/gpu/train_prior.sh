#!/usr/bin/env bash
# Train the shipped default prior on one GPU and measure what the issue asks for:
#   1. FLOPs per training step of each stage + the card's measured bf16 matmul rate
#   2. the training run itself (its metrics.csv logs tiles/s per 20 steps)
#   3. encode/decode throughput of the trained prior on the GPU
# Run from the repository root on the GPU machine, after writing the tile pack on a machine with the
# NetCDF stack:   python -m xr_d2ar.train all --make-pack .gpu/pack
# (lite.py imports xr_d2ar without its top-level __init__: GPU images lack pyproj/zarr/dask.)
# Usage: bash benchmarks/gpu/train_prior.sh OUTDIR [VAE_MINUTES] [FLOW_MINUTES] [BATCH]
# (DEVICE=cpu PRESET=tiny runs the same steps on a CPU as a dry run, without step 1; TRAIN_ARGS adds
# options of `d2ar train`; EXTRAS=0 skips steps 1 and 3 when device time is short.)
set -uo pipefail
DEVICE=${DEVICE:-cuda}
PRESET=${PRESET:-default}
OUTDIR=${1:-runs/gpu}
VAE_MIN=${2:-2.0}
FLOW_MIN=${3:-4.0}
BATCH=${4:-512}
mkdir -p "$OUTDIR"
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv;
  python3 -c "import torch, platform; print('torch', torch.__version__, platform.processor())"; } \
  2>&1 | tee "$OUTDIR/machine.txt"
EXTRAS=${EXTRAS:-1}
if [ "$DEVICE" = cuda ] && [ "$EXTRAS" = 1 ]; then
  python3 benchmarks/gpu/lite.py benchmarks/gpu/throughput.py --pack .gpu/pack --out "$OUTDIR/train_flops.json" --batch "$BATCH" \
    --preset "$PRESET" --compile off --count-only
fi
CMD="python3 benchmarks/gpu/lite.py -m xr_d2ar.train --pack .gpu/pack --out $OUTDIR/run --name d2ar-default --batch-size $BATCH \
--device $DEVICE --preset $PRESET \
--vae-steps 100000 --flow-steps 100000 --vae-minutes $VAE_MIN --flow-minutes $FLOW_MIN --tiles-per-area 8 \
--capacity 40000 --ckpt-every 2000 --no-progress ${TRAIN_ARGS:-}"
echo "$CMD" > "$OUTDIR/command.txt"
start=$(date +%s)
$CMD
echo "train_wall_s=$(( $(date +%s) - start ))" | tee -a "$OUTDIR/machine.txt"
tail -n 3 "$OUTDIR/run/metrics.csv"
[ "$EXTRAS" = 1 ] || exit 0
python3 benchmarks/gpu/lite.py benchmarks/gpu/codec_throughput.py --prior "$OUTDIR/run/d2ar-default.safetensors" --pack .gpu/pack \
  --device "$DEVICE" --tiles 2048 --out "$OUTDIR/codec_$DEVICE.json"
