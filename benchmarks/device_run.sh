#!/usr/bin/env bash
# Build, check and time on the GPU machine in one call (its Xeon has AVX-512 and AMX, its image
# lacks cffi and the NetCDF/Zarr stack).  Each step writes into OUTDIR; OUTDIR.tgz (or $RUN_TGZ)
# is refreshed after every step, so a call cut short by its time limit still returns what ran.
#
# Prepare here (both folders are git-ignored; name them in the device call's carry):
#   d2ar train all --make-pack .gpu/pack          # held-out tiles, numpy only
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux2014_x86_64 -d .whl cffi==2.0.0 pycparser
# Usage: bash benchmarks/device_run.sh OUTDIR [STEP ...]   (no STEP: all, in this order)
#   build   cext in place (cffi API mode) + the C kernel tests (every backend vs the reference)
#   sweep   AMX bf16 cache blocking / in-place A (benchmarks/kernels/gemm_blocking.c), 1 thread
#   phases  AMX bf16 time by part: packing, micro-kernels, C (benchmarks/kernels/amx_phases.c),
#           and loop schedules side by side (benchmarks/kernels/amx_schedule.c)
#   gemm    benchmarks/kernels/bench_gemm.py: every backend vs numpy (OpenBLAS) and torch (oneDNN)
#   decode  benchmarks/kernels/bench_decode.py: cext vs torch decode of the shipped prior, 1 and
#           16 threads
#   codec   benchmarks/gpu/codec_throughput.py: GPU encode/decode of the shipped prior
set -uo pipefail
OUTDIR=${1:-runs/device}
shift || true
STEPS=${*:-build sweep phases gemm decode codec}
mkdir -p "$OUTDIR"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
LITE=benchmarks/gpu/lite.py
CC="gcc -O2 -Wall -Werror -std=gnu11 -ffp-contract=off -fno-math-errno -Icext/include"
OBLAS=$(python3 -c "import numpy, glob, os; print(glob.glob(os.path.join(os.path.dirname(
  numpy.__file__), '..', 'numpy.libs', '*openblas*'))[0])")
T0=$(date +%s)
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc;
  grep -m1 "model name" /proc/cpuinfo; grep -m1 flags /proc/cpuinfo | tr ' ' '\n' |
  grep -E '^(avx512f|avx512_bf16|amx_tile|amx_bf16)$' | tr '\n' ' '; echo;
  python3 -c "import torch, numpy; print('torch', torch.__version__, 'numpy', numpy.__version__)";
} > "$OUTDIR/machine.txt" 2>&1
for s in $STEPS; do
  echo "== $s ($(( $(date +%s) - T0 )) s)"
  case $s in
    build)
      rm -f xr_d2ar/kernels/_cext*.so
      python3 cext/_build.py > "$OUTDIR/build.log" 2>&1; echo "cffi build rc $?"
      $CC cext/src/dispatch.c cext/kernels/*/*.c cext/tests/test_kernels.c -lm -lpthread \
        -o /tmp/test_kernels && /tmp/test_kernels --expect avx512 > "$OUTDIR/c_tests.log" 2>&1
      echo "C tests rc $?"; grep -E "amx bf16|passed|FAIL" "$OUTDIR/c_tests.log" ;;
    sweep)
      $CC benchmarks/kernels/gemm_blocking.c cext/src/dispatch.c cext/kernels/*/*.c -lm -lpthread \
        -ldl -o /tmp/gemm_blocking || continue
      # kc mc nc dn per candidate (A read in place when N <= dn); $SWEEP replaces the list
      OBLAS=$OBLAS taskset -c 2 /tmp/gemm_blocking 3 1 30 ${SWEEP:-1024 128 512 320 \
        1024 128 512 0 1024 256 1024 320 512 256 1024 320 768 192 640 320 1024 128 512 99999} \
        2>&1 | tee "$OUTDIR/amx_sweep.txt"
      # the micro-kernel's step rate by where its operands come from (benchmarks/kernels/amx_step.c)
      gcc -O2 -std=gnu11 benchmarks/kernels/amx_step.c -o /tmp/amx_step &&
        taskset -c 2 /tmp/amx_step > "$OUTDIR/amx_step.txt" 2>&1; grep -E "order 0 pf 0" "$OUTDIR/amx_step.txt" ;;
    phases)
      $CC benchmarks/kernels/amx_phases.c cext/src/dispatch.c cext/kernels/*/*.c -lm -lpthread \
        -o /tmp/amx_phases && taskset -c 2 /tmp/amx_phases 40 2>&1 | tee "$OUTDIR/amx_phases.txt"
      # loop schedules side by side (A packed on the fly, k sub-blocks, M block sizes)
      $CC benchmarks/kernels/amx_schedule.c cext/src/dispatch.c cext/kernels/*/*.c -lm -lpthread \
        -o /tmp/amx_schedule && taskset -c 2 /tmp/amx_schedule 30 2>&1 |
        tee "$OUTDIR/amx_schedule.txt" ;;
    gemm)
      env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE taskset -c 2 python3 \
        benchmarks/kernels/bench_gemm.py --budget 5 --repeats 8 --out "$OUTDIR/gemm" \
        > "$OUTDIR/gemm.log" 2>&1
      echo "rc $?"; grep -E "amx bf16 / torch|avx512 fp32 / numpy" "$OUTDIR/gemm/kernels.md" ;;
    decode)
      for t in 1 16; do
        timeout 200 python3 $LITE benchmarks/kernels/bench_decode.py --pack .gpu/pack --tiles 32 \
          --threads $t --out "$OUTDIR/decode_t$t" > "$OUTDIR/decode_t$t.log" 2>&1
        echo "threads $t rc $?"; grep -E "^\| |cext / torch" "$OUTDIR/decode_t$t/kernels.decode.md"
      done ;;
    codec)
      timeout 120 python3 $LITE benchmarks/gpu/codec_throughput.py \
        --prior xr_d2ar/prior/d2ar-default.safetensors --pack .gpu/pack --device cuda \
        --tiles 2048 --out "$OUTDIR/codec_cuda.json" > "$OUTDIR/codec.log" 2>&1
      echo "rc $?"; tail -4 "$OUTDIR/codec.log" ;;
    *) echo "unknown step $s"; exit 2 ;;
  esac
  tar -czf "${RUN_TGZ:-$OUTDIR.tgz}" -C "$OUTDIR" . 2>/dev/null
done
echo "== done ($(( $(date +%s) - T0 )) s)"
