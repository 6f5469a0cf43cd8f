"""Training throughput of the D2AR prior's two stages: tiles/s, model FLOP/s and utilisation.

Counts the FLOPs of one training step (forward + backward, eager, ``torch.utils.flop_counter``),
times steady-state steps (after warm-up and compilation) with CUDA synchronisation, and divides
the achieved FLOP/s by the card's measured bf16 matmul rate (8192^3 products, median of 10).
Runs under ``torchrun`` too (DDP; per-GPU batch fixed, so tiles/s is aggregate).

    python benchmarks/gpu/throughput.py --pack .gpu/pack --out results.json
    torchrun --nproc_per_node=2 benchmarks/gpu/throughput.py --pack .gpu/pack --out r2.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from xr_d2ar.model.config import preset
from xr_d2ar.model.net import D2arNet
from xr_d2ar.train.data import TileBank, load_pack
from xr_d2ar.train.objectives import FlowObjective, VaeObjective
from xr_d2ar.train.runtime import setup_runtime, teardown_runtime
from xr_d2ar.train.trainer import _batch_args, _fit_normalisation


def matmul_peak(device: torch.device, n: int = 8192, reps: int = 10) -> float:
    """Measured bf16 matmul rate (FLOP/s), median of ``reps`` after 3 warm-ups, random data."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    times = []
    for i in range(reps + 3):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        a @ b
        end.record()
        torch.cuda.synchronize()
        if i >= 3:
            times.append(start.elapsed_time(end) / 1e3)
    return 2 * n**3 / float(np.median(times))


def allreduce_time(rt, numel: int, reps: int = 20) -> float:
    """Median time (ms) of one NCCL all-reduce of ``numel`` fp32 values across the processes."""
    buf = torch.randn(numel, device=rt.device)
    times = []
    for i in range(reps + 3):
        torch.distributed.barrier()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        torch.distributed.all_reduce(buf)
        torch.cuda.synchronize()
        if i >= 3:
            times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def step_flops(objective: torch.nn.Module, args: tuple, rt) -> float:
    """FLOPs of one forward + backward (eager)."""
    counter = FlopCounterMode(display=False)
    with counter, rt.autocast():
        loss, _ = objective(*args)
        loss.backward()
    objective.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def time_steps(model, params, args_fn, rt, *, warmup: int, seconds: float, profile_to: str | None = None,
               profile_steps: int = 0) -> tuple[float, int]:
    """Steady-state optimizer steps per second (after ``warmup`` steps); with ``profile_to``, then
    ``profile_steps`` more steps under ``torch.profiler`` (table written there, see :func:`kernel_table`)."""
    opt = torch.optim.AdamW(params, lr=1e-4, fused=True)

    def one(i: int) -> None:
        with rt.autocast():
            loss, _ = model(*args_fn(i))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for i in range(warmup):
        one(i)
    torch.cuda.synchronize()
    t0, n = time.perf_counter(), 0
    while True:
        one(n)
        n += 1
        if n % 10 == 0:
            torch.cuda.synchronize()
            # every rank must run the same number of steps: decide on rank 0's clock
            done = torch.tensor([float(time.perf_counter() - t0 > seconds)], device=rt.device)
            if rt.world_size > 1:
                torch.distributed.broadcast(done, 0)
            if done.item():
                break
    torch.cuda.synchronize()
    rate = n / (time.perf_counter() - t0)
    if profile_to and profile_steps:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            w0 = time.perf_counter()
            for i in range(profile_steps):
                one(i)
            torch.cuda.synchronize()
            wall = time.perf_counter() - w0
        with open(profile_to, "w") as fh:
            fh.write(kernel_table(prof, wall, profile_steps))
    return rate, n


def kernel_table(prof, wall_s: float, steps: int) -> str:
    """GPU time by kernel class and the top kernels, per step, from a finished profiler.

    Classes: matrix products and convolutions (tensor-core work), NCCL collectives, the rest
    (element-wise, norms, reductions, copies). ``busy`` = summed kernel time / wall time.
    """
    rows = []
    for e in prof.key_averages():  # kernels (device events) only
        t = getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0))
        if str(e.device_type).endswith("CUDA") and t > 0:
            rows.append((t / 1e3 / steps, e.count // steps, e.key))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)

    def cls(name: str) -> str:
        n = name.lower()
        if "nccl" in n:
            return "nccl"
        if any(k in n for k in ("gemm", "cutlass", "xmma", "sm90", "wgmma", "conv", "cudnn", "mma", "flash", "fmha")):
            return "matmul/conv/attention"
        return "other"

    by = {}
    for t, _, name in rows:
        by[cls(name)] = by.get(cls(name), 0.0) + t
    step_ms = wall_s / steps * 1e3
    lines = [f"wall per step {step_ms:.2f} ms; GPU kernel time per step {total:.2f} ms (busy {total / step_ms:.0%})"]
    lines += [f"  {k}: {v:.2f} ms ({v / max(total, 1e-9):.0%} of kernel time)" for k, v in sorted(by.items())]
    lines.append("top kernels (ms per step, launches per step, name):")
    lines += [f"  {t:8.3f} {c:5d}  {name[:140]}" for t, c, name in rows[:30]]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pack", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--warmup", type=int, default=15)
    ap.add_argument("--compile", choices=["on", "off", "both"], default="both")
    ap.add_argument("--count-only", action="store_true", help="FLOPs per step and matmul peak only")
    ap.add_argument("--stages", default="vae,flow", help="comma-separated stages to measure")
    ap.add_argument("--profile-steps", type=int, default=0,
                    help="after timing, profile this many steps; tables go to OUT.<stage>.rank<r>.prof.txt")
    ap.add_argument("--static-graph", action="store_true", help="DDP(static_graph=True) (under torchrun)")
    args = ap.parse_args()
    rt = setup_runtime("cuda")
    cfg = preset(args.preset)
    sources = load_pack(f"{args.pack}/train")
    stats = _fit_normalisation(sources, 0)
    sensors = ["unknown"] + sorted({str(s) for src in sources for s in src.meta["sensor"]})
    bank = TileBank(sources, tile=cfg.tile_size, stats=stats, sensors=sensors, geo_octaves=cfg.geo_octaves,
                    tiles_per_area=4.0, device=rt.device, seed=rt.rank)
    peak = matmul_peak(rt.device)
    allreduce = None
    if rt.world_size > 1:  # the collective DDP runs every step: one fp32 tensor of all trainable weights
        allreduce = allreduce_time(rt, sum(p.numel() for p in D2arNet(cfg).parameters()))
    result = {
        "device": torch.cuda.get_device_name(rt.device), "world_size": rt.world_size,
        "batch_per_gpu": args.batch, "preset": args.preset, "torch": torch.__version__,
        "host": platform.node(), "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "bf16_matmul_tflops": peak / 1e12, "static_graph": args.static_graph,
        "allreduce_all_weights_ms": allreduce, "stages": {},
    }
    modes = {"on": [True], "off": [False], "both": [False, True]}[args.compile]
    for stage in args.stages.split(","):
        for compiled in modes:
            torch.manual_seed(0)
            net = D2arNet(cfg).to(rt.device)
            rt.compile = compiled
            cf = rt.compile_fn()
            if stage == "vae":
                obj = VaeObjective(net, compile_fn=cf)
                params = list(net.vae.parameters())
                args_fn = lambda i: _batch_args(bank, bank.sample(args.batch), flow=False) + (0,)
                eager = VaeObjective(net)
            else:
                net.vae.requires_grad_(False)
                obj = FlowObjective(net, compile_fn=cf)
                params = list(net.encoder.parameters()) + list(net.flow.parameters())
                args_fn = lambda i: _batch_args(bank, bank.sample(args.batch), flow=True)
                eager = FlowObjective(net)
            flops = step_flops(eager, args_fn(0), rt)
            key = f"{stage}_{'compiled' if compiled else 'eager'}"
            if args.count_only:
                result["stages"][stage] = {"flops_per_step_per_gpu": flops, "flops_per_tile": flops / args.batch}
                if rt.is_main:
                    print(stage, json.dumps(result["stages"][stage]), flush=True)
                break
            t_c = time.perf_counter()
            prof = f"{args.out}.{key}.rank{rt.rank}.prof.txt" if args.profile_steps else None
            sps, n = time_steps(rt.wrap(obj, static_graph=args.static_graph), params, args_fn, rt,
                                warmup=args.warmup, seconds=args.seconds, profile_to=prof,
                                profile_steps=args.profile_steps)
            achieved = flops * sps
            result["stages"][key] = {
                "steps_per_s": sps, "timed_steps": n, "tiles_per_s": sps * args.batch * rt.world_size,
                "flops_per_step_per_gpu": flops, "model_tflops_per_gpu": achieved / 1e12,
                "mfu_vs_measured_bf16_matmul": achieved / peak,
                "wall_incl_warmup_s": time.perf_counter() - t_c,
            }
            if rt.is_main:
                print(key, json.dumps(result["stages"][key]), flush=True)
    if rt.is_main:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)
    teardown_runtime(rt)


if __name__ == "__main__":
    main()
