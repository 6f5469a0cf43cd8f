"""CPU decoding of a D2AR prior on cext: the flow network, the ODE sampler and the VAE decoder.

:class:`CextDecoder` mirrors ``D2arModel.decode_tiles`` op for op (velocity.py, vae.py, bands.py,
flow.py of :mod:`xr_d2ar.model`) with the same weights, but every product, convolution, norm,
softmax and activation runs in cext.  Results are bit-identical across cext backends and across
batchings/threads (no op mixes tiles), and equal to torch's decode within float32 tolerance.

Conditioning features (sin/cos of place, date, flow time, band wavelengths) and the starting
noise come from the model package's own functions (float64 numpy/torch, then float32), as the
model documents for the C runtime.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from xr_d2ar import kernels
from xr_d2ar.errors import ModelMismatchError
from xr_d2ar.model.bands import band_features
from xr_d2ar.model.flow import SOLVERS, tile_noise
from xr_d2ar.model.layers import sinusoidal
from xr_d2ar.model.normalise import band_stats, denormalise
from xr_d2ar.model.stats import apply_means
from xr_d2ar.runtime import nn

if TYPE_CHECKING:
    from xr_d2ar.model.api import D2arModel

__all__ = ["CextDecoder", "decode_tiles", "usable_cores"]


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports it, e.g. a container's
    limit), the runtime's default thread count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

_T_FEATURES = 256  # width of the flow-time features (conditioning.py)


class CextDecoder:
    """Decoder of one loaded prior on cext (weights copied once to float32 numpy arrays).

    Parameters
    ----------
    model : D2arModel
        From :func:`xr_d2ar.model.load_model`; its weights (read from the prior's safetensors
        file) and config are used, its torch modules are not run.
    """

    def __init__(self, model: D2arModel) -> None:
        self.model = model
        self.cfg = model.net.cfg
        self.w: nn.Weights = nn.transposed({
            k: np.ascontiguousarray(v.detach().cpu().float().numpy())
            for k, v in model.net.state_dict().items()
        })
        self.blocks = ([nn.FlowBlock(self.w, f"flow.blocks.{i}", self.cfg.flow_heads)
                        for i in range(self.cfg.flow_depth)]
                       if kernels.backend() != "numpy" else None)

    # ---------------------------------------------------------------- flow network
    def _condition(self, t: np.ndarray, geo: np.ndarray, date: np.ndarray,
                   sensor: np.ndarray) -> np.ndarray:
        """Conditioner: t (N,) float32, geo (N, G), date (N, 5), sensor (N,) -> (N, D)."""
        w = self.w
        feats = sinusoidal(torch.from_numpy(np.float32(1000.0) * t), _T_FEATURES).numpy()

        def mlp2(prefix: str, x: np.ndarray) -> np.ndarray:
            return nn.linear(w, prefix + ".fc2", nn.linear(w, prefix + ".fc1", x,
                                                          activation="silu"))

        c = mlp2("flow.cond.t_mlp", feats) + mlp2("flow.cond.geo_mlp", geo)
        return c + mlp2("flow.cond.date_mlp", date) + w["flow.cond.sensor.weight"][sensor]

    def _context(self, codes: np.ndarray) -> list[Any]:
        """Token codes (N, k, D_fsq) -> per block cross-attention keys/values: (N, h, 1+k, d)
        pairs, or with :class:`nn.FlowBlock` the kv Linear itself (N, 1+k, 2D)."""
        w, n, k = self.w, codes.shape[0], codes.shape[1]
        tok = nn.linear(w, "flow.tok_proj", codes) + w["flow.tok_pos"][:k]  # (N, k, D)
        null = np.broadcast_to(w["flow.null"], (n, 1, tok.shape[-1]))
        ctx = nn.layer_norm(w, "flow.norm_ctx", np.concatenate([null, tok], axis=1))
        if self.blocks is not None and kernels.backend() != "numpy":
            return [nn.linear(w, f"flow.blocks.{i}.cross.kv", ctx)
                    for i in range(self.cfg.flow_depth)]
        return [nn.keys_values(w, f"flow.blocks.{i}.cross", ctx, self.cfg.flow_heads)
                for i in range(self.cfg.flow_depth)]

    def velocity(self, z: np.ndarray, t: np.ndarray, geo: np.ndarray, date: np.ndarray,
                 sensor: np.ndarray, kv: list[Any]) -> np.ndarray:
        """VelocityNet.forward: z (N, C, h, w), t (N,) -> velocity (N, C, h, w)."""
        w, cfg = self.w, self.cfg
        _, c, h, wd = z.shape
        silu_c = kernels.activation(self._condition(t, geo, date, sensor), "silu")
        mod = nn.linear(w, "flow.ada", silu_c)  # (N, 6D)
        x = nn.linear(w, "flow.proj_in", nn.patchify(z, cfg.patch_size)) + w["flow.pos"]
        if isinstance(kv[0], np.ndarray):  # fused blocks (see _context)
            scratch = self.blocks[0].scratch(x.shape[0], x.shape[1], kv[0].shape[1])
            for block, ctx_kv in zip(self.blocks, kv, strict=True):
                block(x, mod, ctx_kv, scratch)
        for i in range(cfg.flow_depth if not isinstance(kv[0], np.ndarray) else 0):
            p = f"flow.blocks.{i}"
            s1, g1, a1, s2, g2, a2 = np.split(mod + w[p + ".table"].reshape(1, -1), 6, axis=-1)
            y = nn.modulate(nn.layer_norm(w, None, x), s1, g1)
            x = x + a1[:, None] * nn.attention(w, p + ".attn", y, cfg.flow_heads)
            y = nn.layer_norm(w, p + ".norm_x", x)
            x = x + nn.attention(w, p + ".cross", y, cfg.flow_heads, kv=kv[i])
            y = nn.modulate(nn.layer_norm(w, None, x), s2, g2)
            x = x + a2[:, None] * nn.mlp(w, p + ".mlp", y)
        shift, scale = np.split(nn.linear(w, "flow.final_ada", silu_c), 2, axis=-1)
        x = nn.linear(w, "flow.proj_out", nn.modulate(nn.layer_norm(w, None, x), shift, scale))
        return nn.unpatchify(x, cfg.patch_size, c, h, wd)

    # ---------------------------------------------------------------- VAE decoder
    def band_embedding(self, wavelength: np.ndarray, bandwidth: np.ndarray) -> np.ndarray:
        """BandEmbedding: (B,) nm -> (B, E)."""
        feats = band_features(torch.from_numpy(np.asarray(wavelength, np.float32)),
                              torch.from_numpy(np.asarray(bandwidth, np.float32))).numpy()
        h = nn.linear(self.w, "vae.band_embed.fc1", feats, activation="silu")
        return nn.linear(self.w, "vae.band_embed.fc2", h)

    def vae_decode(self, z: np.ndarray, emb: np.ndarray) -> np.ndarray:
        """VAE.decode: latent z (N, C, h, w), emb (B, E) -> normalised image (N, B, 4h, 4w)."""
        w = self.w
        f = nn.res_block(w, "vae.mid2", nn.res_block(w, "vae.mid1", nn.conv(w, "vae.conv_in", z)))
        f = nn.res_block(w, "vae.res1", nn.conv(w, "vae.up1.conv", kernels.upsample_nearest(f)))
        f = nn.res_block(w, "vae.res2", nn.conv(w, "vae.up2.conv", kernels.upsample_nearest(f)))
        f = kernels.group_norm(f, min(8, f.shape[1]), w["vae.norm_out.weight"],
                               w["vae.norm_out.bias"], eps=1e-6, activation="silu")
        head_w = nn.linear(w, "vae.head.weight", emb)  # (B, C)
        head_b = nn.linear(w, "vae.head.bias", emb)  # (B, 1)
        n, ch, hh, ww = f.shape
        out = np.empty((n, emb.shape[0], hh, ww), np.float32)
        for i in range(n):
            y = kernels.gemm(head_w, f[i].reshape(ch, hh * ww))  # (B, HW)
            out[i] = (y + head_b).reshape(-1, hh, ww)
        return out

    # ---------------------------------------------------------------- sampler
    def decode_batch(self, tokens: np.ndarray, geo: np.ndarray, date: np.ndarray,
                     sensor: np.ndarray, emb: np.ndarray, noise: np.ndarray, *, steps: int,
                     solver: str) -> np.ndarray:
        """D2arNet.decode: tokens (N, k) + conditioning + noise -> normalised (N, B, T, T).

        (The statistics tokens' mean corrections are applied by :meth:`decode_tiles`.)"""
        codes = self.model.net.token_codes(torch.from_numpy(tokens.astype(np.int64)))
        kv = self._context(codes.numpy().astype(np.float32))
        z, n = noise, noise.shape[0]
        grid = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64).tolist()
        for t0, t1 in pairwise(grid):
            dt = t1 - t0
            v0 = self.velocity(z, np.full(n, t0, np.float32), geo, date, sensor, kv)
            if solver == "heun" and t1 < 1.0:
                v1 = self.velocity(z + dt * v0, np.full(n, t1, np.float32), geo, date, sensor,
                                   kv)
                z = z + dt * 0.5 * (v0 + v1)
            else:
                z = z + dt * v0
        std = self.w["latent_std"][:, None, None]
        return self.vae_decode(z * std + self.w["latent_mean"][:, None, None], emb)

    def decode_tiles(self, tokens: np.ndarray, *, wavelength: Any, bandwidth: Any, lat: Any,
                     lon: Any, time: Any, sensor: Any, tile_index: np.ndarray, seed: int = 0,
                     steps: int = 8, solver: str = "euler", batch: int | None = None,
                     threads: int | None = None) -> np.ndarray:
        """Same contract as ``D2arModel.decode_tiles``, decoded on cext.

        Parameters
        ----------
        tokens : numpy.ndarray
            (N, k) int tokens, ``k <= K``.
        wavelength, bandwidth, lat, lon, time, sensor, tile_index, seed, steps, solver
            As for ``D2arModel.decode_tiles``.
        batch : int, optional
            Tiles per work item (default: 8, or fewer so that every thread has one); results do
            not depend on it.
        threads : int, optional
            Worker threads over batches (default: :func:`usable_cores`); results do not depend
            on it.

        Returns
        -------
        numpy.ndarray
            (N, B, T, T) float32 physical reflectance.
        """
        model = self.model
        tok = np.asarray(tokens)
        if tok.ndim != 2 or not np.issubdtype(tok.dtype, np.integer):
            raise ValueError(
                f"tokens must be a 2-D integer array (N, k). Got {tok.dtype} {tok.shape} instead.")
        n, k = tok.shape
        if k > model.n_tokens or (tok.size and (tok.min() < 0 or tok.max() >= model.codebook_size)):
            raise ModelMismatchError(
                f"Tokens do not fit prior {model.name!r} (K={model.n_tokens}, values < "
                f"{model.codebook_size}). Got k={k}. Decode with the prior that encoded them.",
                expected=model.sha256)
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}. Got {solver!r} instead.")
        if not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"steps must be a positive int. Got {steps!r} instead.")
        index = np.asarray(tile_index, np.int64).reshape(-1)
        if index.shape != (n,):
            raise ValueError(
                f"tile_index needs one id per tile ({n}). Got shape {index.shape} instead.")
        geo, date, sens = (a.cpu().numpy() for a in model._conditioning(lat, lon, time, sensor, n))
        wl = np.asarray(wavelength, np.float64).reshape(-1)
        bw = np.asarray(bandwidth, np.float64).reshape(-1)
        model.check_bands(wl)
        emb = self.band_embedding(wl, bw)
        c, s = self.cfg.latent_channels, self.cfg.latent_size

        def work(lo: int) -> np.ndarray:
            sl = slice(lo, lo + batch)
            noise = tile_noise((c, s, s), seed=int(seed), tile_index=index[sl]).mul_(
                model.temperature).numpy()
            return self.decode_batch(tok[sl], geo[sl], date[sl], sens[sl], emb, noise,
                                     steps=int(steps), solver=solver)

        workers = threads or usable_cores()
        if batch is None:
            batch = max(1, min(8, -(-n // workers)))
        starts = range(0, n, max(int(batch), 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(work, starts))
        out = (np.concatenate(parts) if parts
               else np.empty((0, wl.size, model.tile_size, model.tile_size), np.float32))
        out = apply_means(out, tok, self.cfg.stat_tokens, self.cfg.codebook_size,
                          self.cfg.stat_grid)
        mean, std = band_stats(model.config["normalisation"],
                               np.asarray(sensor).astype(str).reshape(-1), wl)
        return denormalise(out, mean, std).astype(np.float32)


_DECODERS: dict[str, CextDecoder] = {}  # prior sha256 -> decoder (its weights copied once)
_DECODERS_LOCK = threading.Lock()  # one construction per prior, also when Dask threads race


def decode_tiles(model: D2arModel, tokens: np.ndarray, **kwargs: Any) -> np.ndarray:
    """``model.decode_tiles(tokens, **kwargs)`` on cext, with one cached decoder per prior sha256.

    Examples
    --------
    >>> import numpy as np
    >>> from xr_d2ar.model import load_model
    >>> from xr_d2ar import runtime
    >>> model = load_model(device="cpu")
    >>> y = runtime.decode_tiles(model, np.zeros((1, 4), np.int32), wavelength=[665.0],
    ...                          bandwidth=[30.0], lat=[50.9], lon=[4.2],
    ...                          time=np.array(["2018-06-01"], "datetime64[ns]"),
    ...                          sensor=["Sentinel-2A"], tile_index=[0], steps=2)
    >>> y.shape
    (1, 1, 64, 64)
    """
    with _DECODERS_LOCK:
        decoder = _DECODERS.get(model.sha256)
        if decoder is None:
            decoder = _DECODERS[model.sha256] = CextDecoder(model)
    return decoder.decode_tiles(tokens, **kwargs)
