#!/usr/bin/env bash
# Two-GPU call: (1) training-throughput scaling of the flow stage, 1 GPU vs 2 GPUs (DDP, torchrun,
# same per-GPU batch, torch.compile + bf16); (2) retrain the token encoder + flow prior on 2 GPUs
# from the VAE of a first prior (--init-from), the multi-GPU training path end to end.
# Run from the repository root on a 2-GPU machine with the tile pack in .gpu/pack and the first
# prior in .gpu/init/.
# Usage: bash benchmarks/gpu/scale_and_finetune.sh OUTDIR [FLOW_MINUTES] [BATCH_PER_GPU]
set -uo pipefail
OUTDIR=${1:-runs/gpu2}
FLOW_MIN=${2:-2.0}
BATCH=${3:-256}
mkdir -p "$OUTDIR"
export PYTHONUNBUFFERED=1
LITE="benchmarks/gpu/lite.py"
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; } 2>&1 | tee "$OUTDIR/machine.txt"
for n in 1 2; do
  torchrun --standalone --nproc_per_node=$n $LITE benchmarks/gpu/throughput.py --pack .gpu/pack \
    --out "$OUTDIR/scale_${n}gpu.json" --batch 512 --compile on --seconds 8 --warmup 10 --stages flow
done
CMD="torchrun --standalone --nproc_per_node=2 $LITE -m xr_d2ar.train --pack .gpu/pack --out $OUTDIR/run \
--name d2ar-default --batch-size $BATCH --flow-steps 100000 --flow-minutes $FLOW_MIN --flow-lr 5e-4 \
--flow-weight-decay 0.05 --init-from .gpu/init/d2ar-default.safetensors --tiles-per-area 8 --capacity 40000 \
--ckpt-every 100000 --no-progress"
echo "$CMD" > "$OUTDIR/command.txt"
start=$(date +%s)
$CMD
echo "train_wall_s=$(( $(date +%s) - start ))" | tee -a "$OUTDIR/machine.txt"
tail -n 2 "$OUTDIR/run/metrics.csv"
