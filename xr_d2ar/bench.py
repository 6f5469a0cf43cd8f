"""Bench harness: codecs driven to matched compression ratios, scored with :mod:`xr_d2ar.metrics`.

For each codec with a knob and each target ratio, the knob is searched (log scale, bracketed
bisection with interpolation; the ratio is assumed monotone in the knob) for the best quality whose
ratio is at least the target, within ``tolerance`` above it. A target above the codec's largest
ratio is reported as ``"cannot reach"``. Codecs without a knob (the references) give one row at
the ratio they have.

* ratio = original bytes in the stored dtype / payload bytes (headers and per-image parameters
  included; the cube's coordinates are shared metadata and not counted for any codec);
* MB/s = original bytes / 1e6 / wall seconds, encode and decode timed separately, one thread;
* metrics on physical values, nodata pixels of the original excluded (:class:`metrics.Scorer`).

Example (about 10 s on 2 cores)::

    from xr_d2ar import bench, datasets
    cube, history, subset = bench.bench_split(datasets.open("cbers4_awfi_bahia"))
    result = bench.run_bench(cube, history=history, ratios=[10, 100], subset=subset)
    bench.write_report(result, "out/")   # out/cube.json, .md, .png
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from xr_d2ar._options import get_options
from xr_d2ar.baselines import CLASSICAL, BaselineCodec, codec_names, get_codec
from xr_d2ar.errors import CubeValidationError, D2arError
from xr_d2ar.metrics import Scorer

__all__ = [
    "BenchResult",
    "BenchRow",
    "bench_split",
    "plot_rd",
    "run_bench",
    "to_markdown",
    "write_report",
]

#: Metrics drawn in the rate-distortion figure: (key, axis label).
PLOT_METRICS = (
    ("psnr", "PSNR (dB)"),
    ("ssim", "SSIM"),
    ("spectral_angle_deg", "spectral angle (deg)"),
    ("ndvi_mae", "NDVI MAE"),
    ("max_abs_error", "max abs error"),
    ("balanced_agreement", "classification agreement (balanced)"),
)


@dataclass
class BenchRow:
    """One codec at one target ratio (``target_ratio`` None for codecs without a knob)."""

    codec: str
    target_ratio: float | None
    status: str  # "ok" | "cannot reach" | "no history"
    param: float | None = None
    ratio: float | None = None
    nbytes: int | None = None
    encode_mbps: float | None = None
    decode_mbps: float | None = None
    trials: int = 0
    metrics: dict[str, Any] | None = None
    note: str = ""
    in_window: bool = True  # achieved ratio within [target, target * (1 + tolerance)]


@dataclass
class BenchResult:
    """Everything one bench run measured; :meth:`to_dict` is the JSON report."""

    cube: str
    subset: str
    shape: list[int]
    dtype: str
    original_bytes: int
    history: str
    codecs: dict[str, dict[str, Any]]
    rows: list[BenchRow]
    machine: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (non-finite floats become the strings ``"inf"`` / ``"nan"``)."""
        return _json_safe(asdict(self))

    def best_by_ratio(self) -> list[dict[str, Any]]:
        """For each target: the classical codec with the highest PSNR among those that reach it."""
        out = []
        for target in sorted({r.target_ratio for r in self.rows if r.target_ratio is not None}):
            reached = [
                r
                for r in self.rows
                if r.target_ratio == target and r.status == "ok" and r.in_window and r.codec in CLASSICAL
            ]
            best = max(reached, key=lambda r: r.metrics["psnr"]) if reached else None
            out.append(
                {
                    "target_ratio": target,
                    "codec": best.codec if best else None,
                    "ratio": best.ratio if best else None,
                    "psnr": best.metrics["psnr"] if best else None,
                    "ssim": best.metrics["ssim"] if best else None,
                }
            )
        return out


# --------------------------------------------------------------------------- cube preparation


def bench_split(
    ds: xr.Dataset, *, holdout: float = 0.2, crop: int | None = None
) -> tuple[xr.Dataset, xr.Dataset | None, str]:
    """The part of a cube to bench, its history and a sentence saying what was chosen.

    Cubes with two or more dates are benched on their held-out dates
    (:func:`xr_d2ar.datasets.split_time`), the earlier dates being the history (used by the
    climatology reference); single-date cubes are benched whole, without history. ``crop`` keeps
    the central ``crop x crop`` pixels (applied to both).

    Returns
    -------
    (cube, history, subset) : (Dataset, Dataset or None, str)
    """
    from xr_d2ar.datasets import split_time

    ny, nx = ds.sizes["y"], ds.sizes["x"]
    where = f"full {ny}x{nx} grid"
    if crop is not None:
        if crop < 8:
            raise ValueError(f"crop must be at least 8 pixels (SSIM window). Got {crop} instead.")
        if crop < ny or crop < nx:
            y0, x0 = max(0, (ny - crop) // 2), max(0, (nx - crop) // 2)
            ds = ds.isel(y=slice(y0, y0 + crop), x=slice(x0, x0 + crop))
            where = (
                f"central {ds.sizes['y']}x{ds.sizes['x']} crop (rows {y0}-{y0 + ds.sizes['y'] - 1},"
                f" cols {x0}-{x0 + ds.sizes['x'] - 1}) of the {ny}x{nx} grid"
            )
    n = ds.sizes["time"]
    train, held = split_time(ds, holdout=holdout)
    if held.sizes["time"] == 0:
        return ds.load(), None, f"the single date, {where}; no history"
    subset = f"held-out dates (last {held.sizes['time']} of {n}), {where}"
    return held.load(), train.load(), subset


# --------------------------------------------------------------------------- search


@dataclass
class _Trial:
    payload: bytes
    seconds: float

    @property
    def nbytes(self) -> int:
        return len(self.payload)


class _Trials:
    """Compressions of one cube by one codec, cached by knob value."""

    def __init__(self, codec: BaselineCodec, ds: xr.Dataset, history: xr.Dataset | None) -> None:
        self.codec, self.ds, self.history = codec, ds, history
        self.original_bytes = int(ds["reflectance"].nbytes)
        self.cache: dict[float, _Trial] = {}

    def run(self, param: float | None) -> _Trial:
        t0 = time.perf_counter()
        payload = bytes(self.codec.compress(self.ds, param, history=self.history))
        return _Trial(payload, time.perf_counter() - t0)

    def ratio(self, u: float) -> float:
        """Ratio at knob position ``u`` (log of the knob, negated if larger compresses less)."""
        if u not in self.cache:
            self.cache[u] = self.run(self.param(u))
        return self.original_bytes / max(self.cache[u].nbytes, 1)

    def param(self, u: float) -> float:
        lo, hi = self.codec.param_range  # type: ignore[misc]
        p = math.exp(u if self.codec.ratio_increases else -u)
        return min(max(p, lo), hi)

    def bounds(self) -> tuple[float, float]:
        lo, hi = (math.log(v) for v in self.codec.param_range)  # type: ignore[union-attr]
        return (lo, hi) if self.codec.ratio_increases else (-hi, -lo)


def _search(
    trials: _Trials, target: float, tolerance: float, max_trials: int
) -> tuple[float | None, str]:
    """Knob position with ratio in [target, target * (1 + tolerance)], or the closest above it.

    Returns ``(u, note)``; ``u`` is None when the target cannot be reached.
    """
    u_lo, u_hi = trials.bounds()
    r_hi = trials.ratio(u_hi)
    if r_hi < target:
        return None, f"largest ratio {r_hi:.4g}"
    if trials.ratio(u_lo) >= target:
        return u_lo, "finest setting already exceeds the target"
    goal = math.log(target * (1 + tolerance / 2))
    for step in range(max_trials):
        above = [u for u in trials.cache if trials.ratio(u) >= target]
        b = min(above)
        below = [u for u in trials.cache if trials.ratio(u) < target and u < b]
        a = max(below) if below else u_lo
        if trials.ratio(b) <= target * (1 + tolerance) or b - a < 1e-4:
            return b, ""
        la, lb = math.log(trials.ratio(a)), math.log(trials.ratio(b))
        frac = (goal - la) / (lb - la) if lb > la and step % 3 != 2 else 0.5
        frac = min(max(frac, 0.05), 0.95)  # interpolation, safeguarded; every 3rd step bisects
        trials.ratio(a + frac * (b - a))
    b = min(u for u in trials.cache if trials.ratio(u) >= target)
    return b, f"stopped after {max_trials} trials"


# --------------------------------------------------------------------------- harness


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
            cpu = next(names, cpu)
    except OSError:
        pass
    from xr_d2ar import __version__

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "xr_d2ar": __version__,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%MZ"),
    }


def _resolve(codecs: Sequence[str | BaselineCodec] | None) -> list[BaselineCodec]:
    if codecs is None:
        from xr_d2ar.baselines import _codec_class

        return [get_codec(n) for n in codec_names() if _codec_class(n).is_available()]
    return [c if isinstance(c, BaselineCodec) else get_codec(c) for c in codecs]


def _finish(
    row: BenchRow, trials: _Trials, u: float | None, scorer: Scorer, like: xr.Dataset
) -> BenchRow:
    """Re-time the chosen encode (warm), time the decode, score the reconstruction."""
    param = None if u is None else trials.param(u)
    trial = trials.run(param)
    codec, da = trials.codec, trials.ds["reflectance"]
    t0 = time.perf_counter()
    decoded = codec.decompress(trial.payload, like=like, history=trials.history)
    dec_s = time.perf_counter() - t0
    if decoded.shape != da.shape or decoded.dtype != da.dtype:
        raise D2arError(
            f"Codec {codec.name!r} decoded shape {decoded.shape} dtype {decoded.dtype}; expected "
            f"{da.shape} {da.dtype}. The codec is broken: fix its decompress()."
        )
    mb = trials.original_bytes / 1e6
    row.param, row.nbytes = param, trial.nbytes
    row.ratio = trials.original_bytes / max(trial.nbytes, 1)
    row.encode_mbps = mb / max(trial.seconds, 1e-9)
    row.decode_mbps = mb / max(dec_s, 1e-9)
    row.metrics = scorer(da.copy(data=decoded))
    return row


def run_bench(
    ds: xr.Dataset,
    *,
    codecs: Sequence[str | BaselineCodec] | None = None,
    ratios: Sequence[float] = (10, 100, 1000, 10000),
    history: xr.Dataset | None = None,
    name: str | None = None,
    subset: str = "",
    classify: bool = True,
    tolerance: float = 0.05,
    max_trials: int = 10,
    seed: int = 0,
    progress: bool | None = None,
) -> BenchResult:
    """Run every codec on a canonical cube at every target ratio and score the reconstructions.

    Parameters
    ----------
    ds : xarray.Dataset
        Canonical cube (loaded into memory); see :func:`bench_split` for choosing it.
    codecs : sequence of str or BaselineCodec, optional
        Names (:func:`xr_d2ar.baselines.codec_names`) or instances; default every available one.
    ratios : sequence of float
        Target compression ratios (each > 1).
    history : xarray.Dataset, optional
        Earlier observations of the same grid, for codecs that need them (climatology).
    name, subset : str
        Cube name (also the report's file stem; default ``"cube"``) and a sentence on what part
        of the cube is benched.
    classify : bool
        Include the classification utility (random forest per cube).
    tolerance : float
        Accept an achieved ratio within ``[target, target * (1 + tolerance)]``.
    max_trials : int
        Most compressions per target in the search (beyond the two ends of the knob's range).
    seed : int
        Seed of the metric sampling.
    progress : bool, optional
        Progress bar; default from ``xr_d2ar.get_options()["progress"]``.

    Returns
    -------
    BenchResult
    """
    from tqdm.auto import tqdm

    targets = sorted(float(r) for r in ratios)
    if not targets or targets[0] <= 1:
        raise ValueError(f"ratios must be numbers above 1. Got {list(ratios)!r} instead.")
    if "reflectance" not in ds.data_vars:
        raise CubeValidationError(
            "run_bench takes a canonical cube (Dataset with 'reflectance'). Use "
            "xr_d2ar.datasets.open_cube(...).",
            missing="reflectance",
        )
    resolved = _resolve(codecs)
    da = ds["reflectance"]
    labels = ds["label"] if "label" in ds.data_vars else None
    scorer = Scorer(da, labels=labels, classify=classify, seed=seed)
    like = ds.drop_vars(list(ds.data_vars))  # coordinates only: decoders never see the values
    jobs = [(c, t) for c in resolved for t in (targets if c.param_range else [None])]
    show = get_options()["progress"] if progress is None else progress
    rows: list[BenchRow] = []
    trials_of: dict[str, _Trials] = {}
    for codec, target in tqdm(jobs, desc=f"bench {name or ''}".strip(), disable=not show):
        row = BenchRow(codec=codec.name, target_ratio=target, status="ok")
        if codec.needs_history and history is None:
            row.status, row.note = "no history", "no earlier dates of this place"
            rows.append(row)
            continue
        trials = trials_of.setdefault(codec.name, _Trials(codec, ds, history))
        u = None
        if target is not None:
            u, row.note = _search(trials, target, tolerance, max_trials)
            row.trials = len(trials.cache)
            if u is None:
                row.status = "cannot reach"
                rows.append(row)
                continue
        row = _finish(row, trials, u, scorer, like)
        if target is not None and row.ratio > target * (1 + tolerance):
            row.in_window = False  # e.g. the finest setting already compresses more
            row.note = f"{row.ratio:.4g}x is above the {target:g}x window, so not a result at " \
                f"{target:g}x" + (f" ({row.note})" if row.note else "")
        rows.append(row)
    fill = da.attrs.get("_FillValue")
    notes = {
        "ratio": f"original bytes ({da.dtype}) / payload bytes incl. all headers",
        "speed": "MB/s = original MB / wall seconds, one thread, encode and decode apart",
        "psnr_data_range": (
            f"{scorer.data_range:.6g} (percentile 99.9 - 0.1 of the valid original values, all "
            "bands); per-band PSNR and SSIM use each band's own range"
        ),
        "nodata": f"pixels equal to _FillValue={fill} are coded but left out of every metric",
        "search": f"ratio within [target, target*(1+{tolerance})], at most {max_trials} trials",
    }
    return BenchResult(
        cube=name or "cube",
        subset=subset,
        shape=[int(s) for s in da.shape],
        dtype=str(da.dtype),
        original_bytes=int(da.nbytes),
        history="none" if history is None else f"{history.sizes['time']} earlier dates",
        codecs={c.name: c.describe() for c in resolved},
        rows=rows,
        machine=_machine(),
        notes=notes,
    )


# --------------------------------------------------------------------------- reports


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else ("inf" if v > 0 else "-inf" if v < 0 else "nan")
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.{digits}g}" if abs(v) < 1e4 else f"{v:.3e}"
    return str(v)


def _metric(row: BenchRow, key: str) -> Any:
    m = row.metrics or {}
    return m.get("classification", {}).get(key) if key.endswith("agreement") else m.get(key)


def to_markdown(result: BenchResult) -> str:
    """The report as Markdown: context, one table row per codec and target, best per target."""
    r0 = next((r for r in result.rows if r.metrics), None)
    m0 = r0.metrics if r0 else {}
    cls = m0.get("classification", {})
    mach = result.machine
    lines = [
        f"# Bench: {result.cube}",
        "",
        (
            f"- data: {result.subset}; shape {tuple(result.shape)} {result.dtype}, "
            f"{result.original_bytes / 1e6:.3f} MB; history: {result.history}"
        ),
        (
            f"- machine: {mach.get('cpu')}, {mach.get('cores')} cores, {mach.get('platform')}; "
            f"Python {mach.get('python')}; xr_d2ar {mach.get('xr_d2ar')}; {mach.get('date')}"
        ),
    ]
    lines += [f"- {k}: {v}" for k, v in result.notes.items()]
    if m0:
        ndvi = "/".join(m0.get("ndvi_bands", [])) or m0.get("ndvi_note", "-")
        lines.append(f"- NDVI bands: {ndvi}")
    if cls:
        lines.append(
            f"- classification: random forest on original spectra, labels: {cls['label_source']}, "
            f"{cls['n_classes']} classes, {cls['n_train']} train / {cls['n_eval']} eval pixels; "
            f"accuracy on the original {cls['accuracy_original']:.3f}; "
            "class. agree = share of pixels given the same class from the reconstruction as from "
            "the original; (bal.) = averaged over classes"
        )
    lines += [
        "",
        (
            "| codec | target | achieved | knob | PSNR dB | SSIM | SAM deg | NDVI MAE |"
            " max abs err | class. agree (bal.) | enc MB/s | dec MB/s | bytes | note |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result.rows:
        target = "-" if r.target_ratio is None else f"{r.target_ratio:g}"
        if r.status != "ok":
            lines.append(f"| {r.codec} | {target} | {r.status} |" + " |" * 10 + f" {r.note} |")
            continue
        vals = [_fmt(_metric(r, k)) for k, _ in PLOT_METRICS[:-1]]
        vals.append(f"{_fmt(_metric(r, 'agreement'))} ({_fmt(_metric(r, 'balanced_agreement'))})")
        achieved = f"{r.ratio:.4g}" + ("" if r.in_window else " (above)")
        lines.append(
            f"| {r.codec} | {target} | {achieved} | {_fmt(r.param)} | "
            + " | ".join(vals)
            + f" | {r.encode_mbps:.3g} | {r.decode_mbps:.3g} | {r.nbytes} | {r.note} |"
        )
    lines += [
        "",
        "## Best classical codec per target ratio (highest PSNR among those reaching it)",
        "",
        "| target | codec | achieved | PSNR dB | SSIM |",
        "|---|---|---|---|---|",
    ]
    for b in result.best_by_ratio():
        if b["codec"] is None:
            lines.append(f"| {b['target_ratio']:g} | none reaches it | | | |")
        else:
            lines.append(
                f"| {b['target_ratio']:g} | {b['codec']} | {b['ratio']:.4g} | "
                f"{_fmt(b['psnr'])} | {_fmt(b['ssim'])} |"
            )
    lines += ["", "## Codecs", "", "| codec | knob | layout | library |", "|---|---|---|---|"]
    for name, d in result.codecs.items():
        knob = f"{d['param_name']} in {d['param_range']}" if d["param_name"] else "none"
        lines.append(f"| {name} | {knob} | {d['layout']} | {d['library']} |")
    return "\n".join(lines) + "\n"


def plot_rd(result: BenchResult, path: str | os.PathLike) -> Path:
    """Rate-distortion figure (PNG): one panel per metric against achieved ratio, log x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5), constrained_layout=True)
    names = list(dict.fromkeys(r.codec for r in result.rows))
    for ax, (key, label) in zip(axes.flat, PLOT_METRICS):
        for i, name in enumerate(names):
            pts = sorted(
                (r.ratio, _metric(r, key))
                for r in result.rows
                if r.codec == name and r.status == "ok" and _metric(r, key) is not None
            )
            pts = [(x, y) for x, y in pts if math.isfinite(y)]
            if not pts:
                continue
            xs, ys = zip(*pts)
            style = "-o" if name in CLASSICAL else "s"
            ax.plot(xs, ys, style, color=f"C{i % 10}", label=name, ms=5 if len(xs) > 1 else 9)
        ax.set_xscale("log")
        ax.set_xlabel("compression ratio (achieved)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    # the legend goes on the first panel with a curve (PSNR is infinite, so not drawn, for an
    # exact reconstruction); with none at all, say so rather than leave blank axes
    drawn = [ax for ax in axes.flat if ax.get_legend_handles_labels()[0]]
    if drawn:
        drawn[0].legend(fontsize=8)
    else:
        axes.flat[0].text(0.5, 0.5, "no codec gave a result\n(see the report's status column)",
                          ha="center", va="center", transform=axes.flat[0].transAxes)
    fig.suptitle(f"{result.cube}: {result.subset}", fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def read_report(path: str | os.PathLike) -> BenchResult:
    """Read a ``<cube>.json`` written by :func:`write_report` back into a :class:`BenchResult`."""
    d = json.loads(Path(path).read_text())
    d["rows"] = [BenchRow(**row) for row in d["rows"]]
    return BenchResult(**d)


def summary_markdown(results: Sequence[BenchResult]) -> str:
    """One table over cubes: the best classical codec at each target, and the image-mean reference."""
    lines = [
        ("| cube | shape (t, band, y, x) | target | best classical | achieved | PSNR dB | SSIM |"
        " image-mean: ratio, PSNR dB |"),
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in sorted(results, key=lambda r: r.cube):
        ref = next((r for r in result.rows if r.codec == "image-mean" and r.status == "ok"), None)
        ref_cell = f"{ref.ratio:.0f}x, {ref.metrics['psnr']:.1f}" if ref else "-"
        for b in result.best_by_ratio():
            best = (
                f"{b['codec']} | {b['ratio']:.4g} | {b['psnr']:.1f} | {b['ssim']:.3f}"
                if b["codec"]
                else "none reaches it | | |"
            )
            lines.append(
                f"| {result.cube} | {tuple(result.shape)} | {b['target_ratio']:g} | {best} | "
                f"{ref_cell} |"
            )
    return "\n".join(lines) + "\n"


def write_summary(out_dir: str | os.PathLike) -> Path:
    """Write ``SUMMARY.md`` in ``out_dir`` from every ``<cube>.json`` report there; return its path."""
    out = Path(out_dir)
    reports = sorted(out.glob("*.json"))
    if not reports:
        raise FileNotFoundError(f"No bench reports (*.json) in {out}. Run d2ar bench --out {out} first.")
    results = [read_report(p) for p in reports]
    machines = sorted({f"{r.machine.get('cpu')}, {r.machine.get('cores')} cores" for r in results})
    dates = sorted(str(r.machine.get("date")) for r in results)
    head = [
        "# d2ar bench: best classical codec per target ratio, all cubes",
        "",
        f"- machine: {'; '.join(machines)}; runs from {dates[0]} to {dates[-1]}",
        "- ratio = original bytes in the source dtype / compressed bytes incl. headers; PSNR over all",
        "  bands with the data range stated in each cube's report; details in `<cube>.md`",
        "",
        "",
    ]
    path = out / "SUMMARY.md"
    path.write_text("\n".join(head) + summary_markdown(results))
    return path


def write_report(result: BenchResult, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``<cube>.json``, ``.md`` and ``.png`` into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / result.cube
    paths = {"json": stem.with_suffix(".json"), "md": stem.with_suffix(".md")}
    paths["json"].write_text(json.dumps(result.to_dict(), indent=1, allow_nan=False) + "\n")
    paths["md"].write_text(to_markdown(result))
    paths["png"] = plot_rd(result, stem.with_suffix(".png"))
    return paths
