"""``d2ar compress``: real NetCDF in, token store out, sizes printed; errors name the fix."""

from __future__ import annotations

import re

import pytest
from common import cube

from xr_d2ar import datasets, store
from xr_d2ar.cli import main

CBERS = "cbers4_awfi_bahia"  # 18 dates x 4 bands x 50 x 50 int16


def test_compress_a_netcdf_file_and_print_the_measured_ratios(tmp_path, capsys):
    cube(CBERS)  # skips without data
    out = tmp_path / "cbers.d2ar.zarr"
    rc = main(
        [
            "compress",
            str(datasets.data_dir() / f"{CBERS}.nc"),
            str(out),
            "--ratio",
            "500",
            "--no-progress",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    sizes = store.store_sizes(out)
    assert f"{sizes.token_ratio:,.1f}x tokens only ({sizes.token_bytes:,} B)" in text
    assert f"{sizes.store_ratio:,.1f}x whole store ({sizes.store_bytes:,} B)" in text
    assert re.search(r"18 x 4 x 50 x 50 int16, \d+ tokens/tile of 64 px", text)
    assert (out / "zarr.json").is_file()


def test_compress_a_sample_by_name_to_zarr2_with_chunks(tmp_path, capsys):
    cube(CBERS)
    out = tmp_path / "cbers2.zarr"
    assert (
        main(
            [
                "compress",
                CBERS,
                str(out),
                "--tokens",
                "16",
                "--zarr-format",
                "2",
                "--chunks",
                "time=6",
                "--no-progress",
            ]
        )
        == 0
    )
    assert (out / ".zattrs").is_file()
    assert len([p for p in (out / "tokens").iterdir() if p.name[0].isdigit()]) == 3
    assert "16 tokens/tile" in capsys.readouterr().out
    assert main(["compress", CBERS, str(out), "--tokens", "16"]) == 1
    assert "Pass --overwrite" in capsys.readouterr().err


def test_errors_name_the_fix(tmp_path, capsys):
    cube(CBERS)
    assert main(["compress", "no_such_cube", str(tmp_path / "x.zarr")]) == 1
    assert "sample cubes: " in capsys.readouterr().err
    assert main(["compress", CBERS, str(tmp_path / "y.zarr"), "--chunks", "y=20"]) == 1
    assert "cube.chunk(y=" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["compress", CBERS, str(tmp_path / "z.zarr"), "--chunks", "y:20"])
    assert exc.value.code == 2
    assert "name=value" in capsys.readouterr().err


def test_a_bare_geotiff_is_described_on_the_command_line(tmp_path, capsys):
    """A GeoTIFF has no date and numbered bands: the errors name the options, which supply them."""
    src = cube("cbers4_awfi_bahia", 1)
    tif = tmp_path / "one.tif"
    band = src["reflectance"].isel(time=0).drop_vars(["time", "sensor", "wavelength", "bandwidth"])
    band.assign_coords(band=[1, 2, 3, 4]).rio.write_crs(src.rio.crs).rio.to_raster(tif)
    out = tmp_path / "one.d2ar.zarr"
    assert main(["compress", str(tif), str(out), "--no-progress"]) == 1
    assert "(on the command line: --time DATE[,...])" in capsys.readouterr().err
    assert main(["compress", str(tif), str(out), "--time", "2023-06-01", "--no-progress"]) == 1
    assert "--wavelength NM[,...] --bandwidth NM[,...]" in capsys.readouterr().err
    wl = ",".join(f"{w:g}" for w in src["wavelength"].values)
    bw = ",".join(f"{w:g}" for w in src["bandwidth"].values)
    assert main(["compress", str(tif), str(out), "--time", "2023-06-01", "--wavelength", wl,
                 "--bandwidth", bw, "--sensor", "CBERS-4 AWFI", "--no-progress"]) == 0
    import xarray as xr

    rec = xr.open_dataset(out, engine="d2ar")
    assert str(rec["time"].values[0])[:10] == "2023-06-01"
    assert rec["wavelength"].values.tolist() == pytest.approx(src["wavelength"].values.tolist())
    with pytest.raises(SystemExit):
        main(["compress", str(tif), str(out), "--wavelength", "blue"])
    assert "expected comma-separated float values. Got 'blue'" in capsys.readouterr().err


def test_a_failed_compress_leaves_a_store_that_is_refused_not_decoded(tmp_path, capsys):
    """The metadata is written before the chunks: a run that fails (here resources= without a
    cluster; likewise Ctrl-C) leaves the store marked incomplete, and every reader refuses it
    instead of decoding the unwritten tiles from zeros."""
    import xarray as xr

    from xr_d2ar.errors import IncompleteStoreError

    cube(CBERS)
    out = tmp_path / "failed.zarr"
    rc = main(["compress", CBERS, str(out), "--resources", "GPU=1", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and "resources=" in err and "left incomplete" in err
    assert (out / "zarr.json").is_file()  # something is there ...
    with pytest.raises(IncompleteStoreError, match="--overwrite"):
        xr.open_dataset(out, engine="d2ar")  # ... but it does not open
    assert main(["info", str(out)]) == 1
    assert "incomplete" in capsys.readouterr().err
    # writing it again over it gives a complete store, without the mark
    assert main(["compress", CBERS, str(out), "--overwrite", "--no-progress"]) == 0
    assert store.INCOMPLETE not in xr.open_zarr(out, consolidated=False).attrs
    assert xr.open_dataset(out, engine="d2ar")["reflectance"].shape == (18, 4, 50, 50)


def test_describing_options_are_refused_for_a_sample_cube_name(tmp_path, capsys):
    """--variable/--crs/... describe a file; for a sample cube (already described) they would be
    ignored, so they are refused, naming the file path that would take them."""
    cube(CBERS)
    out = tmp_path / "c.zarr"
    assert main(["compress", CBERS, str(out), "--variable", "foo", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "--variable describes a file" in err and f"{CBERS}.nc" in err
    assert not out.exists()


def test_a_misaligned_chunking_names_the_cli_option(tmp_path, capsys):
    cube("landsat8_newyork_p013r032")
    out = tmp_path / "c.zarr"
    rc = main(["compress", "landsat8_newyork_p013r032", str(out), "--chunks", "y=50",
               "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and "whole tiles of 64 px" in err
    assert "(on the command line: --chunks y=64)" in err
