"""Inference interface of the D2AR prior: :func:`load_model` and :class:`D2arModel`.

This is the contract the xarray/Zarr layer codes against. Arrays in, arrays out (NumPy); torch stays
inside. Reflectance is physical (scale/offset applied) float32 with NaN at nodata; masks and nodata
are restored by the caller, not here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xr_d2ar._model_cache import cached_model
from xr_d2ar._options import OPTIONS
from xr_d2ar.errors import CubeValidationError, ModelMismatchError, UnknownBandError
from xr_d2ar.model.checkpoint import prior_paths, read_prior, verify_prior
from xr_d2ar.model.conditioning import date_features, geo_features
from xr_d2ar.model.config import ModelConfig
from xr_d2ar.model.flow import SOLVERS, tile_noise
from xr_d2ar.model.net import D2arNet
from xr_d2ar.model.normalise import band_stats, denormalise, normalise
from xr_d2ar.model.stats import apply_means
from xr_d2ar.model.token_model import tokens_for_ratio

__all__ = ["DEFAULT_PRIOR", "D2arModel", "load_model"]

#: The shipped default prior (weights; the JSON config sits beside it).
DEFAULT_PRIOR = Path(__file__).resolve().parents[1] / "prior" / "d2ar-default.safetensors"

_BATCH = {"cpu": 64, "cuda": 1024}  # tiles per forward pass, by device type


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        device = OPTIONS.get("device", "auto")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N'. Got {device!r} instead.")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but torch sees no GPU. Use device='cpu' or 'auto'.")
    return torch.device(device)


def load_model(path: str | os.PathLike | None = None, *, device: str = "auto") -> D2arModel:
    """Load a prior (the shipped default when ``path`` is None); cached per (sha256, device).

    The cache is the process's one model cache (:func:`xr_d2ar._model_cache.cached_model`), shared
    with :func:`~xr_d2ar.codecs.lookup.find_model` and models passed to the Dask layer.

    Parameters
    ----------
    path : str or PathLike, optional
        A prior's ``.safetensors`` or ``.json`` file, its stem, or a folder holding one prior.
    device : str
        ``"auto"`` (option ``device``, else GPU when present), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.

    Returns
    -------
    D2arModel
        The same object for the same weights and device within a process.

    Raises
    ------
    DataNotFoundError
        If the files are missing.
    ModelMismatchError
        If the weights' sha256 differs from the one in the JSON config.

    Examples
    --------
    >>> import xr_d2ar
    >>> model = xr_d2ar.model.load_model(device="cpu")
    >>> model.tile_size, model.n_tokens > 0
    (64, True)
    """
    dev = _resolve_device(device)
    weights, _, sha = verify_prior(DEFAULT_PRIOR if path is None else path)
    return cached_model(sha, str(dev), lambda: D2arModel.from_file(weights, device=dev))


class D2arModel:
    """A loaded prior: encoder, flow decoder, token model and the metadata needed to use them.

    Attributes
    ----------
    name, sha256 : str
        Prior name and hex sha256 of its weights file.
    config : dict
        The JSON config (architecture, bands, normalisation, region/dates, metrics, training).
    tile_size, n_tokens, codebook_size : int
        T, K and the number of distinct token values.
    token_model : numpy.ndarray
        (K, codebook_size) uint32 frequencies (all >= 1), one table per token position.
    token_bits : numpy.ndarray
        (K,) expected entropy-coded bits per token position (cross-entropy on held-out tokens).
    nbytes : int
        Size of the weights file in bytes (report it beside compression ratios).
    path : pathlib.Path or None
        The weights file it was loaded from (None for a model built in memory); Dask workers
        load the same file.
    temperature : float
        Scale of the sampler's starting noise (``config["decode"]["temperature"]``; 1 = plain
        flow sampling, < 1 trades detail for fidelity).
    """

    def __init__(
        self,
        net: D2arNet,
        config: dict[str, Any],
        token_model: np.ndarray,
        *,
        sha256: str,
        nbytes: int,
        device: torch.device,
        path: str | os.PathLike | None = None,
    ) -> None:
        self.net = net.to(device).eval()
        self.path = None if path is None else Path(path).resolve()
        self.config = config
        self.name = str(config.get("name", "d2ar"))
        self.sha256 = sha256
        self.nbytes = int(nbytes)
        self.device = device
        arch: ModelConfig = net.cfg
        self.tile_size = arch.tile_size
        self.n_tokens = arch.n_tokens
        self.codebook_size = arch.codebook_size
        self.token_model = np.asarray(token_model, np.uint32)
        self.token_bits = np.asarray(config["token_bits"], np.float64)
        self.temperature = float(config.get("decode", {}).get("temperature", 1.0))
        self._sensors = {s: i for i, s in enumerate(config["sensors"])}
        self._trained_wl = np.array(sorted({b["wavelength"] for b in config["bands"]}), np.float64)

    @classmethod
    def from_file(cls, path: str | os.PathLike, *, device: torch.device) -> D2arModel:
        """Build from prior files (see :func:`load_model`, which caches)."""
        state, freq, config, sha, nbytes = read_prior(path)
        net = D2arNet(ModelConfig.from_dict(config["architecture"]))
        net.load_state_dict(state)
        weights = prior_paths(path)[0]
        return cls(net, config, freq, sha256=sha, nbytes=nbytes, device=device, path=weights)

    def __repr__(self) -> str:
        return (
            f"<D2arModel {self.name!r} sha256={self.sha256[:12]} tile={self.tile_size} "
            f"K={self.n_tokens} V={self.codebook_size} {self.nbytes / 1e6:.1f} MB on {self.device}>"
        )

    # ------------------------------------------------------------------ checks and rates

    def check_bands(self, wavelength: np.ndarray) -> None:
        """Raise :class:`UnknownBandError` unless every band is one this prior can handle.

        A band qualifies when its centre wavelength (nm) is finite and within
        ``max(100 nm, 15 %)`` of a wavelength the prior was trained on.
        """
        wl = np.asarray(wavelength, np.float64).reshape(-1)
        if wl.size == 0:
            raise UnknownBandError("Got no bands. Pass one wavelength (nm) per band.")
        bad = []
        for w in wl:
            if not np.isfinite(w) or w <= 0:
                bad.append(w)
                continue
            gap = np.abs(self._trained_wl - w).min()
            if gap > max(100.0, 0.15 * w):
                bad.append(w)
        if bad:
            lo, hi = self._trained_wl.min(), self._trained_wl.max()
            raise UnknownBandError(
                f"Prior {self.name!r} was not trained on bands near {[float(b) for b in bad]} nm "
                f"(it knows {self._trained_wl.size} band centres between {lo:.0f} and {hi:.0f} nm). "
                "Drop those bands with ds.drop_sel(band=[...]) or train a prior that covers them.",
                bands=[f"{float(b):g} nm" for b in bad],
            )

    def unknown_sensors(self, sensor: Any) -> list[str]:
        """Sensor names this prior was not trained on (they decode as ``"unknown"``, with the
        prior's generic normalisation)."""
        names = {str(s) for s in np.asarray(sensor).reshape(-1)}
        return sorted(n for n in names if n not in self._sensors or n == "unknown")

    def tokens_for_ratio(self, ratio: float, *, n_bands: int, itemsize: int) -> int:
        """Number of tokens k that keeps a tile at or above ``ratio`` (original / stored bytes).

        ``original = n_bands * T * T * itemsize`` bytes per tile; k is the largest prefix whose
        expected entropy-coded size ``sum(token_bits[:k]) / 8`` fits ``original / ratio``
        (0 = climatology only). ``token_bits`` is the cross-entropy of the token model on tokens
        of the held-out dates of the prior's training places (what new observations cost), so
        real sizes match on average there; entropy-coder framing and per-image conditioning
        (date, sensor) are the store's and are not in this budget.
        """
        if n_bands < 1 or itemsize < 1:
            raise ValueError(f"n_bands and itemsize must be >= 1. Got {n_bands}, {itemsize} instead.")
        original = float(n_bands) * self.tile_size**2 * itemsize
        return tokens_for_ratio(self.token_bits, ratio, original)

    # ------------------------------------------------------------------ conditioning

    def _conditioning(self, lat: Any, lon: Any, time: Any, sensor: Any, n: int) -> tuple[torch.Tensor, ...]:
        lat = np.asarray(lat, np.float64).reshape(-1)
        lon = np.asarray(lon, np.float64).reshape(-1)
        time = np.asarray(time).reshape(-1)
        sensor = np.asarray(sensor).astype(str).reshape(-1)
        for name, arr in (("lat", lat), ("lon", lon), ("time", time), ("sensor", sensor)):
            if arr.shape != (n,):
                raise CubeValidationError(
                    f"{name} needs one value per tile ({n}). Got shape {arr.shape} instead.", missing=name
                )
        if not np.issubdtype(time.dtype, np.datetime64):
            raise CubeValidationError(
                f"time must be datetime64 (one per tile). Got dtype {time.dtype} instead. "
                "Pass ds.time.values.", missing="time",
            )
        if not (np.all(np.isfinite(lat)) and np.all(np.abs(lat) <= 90) and np.all(np.isfinite(lon))):
            raise CubeValidationError(
                "lat/lon must be finite degrees with |lat| <= 90. Got out-of-range values; "
                "compute them with xr_d2ar.geo.lonlat.", missing="lat/lon",
            )
        geo = torch.from_numpy(geo_features(lat, lon, self.net.cfg.geo_octaves))
        date = torch.from_numpy(date_features(time))
        idx = torch.tensor([self._sensors.get(s, 0) for s in sensor], dtype=torch.int64)
        return geo.to(self.device), date.to(self.device), idx.to(self.device)

    def _bands(self, wavelength: Any, bandwidth: Any, n: int) -> tuple[np.ndarray, torch.Tensor]:
        wl = np.asarray(wavelength, np.float64).reshape(-1)
        bw = np.asarray(bandwidth, np.float64).reshape(-1)
        if bw.shape != wl.shape:
            raise UnknownBandError(
                f"wavelength and bandwidth need one value per band. Got {wl.shape} and {bw.shape}."
            )
        self.check_bands(wl)
        wl_t = torch.from_numpy(wl).float().expand(n, -1).to(self.device)
        bw_t = torch.from_numpy(bw).float().expand(n, -1).to(self.device)
        with torch.no_grad():
            emb = self.net.vae.embed_bands(wl_t, bw_t)  # (N, B, E)
        return wl, emb

    # ------------------------------------------------------------------ encode / decode

    def encode_tiles(
        self,
        reflectance: np.ndarray,
        *,
        wavelength: np.ndarray,
        bandwidth: np.ndarray,
        lat: np.ndarray,
        lon: np.ndarray,
        time: np.ndarray,
        sensor: np.ndarray,
        n_tokens: int,
    ) -> np.ndarray:
        """Tiles -> control tokens.

        Parameters
        ----------
        reflectance : numpy.ndarray
            (N, B, T, T) float32 physical values, NaN = nodata.
        wavelength, bandwidth : numpy.ndarray
            (B,) band centre and width, nm.
        lat, lon : numpy.ndarray
            (N,) tile centres, degrees.
        time : numpy.ndarray
            (N,) datetime64 observation times.
        sensor : numpy.ndarray
            (N,) sensor names (e.g. ``"Sentinel-2A"``).
        n_tokens : int
            Tokens kept per tile, ``0 <= n_tokens <= K``.

        Returns
        -------
        numpy.ndarray
            (N, n_tokens) int32 in ``[0, codebook_size)``, coarse -> fine; the first
            ``config["architecture"]["stat_tokens"]`` carry the tile means of the first bands
            (:mod:`~xr_d2ar.model.stats`), the rest are learned.
        """
        x = np.asarray(reflectance)
        t = self.tile_size
        if x.ndim != 4 or x.shape[2:] != (t, t):
            raise CubeValidationError(
                f"reflectance must be (N, B, {t}, {t}) tiles. Got shape {x.shape} instead. "
                "Cut the image with xr_d2ar.tiling.TileGrid.", missing="tiles",
            )
        if not isinstance(n_tokens, (int, np.integer)) or not 0 <= n_tokens <= self.n_tokens:
            raise ValueError(f"n_tokens must be an int in [0, {self.n_tokens}]. Got {n_tokens!r} instead.")
        n = x.shape[0]
        self._conditioning(lat, lon, time, sensor, n)  # validates the per-tile metadata
        wl, emb = self._bands(wavelength, bandwidth, n)
        mean, std = band_stats(self.config["normalisation"], np.asarray(sensor).astype(str).reshape(-1), wl)
        data = np.isfinite(x)
        xn = np.where(data, normalise(np.where(data, x, 0.0).astype(np.float32), mean, std), 0.0)
        out = np.empty((n, n_tokens), np.int32)
        if n_tokens == 0 or n == 0:
            return out
        step = _BATCH[self.device.type]
        for s in range(0, n, step):
            xb = torch.from_numpy(xn[s : s + step].astype(np.float32)).to(self.device)
            mb = torch.from_numpy(data[s : s + step].astype(np.float32)).to(self.device)
            tok = self.net.encode(xb, mb, emb[s : s + step])
            out[s : s + step] = tok[:, :n_tokens].cpu().numpy()
        return out

    def decode_tiles(
        self,
        tokens: np.ndarray,
        *,
        wavelength: np.ndarray,
        bandwidth: np.ndarray,
        lat: np.ndarray,
        lon: np.ndarray,
        time: np.ndarray,
        sensor: np.ndarray,
        tile_index: np.ndarray,
        seed: int = 0,
        steps: int = 8,
        solver: str = "euler",
    ) -> np.ndarray:
        """Control tokens -> reconstructed tiles, deterministic per (tokens, seed, tile_index, backend).

        Parameters
        ----------
        tokens : numpy.ndarray
            (N, k) int, ``k <= K`` (a prefix of what :meth:`encode_tiles` gave; k = 0 allowed).
        wavelength, bandwidth, lat, lon, time, sensor
            As for :meth:`encode_tiles`.
        tile_index : numpy.ndarray
            (N,) int64 global tile ids; with ``seed`` they fix each tile's starting noise.
        seed : int
            Noise seed (>= 0).
        steps : int
            ODE steps of the sampler.
        solver : {"euler", "heun"}

        Returns
        -------
        numpy.ndarray
            (N, B, T, T) float32 physical reflectance.
        """
        tok = np.asarray(tokens)
        if tok.ndim != 2 or not np.issubdtype(tok.dtype, np.integer):
            raise ValueError(f"tokens must be a 2-D integer array (N, k). Got {tok.dtype} {tok.shape} instead.")
        n, k = tok.shape
        if k > self.n_tokens or (tok.size and (tok.min() < 0 or tok.max() >= self.codebook_size)):
            raise ModelMismatchError(
                f"Tokens do not fit prior {self.name!r} (K={self.n_tokens}, values < {self.codebook_size}); "
                f"got k={k}, values in [{tok.min() if tok.size else 0}, {tok.max() if tok.size else 0}]. "
                "Decode with the prior that encoded them (its sha256 is in the store's attrs).",
                expected=self.sha256,
            )
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}. Got {solver!r} instead.")
        index = np.asarray(tile_index, np.int64).reshape(-1)
        if index.shape != (n,):
            raise ValueError(f"tile_index needs one id per tile ({n}). Got shape {index.shape} instead.")
        geo, date, sens = self._conditioning(lat, lon, time, sensor, n)
        wl, emb = self._bands(wavelength, bandwidth, n)
        cfg = self.net.cfg
        shape = (cfg.latent_channels, cfg.latent_size, cfg.latent_size)
        out = np.empty((n, wl.size, self.tile_size, self.tile_size), np.float32)
        step = _BATCH[self.device.type]
        for s in range(0, n, step):
            sl = slice(s, s + step)
            noise = tile_noise(shape, seed=int(seed), tile_index=index[sl]).mul_(self.temperature).to(self.device)
            tb = torch.from_numpy(tok[sl].astype(np.int64)).to(self.device)
            y = self.net.decode(tb, (geo[sl], date[sl], sens[sl]), emb[sl], noise, steps=steps, solver=solver)
            out[sl] = y.float().cpu().numpy()
        out = apply_means(out, tok, cfg.stat_tokens, cfg.codebook_size, cfg.stat_grid)
        mean, std = band_stats(self.config["normalisation"], np.asarray(sensor).astype(str).reshape(-1), wl)
        return denormalise(out, mean, std).astype(np.float32)
