"""The token Dataset: layout, attributes, Zarr encoding and size accounting.

A compressed cube is an ordinary :class:`xarray.Dataset`::

    tokens   (time, tile_y, tile_x, token) int32   control tokens, entropy-coded in Zarr
    nodata   (time, band, y, x) uint8               1 where the source held its _FillValue, 2 NaN
                                                    (CF flags; lossless)
    valid, scene_class, label, crop_type, ...      every other source variable, verbatim (lossless)
    coords   time, sensor, band, wavelength, bandwidth, ... (every source coordinate without y/x),
             spatial_ref (CRS), tile_lat / tile_lon (tile_y, tile_x) tile centres in degrees
    attrs    d2ar_* : model name / sha256 / size, tile size, tokens kept, target ratio, decode
             seed and steps, source dtype / shape / chunks / scale / offset / fill, CRS, and
             ``d2ar_manifest``:
             typed JSON (zlib + base64) of every source variable's dims, dtype and attrs, so that
             :func:`restore` rebuilds an identical-looking Dataset.

``x``/``y`` are stored as ``start + step * i`` when that reproduces them bit for bit, else verbatim.
"""

from __future__ import annotations

import base64
import json
import os
import warnings
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from xr_d2ar.errors import CubeValidationError, IncompleteStoreError
from xr_d2ar.tiling import TileGrid

__all__ = [
    "FORMAT_VERSION",
    "StoreSizes",
    "TokenLayout",
    "build",
    "chunk_files",
    "encoding",
    "for_zarr",
    "restore",
    "store_sizes",
]

FORMAT_VERSION = 1
TOKENS, NODATA, TILE_LAT, TILE_LON = "tokens", "nodata", "tile_lat", "tile_lon"
#: Codes of the ``nodata`` variable (CF flags): the source held its fill value / NaN there.
NODATA_FILL, NODATA_NAN = 1, 2
RESERVED = (TOKENS, NODATA, TILE_LAT, TILE_LON)
_MASK_CLEVEL = 9


# --------------------------------------------------------------------------- typed JSON


def to_json(value: Any) -> Any:
    """JSON-ready form of an attribute value that keeps numpy types (arrays, scalars, dates)."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "OUS":
            return {"__ndarray__": value.dtype.str, "data": value.tolist()}
        return {
            "__ndarray__": value.dtype.str,
            "b64": base64.b64encode(value.tobytes()).decode(),
            "shape": list(value.shape),
        }
    if isinstance(value, np.generic):
        return {"__scalar__": value.dtype.str, "b64": base64.b64encode(value.tobytes()).decode()}
    if isinstance(value, bytes):
        return {"__bytes__": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return {"__tuple__": [to_json(v) for v in value]}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return {"__float__": repr(value)}
    return value


def from_json(value: Any) -> Any:
    """Inverse of :func:`to_json`."""
    if isinstance(value, list):
        return [from_json(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__ndarray__" in value:
        dtype = np.dtype(value["__ndarray__"])
        if "data" in value:
            return np.array(value["data"], dtype=dtype)
        raw = base64.b64decode(value["b64"])
        return np.frombuffer(raw, dtype=dtype).reshape(value["shape"]).copy()
    if "__scalar__" in value:
        return np.frombuffer(base64.b64decode(value["b64"]), np.dtype(value["__scalar__"]))[0]
    if "__bytes__" in value:
        return base64.b64decode(value["__bytes__"])
    if "__tuple__" in value:
        return tuple(from_json(v) for v in value["__tuple__"])
    if "__float__" in value:
        return float(value["__float__"])
    return {k: from_json(v) for k, v in value.items()}


# --------------------------------------------------------------------------- layout


def _regular(values: np.ndarray) -> dict[str, Any] | None:
    """``{start, step, size}`` when ``start + step * arange(size)`` equals ``values`` exactly."""
    values = np.asarray(values)
    if values.dtype != np.float64 or values.size < 2:
        return None
    start, step = float(values[0]), float(values[1] - values[0])
    rebuilt = start + step * np.arange(values.size, dtype=np.float64)
    return (
        {"start": start, "step": step, "size": int(values.size)}
        if np.array_equal(rebuilt, values)
        else None
    )


@dataclass(frozen=True)
class TokenLayout:
    """Everything needed to decode a token Dataset, as stored in its ``d2ar_*`` attributes.

    Attributes
    ----------
    model_name, model_sha256 : str
        The prior that made the tokens (sha256 of its weights file).
    model_nbytes : int
        Size of the prior's weights file (bytes), reported beside ratios.
    tile_size : int
        Tile side T (pixels).
    n_tokens : int
        Tokens kept per tile (a prefix of the prior's K).
    codebook_size : int
        Tokens lie in ``[0, codebook_size)``.
    ratio : float or None
        Target compression ratio asked for (None when ``tokens=`` was given).
    seed, steps : int
        Decode noise seed and sampler steps.
    variable : str
        Name of the compressed variable (``"reflectance"``).
    kind : str
        ``"Dataset"`` or ``"DataArray"``: what :meth:`reconstruct` returns.
    name : str or None
        Name of the source DataArray (``kind == "DataArray"``).
    dtype : str
        Source storage dtype (numpy ``dtype.str``).
    shape : tuple of int
        Source shape ``(time, band, y, x)``.
    chunks : tuple of tuple of int or None
        Dask chunks of the source (None when it was in memory).
    scale_factor, add_offset : float
        Physical value = stored * scale_factor + add_offset.
    fill_value : float or None
        Source nodata (NaN for float cubes).
    crs : str
        CRS label: ``AUTHORITY:CODE`` when known, else its PROJ string (the CRS itself is the
        ``spatial_ref`` coordinate).
    manifest : dict
        Typed JSON of the source variables and attrs (see :func:`restore`); stored as
        base64 of zlib-compressed JSON (it is counted in the store size).
    """

    model_name: str
    model_sha256: str
    model_nbytes: int
    tile_size: int
    n_tokens: int
    codebook_size: int
    ratio: float | None
    seed: int
    steps: int
    variable: str
    kind: str
    name: str | None
    dtype: str
    shape: tuple[int, ...]
    chunks: tuple[tuple[int, ...], ...] | None
    scale_factor: float
    add_offset: float
    fill_value: float | None
    crs: str
    manifest: dict[str, Any] = field(repr=False)

    @property
    def grid(self) -> TileGrid:
        """Tile grid over the source ``(y, x)``."""
        return TileGrid.for_shape(self.shape[2], self.shape[3], self.tile_size)

    @property
    def nbytes(self) -> int:
        """Bytes of the source array in its storage dtype."""
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize

    def to_attrs(self) -> dict[str, Any]:
        """The ``d2ar_*`` attributes (JSON-ready)."""
        attrs = {"d2ar_format_version": FORMAT_VERSION}
        for key, value in asdict(self).items():
            if key == "manifest":
                raw = json.dumps(value, separators=(",", ":")).encode()
                value = base64.b64encode(zlib.compress(raw, 9)).decode()
            elif key == "fill_value" and value is not None and not np.isfinite(value):
                value = repr(value)
            elif key == "chunks" and value is not None:
                value = [list(c) for c in value]
            elif key == "shape":
                value = list(value)
            attrs[f"d2ar_{key}"] = value
        return attrs

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> TokenLayout:
        """Read the layout back from a token Dataset's attributes."""
        if attrs.get(INCOMPLETE):
            raise IncompleteStoreError(
                "This token store is incomplete: writing its chunks failed or was interrupted "
                "(it still carries the 'd2ar_incomplete' attribute), so missing tiles would "
                "decode to made-up values. Compress the cube again over it "
                "(tokens.d2ar.to_zarr(path, mode='w'), or d2ar compress ... --overwrite).",
                missing=INCOMPLETE,
            )
        version = attrs.get("d2ar_format_version")
        if version is None:
            raise CubeValidationError(
                "This is not an xr_d2ar token Dataset/store (no 'd2ar_format_version' attribute). "
                "Make one with ds.d2ar.compress(...) or open the cube with xr.open_dataset "
                "instead.",
                missing="d2ar_format_version",
            )
        if int(version) > FORMAT_VERSION:
            raise CubeValidationError(
                f"Token store format {version} is newer than this xr_d2ar reads "
                f"({FORMAT_VERSION}). "
                "Upgrade xr_d2ar."
            )
        values = {}
        for name in cls.__dataclass_fields__:
            value = attrs[f"d2ar_{name}"]
            if name == "manifest":
                value = json.loads(zlib.decompress(base64.b64decode(value)))
            elif name == "fill_value" and isinstance(value, str):
                value = float(value)
            elif name == "shape":
                value = tuple(int(v) for v in value)
            elif name == "chunks" and value is not None:
                value = tuple(tuple(int(v) for v in c) for c in value)
            values[name] = value
        return cls(**values)


def token_chunks(
    chunks: tuple[tuple[int, ...], ...], tile: int
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Token chunks ``(time, tile_y, tile_x)`` of tile-aligned source chunks ``(t, b, y, x)``."""
    return (
        chunks[0],
        tuple(-(-c // tile) for c in chunks[2]),
        tuple(-(-c // tile) for c in chunks[3]),
    )


def build(
    source: xr.Dataset,
    tokens: Any,
    nodata: Any,
    lat: np.ndarray,
    lon: np.ndarray,
    layout_fields: dict[str, Any],
) -> xr.Dataset:
    """Assemble the token Dataset of a canonical cube.

    Parameters
    ----------
    source : xarray.Dataset
        Canonical cube (the compressed variable is ``layout_fields['variable']``).
    tokens : array (time, tile_y, tile_x, token) int32
        Control tokens (numpy or Dask).
    nodata : array (time, band, y, x) uint8
        Codes :data:`NODATA_FILL` / :data:`NODATA_NAN` (0 elsewhere).
        True where the source equals its fill value.
    lat, lon : numpy.ndarray (tile_y, tile_x)
        Tile centres in degrees.
    layout_fields : dict
        :class:`TokenLayout` fields except ``manifest`` and ``crs``.
    """
    var = layout_fields["variable"]
    clash = [name for name in RESERVED if name in source.variables]
    if clash:
        raise CubeValidationError(
            f"The cube has variables named {clash}, which the token Dataset uses. Got them in "
            f"{list(source.variables)}. Rename them first, e.g. "
            f"ds.rename({{{clash[0]!r}: 'my_name'}})."
        )
    axes = {name: _regular(source[name].values) for name in ("x", "y")}
    entries, data_vars, coords = [], {}, {}
    for name, variable in source.variables.items():
        attrs = {} if name == "spatial_ref" else variable.attrs
        entries.append(
            {
                "name": name,
                "dims": list(variable.dims),
                "dtype": variable.dtype.str,
                "coord": name in source.coords,
                "attrs": to_json(dict(attrs)),
            }
        )
        if name == var or (name in axes and axes[name] is not None):
            continue
        kept = variable.copy(deep=False)
        kept.attrs = dict(variable.attrs) if name == "spatial_ref" else {}
        kept.encoding = {}
        (coords if name in source.coords else data_vars)[name] = kept
    manifest = {"attrs": to_json(dict(source.attrs)), "variables": entries, "axes": axes}
    fields_ = dict(layout_fields, crs=_crs_name(source), manifest=manifest)
    layout = TokenLayout(**fields_)
    data_vars[TOKENS] = xr.Variable(
        ("time", "tile_y", "tile_x", "token"),
        tokens,
        attrs={"long_name": "D2AR control tokens (coarse to fine)"},
    )
    data_vars[NODATA] = xr.Variable(
        source[var].dims,
        nodata,
        attrs={
            "long_name": f"where {var} held its _FillValue or NaN (restored exactly on decode)",
            "flag_values": np.array([NODATA_FILL, NODATA_NAN], np.uint8),
            "flag_meanings": "fill_value not_a_number",
        },
    )
    coords[TILE_LAT] = xr.Variable(("tile_y", "tile_x"), lat, attrs={"units": "degrees_north"})
    coords[TILE_LON] = xr.Variable(("tile_y", "tile_x"), lon, attrs={"units": "degrees_east"})
    return xr.Dataset(data_vars, coords, attrs=layout.to_attrs())


def _crs_name(source: xr.Dataset) -> str:
    from xr_d2ar.geo import cube_crs

    crs = cube_crs(source)
    auth = crs.to_authority()
    if auth:
        return ":".join(auth)
    with warnings.catch_warnings():  # "lossy": this is a label, the CRS itself is in spatial_ref
        warnings.simplefilter("ignore")
        return crs.to_proj4()


def restore(tokens: xr.Dataset, values: Any) -> xr.Dataset | xr.DataArray:
    """Rebuild the original-looking cube from a token Dataset and the decoded variable.

    Parameters
    ----------
    tokens : xarray.Dataset
        Token Dataset (from :func:`build` or a token store).
    values : array (time, band, y, x)
        Decoded values of the compressed variable in the source dtype (numpy or Dask).

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        Same variables, dims, coords, attrs and dtypes as the source (``layout.kind``).
    """
    layout = TokenLayout.from_attrs(tokens.attrs)
    manifest = layout.manifest
    data_vars, coords = {}, {}
    for entry in manifest["variables"]:
        name, dims, dtype = entry["name"], tuple(entry["dims"]), np.dtype(entry["dtype"])
        attrs = from_json(entry["attrs"])
        axis = manifest["axes"].get(name)
        if name == layout.variable:
            data = values
        elif axis is not None:
            data = axis["start"] + axis["step"] * np.arange(axis["size"], dtype=np.float64)
        else:
            stored = tokens.variables[name]
            data = stored.data if stored.dtype == dtype else stored.astype(dtype).data
            if name == "spatial_ref":
                attrs = dict(stored.attrs)
        (coords if entry["coord"] else data_vars)[name] = xr.Variable(dims, data, attrs=attrs)
    ds = xr.Dataset(data_vars, coords, attrs=from_json(manifest["attrs"]))
    return ds[layout.variable].rename(layout.name) if layout.kind == "DataArray" else ds


# --------------------------------------------------------------------------- Zarr encoding


#: Root attribute of a token store while its chunks are being written, removed once all are:
#: a store left with it (a killed ``d2ar compress``) is refused on open instead of decoding
#: its unwritten tiles from zeros.
INCOMPLETE = "d2ar_incomplete"


def mark_incomplete(path: str | os.PathLike, incomplete: bool) -> None:
    """Set (True) or remove (False) the store's :data:`INCOMPLETE` attribute, keeping its
    metadata compact (it counts in the ratio)."""
    import zarr

    with zarr.config.set({"json_indent": None}):
        group = zarr.open_group(path, mode="r+")
        if incomplete:
            group.attrs[INCOMPLETE] = True
        elif INCOMPLETE in group.attrs:
            del group.attrs[INCOMPLETE]


def for_zarr(ds: xr.Dataset, zarr_format: int) -> xr.Dataset:
    """Copy without encodings; fixed-width strings become variable-length ones for Zarr v3 (which
    specifies those, and warns about fixed-width ones)."""
    ds = ds.copy()
    for name, var in ds.variables.items():
        var.encoding = {}
        if zarr_format == 3 and var.dtype.kind == "U":
            ds[name] = var.load().astype(object)  # small (names, labels): no lazy object array
    return ds


def encoding(tokens: xr.Dataset, *, zarr_format: int = 3) -> dict[str, dict[str, Any]]:
    """Per-variable Zarr encoding of a token Dataset.

    ``tokens`` goes through the ``xr_d2ar.tokens`` codec (entropy coding with the prior's token
    model); ``nodata`` and every other source variable through Blosc-zstd with bit shuffling
    (lossless). Chunks follow the Dask chunks of ``tokens`` (tile-aligned).
    """
    if zarr_format not in (2, 3):
        raise ValueError(f"zarr_format must be 2 or 3. Got {zarr_format!r} instead.")
    layout = TokenLayout.from_attrs(tokens.attrs)
    from xr_d2ar.codecs import TokenCodec, TokenCodecV3

    if zarr_format == 3:
        from zarr.codecs import BloscCodec

        lossless = {
            "compressors": [BloscCodec(cname="zstd", clevel=_MASK_CLEVEL, shuffle="bitshuffle")]
        }
        coded = {
            "serializer": TokenCodecV3(
                model_sha256=layout.model_sha256, model_name=layout.model_name
            ),
            "compressors": None,
        }
    else:
        from numcodecs import Blosc

        lossless = {"compressors": [Blosc("zstd", _MASK_CLEVEL, Blosc.BITSHUFFLE)], "filters": None}
        coded = {
            "compressors": [TokenCodec(layout.model_sha256, layout.model_name)],
            "filters": None,
        }
    dask_chunks = tokens[TOKENS].chunks
    lead = tokens[TOKENS].shape[:3] if dask_chunks is None else [c[0] for c in dask_chunks[:3]]
    t_chunks, y_chunks, x_chunks = (int(c) for c in lead)
    pixel = {
        "time": t_chunks,
        "tile_y": y_chunks,
        "tile_x": x_chunks,
        "token": max(layout.n_tokens, 1),
        "band": layout.shape[1],
        "y": y_chunks * layout.tile_size,
        "x": x_chunks * layout.tile_size,
    }
    out: dict[str, dict[str, Any]] = {}
    for name, variable in tokens.variables.items():
        if name in tokens.dims and name in tokens.indexes:
            continue
        chunks = tuple(min(pixel.get(d, size), size) or 1 for d, size in variable.sizes.items())
        if name == TOKENS:
            out[name] = dict(coded, chunks=chunks)
        elif name not in tokens.coords and variable.ndim:
            out[name] = dict(lossless, chunks=chunks)
    return out


# --------------------------------------------------------------------------- size accounting


@dataclass(frozen=True)
class StoreSizes:
    """Bytes of a token store on disk against the source bytes.

    Attributes
    ----------
    source_bytes : int
        Bytes of the source array in its storage dtype.
    token_bytes : int
        Bytes of the token chunk files (entropy-coded payloads).
    store_bytes : int
        Bytes of every file of the store (tokens, masks, coordinates, metadata).
    model_bytes : int
        Size of the prior's weights file (amortised over an archive; not in the store).
    """

    source_bytes: int
    token_bytes: int
    store_bytes: int
    model_bytes: int

    @property
    def token_ratio(self) -> float:
        """Source bytes / token chunk bytes (``inf`` when no token is stored: ``tokens=0``)."""
        return self.source_bytes / self.token_bytes if self.token_bytes else float("inf")

    @property
    def store_ratio(self) -> float:
        """Source bytes / whole-store bytes."""
        return self.source_bytes / max(self.store_bytes, 1)


def chunk_files(folder: str | os.PathLike) -> list[Path]:
    """The chunk files of one array of a local Zarr v2 or v3 store (its metadata files left out)."""
    meta = {"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"}
    return [p for p in Path(folder).rglob("*") if p.is_file() and p.name not in meta]


def token_headers(path: str | os.PathLike) -> tuple[int, int]:
    """(number of token chunk files, bytes of their payload headers) of a local token store:
    the fixed cost per chunk, beside the entropy-coded tokens."""
    from xr_d2ar.codecs import payload

    files = chunk_files(Path(path) / TOKENS)
    return len(files), sum(payload.read_header(f.read_bytes()).offset for f in files)


def store_sizes(path: str | os.PathLike) -> StoreSizes:
    """Measure a local token store: file sizes summed (not disk blocks)."""
    root = Path(path)
    attrs = _root_attrs(root)
    layout = TokenLayout.from_attrs(attrs)
    files = [p for p in root.rglob("*") if p.is_file()]
    token_bytes = sum(p.stat().st_size for p in chunk_files(root / TOKENS))
    return StoreSizes(
        source_bytes=layout.nbytes,
        token_bytes=token_bytes,
        store_bytes=sum(p.stat().st_size for p in files),
        model_bytes=layout.model_nbytes,
    )


def _root_attrs(root: Path) -> dict[str, Any]:
    """Root attributes of a local Zarr v2 or v3 store, read from its JSON (cheap)."""
    v3 = root / "zarr.json"
    if v3.is_file():
        return json.loads(v3.read_text()).get("attributes", {})
    v2 = root / ".zattrs"
    if v2.is_file():
        return json.loads(v2.read_text())
    raise CubeValidationError(
        f"No Zarr store at {root} (no zarr.json or .zattrs). Got a path that is not a Zarr store. "
        "Check the path.",
        missing="zarr.json",
    )
