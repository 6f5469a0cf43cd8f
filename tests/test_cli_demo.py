"""``d2ar demo``: the README's main job runs end to end on a real cube with the shipped prior."""

from __future__ import annotations

import re

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
    assert re.search(r"PSNR -?\d+\.\d+ dB, SSIM -?\d\.\d+", text)
    figure = tmp_path / "worldcereal_flanders_a_s2.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 20_000
