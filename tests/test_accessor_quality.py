"""Values through a real Zarr store are within the prior's recorded quality on held-out dates.

``benchmarks/results/prior_quality.json`` (``python -m xr_d2ar.train.evaluate``) records, for the
shipped prior, the tokens kept and the metrics reached on the held-out dates of each sample cube,
decoding the prior's tiles directly. The store path (compress -> Zarr -> ``engine="d2ar"``) must
reach the same quality with the same number of tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import xarray as xr
from common import cube, prior

import xr_d2ar.accessor  # noqa: F401
from xr_d2ar import datasets
from xr_d2ar.metrics import Scorer

RECORD = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "prior_quality.json"
CUBES = ["worldcereal_flanders_a_s2", "cbers4_awfi_bahia"]


@pytest.fixture(scope="module")
def record():
    assert RECORD.is_file(), f"{RECORD} is missing: run `python -m xr_d2ar.train.evaluate`."
    data = json.loads(RECORD.read_text())
    assert data["prior"]["sha256"] == prior().sha256, (
        f"{RECORD.name} was made with prior {data['prior']['sha256'][:12]}, not the shipped "
        f"{prior().sha256[:12]}: rerun `python -m xr_d2ar.train.evaluate`."
    )
    return {c["cube"]: c for c in data["cubes"]}


@pytest.mark.slow
@pytest.mark.parametrize("name", CUBES)
def test_store_round_trip_reaches_the_recorded_quality(tmp_path, record, name):
    _, held = datasets.split_time(cube(name))
    row = next(r for r in record[name]["rows"] if r["status"] == "ok" and r["target"] == 1000)
    tokens = held.d2ar.compress(tokens=row["tokens"])
    tokens.d2ar.to_zarr(tmp_path / "q.zarr", progress=False)
    rec = xr.open_dataset(tmp_path / "q.zarr", engine="d2ar", chunks={}).compute()
    labels = held.get("label")
    got = Scorer(held["reflectance"], labels=labels, classify=False)(rec["reflectance"])
    want = row["metrics"]
    assert got["psnr"] == pytest.approx(want["psnr"], abs=0.25)
    assert got["ssim"] == pytest.approx(want["ssim"], abs=0.01)
    assert got["spectral_angle_deg"] == pytest.approx(want["spectral_angle_deg"], abs=0.5)


def test_quality_tables_put_d2ar_beside_the_bench(record):
    """The recorded tables quote the bench reports' own best classical codec and references."""
    from xr_d2ar import bench
    from xr_d2ar.train.evaluate import summary_markdown, to_markdown

    bench_dir = RECORD.parent / "bench"
    result = json.loads(RECORD.read_text())
    name = "worldcereal_flanders_a_s2"
    report = bench.read_report(bench_dir / f"{name}.json")
    best = next(b for b in report.best_by_ratio() if b["target_ratio"] == 1000)
    mean = next(r for r in report.rows if r.codec == "image-mean")
    d2ar = next(r for r in record[name]["rows"] if r["target"] == 1000)
    summary = summary_markdown(result, bench_dir)
    line = next(x for x in summary.splitlines() if x.startswith(f"| {name} | 1000 |"))
    assert f"{d2ar['metrics']['psnr']:.1f} / " in line
    assert f"{best['codec']} {best['psnr']:.1f} / {best['ssim']:.2f}" in line
    assert f"{mean.ratio:.0f}x, {mean.metrics['psnr']:.1f}" in line
    full = to_markdown(result, bench_dir)
    assert f"| ref. | image-mean | - | {mean.ratio:.0f} | {mean.metrics['psnr']:.1f} |" in full
