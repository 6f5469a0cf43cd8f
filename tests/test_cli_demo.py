"""``d2ar demo``: the README's main job runs end to end on a real cube with the shipped prior."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from common import cube

from xr_d2ar import store
from xr_d2ar.cli import main


@pytest.mark.slow
def test_demo_prints_measured_ratio_and_quality_and_writes_the_figure(tmp_path, capsys):
    cube("worldcereal_flanders_a_s2")  # skips without data
    assert main(["demo", "--out", str(tmp_path), "--no-progress"]) == 0
    captured = capsys.readouterr()
    text = captured.out
    assert "it/s" not in captured.err  # --no-progress: no bar, also for the exact-ratio pass
    sizes = store.store_sizes(tmp_path / "worldcereal_flanders_a_s2.d2ar.zarr")
    assert f"{sizes.token_ratio:,.1f}x tokens only" in text
    assert f"{sizes.store_ratio:,.1f}x whole store" in text
    psnr, ssim = map(float, re.search(r"PSNR (-?\d+\.\d+) dB, SSIM (-?\d\.\d+)", text).groups())
    k = int(re.search(r"\((\d+) tokens per 64 px tile\)", text).group(1))
    # the demo compresses the held-out dates at 1000x, measured on the store: the prior's recorded
    # quality there (evaluate budgets 3 B of conditioning per image, so it may keep a few tokens fewer)
    record = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "prior_quality.json"
    cubes = {c["cube"]: c for c in json.loads(record.read_text())["cubes"]}
    rows = {r["target"]: r for r in cubes["worldcereal_flanders_a_s2"]["rows"] if r["status"] == "ok"}
    at_1000, at_100 = rows[1000], rows[100]
    assert at_1000["tokens"] <= k < at_100["tokens"]
    assert at_1000["metrics"]["psnr"] - 0.25 <= psnr <= at_100["metrics"]["psnr"] + 0.25
    assert at_1000["metrics"]["ssim"] - 0.01 <= ssim <= at_100["metrics"]["ssim"] + 0.01
    figure = tmp_path / "worldcereal_flanders_a_s2.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 20_000
