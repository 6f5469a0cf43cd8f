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
    text = capsys.readouterr().out
    sizes = store.store_sizes(tmp_path / "worldcereal_flanders_a_s2.d2ar.zarr")
    assert f"{sizes.token_ratio:,.1f}x tokens only" in text
    assert f"{sizes.store_ratio:,.1f}x whole store" in text
    psnr, ssim = map(float, re.search(r"PSNR (-?\d+\.\d+) dB, SSIM (-?\d\.\d+)", text).groups())
    # the demo compresses the held-out dates at 1000x: the prior's recorded quality there
    record = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "prior_quality.json"
    cubes = {c["cube"]: c for c in json.loads(record.read_text())["cubes"]}
    row = next(r for r in cubes["worldcereal_flanders_a_s2"]["rows"] if r["target"] == 1000)
    assert psnr == pytest.approx(row["metrics"]["psnr"], abs=0.25)
    assert ssim == pytest.approx(row["metrics"]["ssim"], abs=0.01)
    figure = tmp_path / "worldcereal_flanders_a_s2.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 20_000
