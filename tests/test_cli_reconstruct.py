"""``d2ar reconstruct``: a token store back to NetCDF or Zarr, in canonical form."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from common import cube, token_store

from xr_d2ar import datasets
from xr_d2ar.backend import open_dataset
from xr_d2ar.cli import main

CBERS = "cbers4_awfi_bahia"


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_reconstruct_writes_a_canonical_cube(tmp_path, suffix, capsys):
    path = token_store(CBERS, 6, 2, 300.0)
    out = tmp_path / f"cube{suffix}"
    assert main(["reconstruct", str(path), str(out), "--no-progress"]) == 0
    assert "wrote" in capsys.readouterr().out
    again = (
        xr.open_dataset(out, engine=datasets.NETCDF_ENGINE, mask_and_scale=False)
        if suffix == ".nc"
        else xr.open_zarr(out, mask_and_scale=False, consolidated=False)
    ).load()
    assert datasets.open_cube(out)["reflectance"].dtype == again["reflectance"].dtype  # canonical
    src = cube(CBERS, 6)
    xr.testing.assert_identical(again.drop_vars("reflectance"), src.drop_vars("reflectance"))
    assert again["reflectance"].dtype == src["reflectance"].dtype
    decoded = open_dataset(path)["reflectance"].values
    np.testing.assert_array_equal(again["reflectance"].values, decoded)
    assert main(["reconstruct", str(path), str(out)]) == 1
    assert "Pass --overwrite" in capsys.readouterr().err


def test_an_output_it_cannot_write_is_refused_before_decoding(tmp_path, capsys):
    """out.tif would silently become a Zarr folder, and a missing parent folder would fail
    deep in HDF5: both are refused up front, naming the fix."""
    path = token_store(CBERS, 6, 2, 300.0)
    assert main(["reconstruct", str(path), str(tmp_path / "out.tif")]) == 1
    assert "ends in .nc for NetCDF" in capsys.readouterr().err
    assert not (tmp_path / "out.tif").exists()
    assert main(["reconstruct", str(path), str(tmp_path / "no" / "out.nc")]) == 1
    assert "does not exist. Create it first" in capsys.readouterr().err
