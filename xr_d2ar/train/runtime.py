"""Where training runs: device, torch.distributed (DDP under torchrun), bf16 autocast, torch.compile."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["Runtime", "safe_compile", "setup_runtime", "teardown_runtime"]


@dataclass
class Runtime:
    """Training placement.

    Attributes
    ----------
    device : torch.device
    rank, world_size, local_rank : int
        From torchrun's environment (0, 1, 0 without it).
    amp : bool
        bf16 autocast on (GPU only).
    compile : bool
        Wrap the networks' forward functions with ``torch.compile``.
    """

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    amp: bool = False
    compile: bool = False

    @property
    def is_main(self) -> bool:
        """True on the process that logs and writes files."""
        return self.rank == 0

    def autocast(self) -> AbstractContextManager[Any]:
        """bf16 autocast context when ``amp`` is on, else a no-op."""
        if self.amp:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def compile_fn(self) -> Callable | None:
        """:func:`safe_compile` when compiling is enabled, else None."""
        return safe_compile if self.compile else None

    def wrap(self, module: torch.nn.Module, *, static_graph: bool = False) -> torch.nn.Module:
        """DDP-wrap ``module`` when running on several processes (``static_graph``: the same
        parameters get gradients in the same order every step, which lets DDP skip its checks)."""
        if self.world_size == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.local_rank] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, static_graph=static_graph,
                                       gradient_as_bucket_view=static_graph)

    def all_mean(self, value: float) -> float:
        """Mean of a scalar over processes."""
        if self.world_size == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t.item()) / self.world_size


def _compiler_errors() -> tuple[type[BaseException], ...]:
    """Exceptions raised by the compiler itself (dynamo, inductor), not by the model's code."""
    import torch._dynamo.exc as dynamo_exc
    import torch._inductor.exc as inductor_exc

    return (dynamo_exc.TorchDynamoException, inductor_exc.InductorError)


def safe_compile(fn: Callable) -> Callable:
    """``torch.compile(fn)`` that falls back to ``fn`` (with a warning) if the *compiler* fails.

    Errors of the model or the data (shapes, NaN checks, ...) are raised as usual.
    """
    compiled = torch.compile(fn)
    state = {"ok": True}
    errors = _compiler_errors()

    def call(*args: Any, **kwargs: Any) -> Any:
        if state["ok"]:
            try:
                return compiled(*args, **kwargs)
            except errors as exc:  # compiler bugs must not kill a training run
                warnings.warn(f"torch.compile failed ({type(exc).__name__}: {exc}); running eager.")
                state["ok"] = False
        return fn(*args, **kwargs)

    return call


def setup_runtime(device: str = "auto", *, amp: bool | None = None, compile: bool | None = None) -> Runtime:
    """Pick the device and join the process group when launched by torchrun (``WORLD_SIZE`` > 1).

    ``amp`` and ``compile`` default to on for CUDA and off for CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but torch sees no GPU. Use device='cpu' or 'auto'.")
        dev = torch.device("cuda", local if world > 1 else (torch.device(device).index or 0))
        torch.cuda.set_device(dev)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    elif device == "cpu":
        dev = torch.device("cpu")
    else:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N'. Got {device!r} instead.")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    on_gpu = dev.type == "cuda"
    return Runtime(
        device=dev, rank=rank, world_size=world, local_rank=local,
        amp=on_gpu if amp is None else amp, compile=on_gpu if compile is None else compile,
    )


def teardown_runtime(rt: Runtime) -> None:
    """Leave the process group (if any)."""
    if rt.world_size > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
