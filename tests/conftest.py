"""Shared fixtures: real sample cubes from ../shared/data (or $XR_D2AR_DATA)."""

from __future__ import annotations

import os

import pytest

from xr_d2ar import datasets
from xr_d2ar.errors import DataNotFoundError


def _data_available() -> bool:
    try:
        return bool(datasets.available())
    except DataNotFoundError:
        return False


HAVE_DATA = _data_available()
needs_data = pytest.mark.skipif(
    not HAVE_DATA,
    reason="sample cubes not found: set XR_D2AR_DATA to the folder of the *.nc cubes (docs/data.md)",
)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Under CI (``XR_D2AR_REQUIRE_DATA=1``, set by .ci/run) missing data fails instead of skipping."""
    if os.environ.get("XR_D2AR_REQUIRE_DATA") == "1" and not HAVE_DATA:
        pytest.exit(
            "XR_D2AR_REQUIRE_DATA=1 but no sample cubes were found: set XR_D2AR_DATA to the folder "
            "of the *.nc cubes (docs/data.md).",
            returncode=1,
        )


@pytest.fixture(scope="session")
def flanders():
    """WorldCereal Flanders A, Sentinel-2 (89 x 10 x 64 x 64 uint16, valid mask, labels)."""
    if not HAVE_DATA:
        pytest.skip("sample cubes not found: set XR_D2AR_DATA (docs/data.md)")
    with datasets.open("worldcereal_flanders_a_s2") as ds:
        return ds.load()


@pytest.fixture(scope="session")
def cbers():
    """CBERS-4 AWFI Bahia (18 x 4 x 50 x 50 int16, fill -9999)."""
    if not HAVE_DATA:
        pytest.skip("sample cubes not found: set XR_D2AR_DATA (docs/data.md)")
    with datasets.open("cbers4_awfi_bahia") as ds:
        return ds.load()
