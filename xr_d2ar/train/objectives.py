"""Training objectives, one ``nn.Module`` per stage (what DDP wraps): forward returns the loss.

- :class:`VaeObjective`: masked L1 + MSE reconstruction, KL to N(0, I), and the EQ-VAE regulariser:
  with probability ``p_eq`` the sampled latent is transformed (one of the 7 non-trivial 90-degree
  rotations/flips, or a 2x downscale by 2x2 averaging) before decoding and compared with the same transform of the
  image, so decode(transform(z)) ~ transform(x).
- :class:`FlowObjective`: rectified-flow velocity MSE in the normalised latent, weighted by the
  fraction of usable pixels under each latent cell, with nested token dropout (keep a random prefix
  of k tokens: k = 0 with probability ``p_zero``, else half log-uniform, half uniform in [1, K]),
  a random rotation/flip of the latent per tile (the EQ-VAE latent is equivariant to them, so this
  multiplies the distinct training tiles by 8 against overfitting), sensor dropout, and date
  jitter (day of year shifted by N(0, ``date_jitter_days``)) so that the prior cannot recognise a
  training date exactly and must read the image from the tokens. The flow's token context is the
  tile-mean statistics tokens (:mod:`xr_d2ar.model.stats`) then the kept learned tokens; the same
  prefix rule drops from it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from xr_d2ar.model.flow import interpolate, sample_time
from xr_d2ar.model.net import D2arNet

__all__ = ["N_EQ_TRANSFORMS", "FlowObjective", "VaeObjective", "jitter_date", "masked_mean"]

N_EQ_TRANSFORMS = 9  # 0 identity, 1..7 dihedral, 8 downscale by 2


def masked_mean(err: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted mean ``sum(w err) / max(sum(w), 1e-6)``."""
    return (weight * err).sum() / weight.sum().clamp(min=1e-6)


def _dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """Element k (0..7) of the dihedral group on the last two dims: rotate by k % 4, flip if k >= 4."""
    x = torch.rot90(x, k % 4, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if k >= 4 else x


def _transform(kind: int, z: torch.Tensor, x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Apply EQ transform ``kind`` to latent z, image x and weights w alike."""
    if kind == 8:
        z = F.avg_pool2d(z, 2)
        x = F.avg_pool2d(x * (w > 0), 2) / F.avg_pool2d((w > 0).float(), 2).clamp(min=1e-6)
        w = F.avg_pool2d(w, 2) * (F.avg_pool2d((w > 0).float(), 2) > 0.999)
        return z, x, w
    return _dihedral(z, kind), _dihedral(x, kind), _dihedral(w, kind)


def _random_dihedral(*xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The same random dihedral element per sample (N, ...) applied to each of ``xs``."""
    n = xs[0].shape[0]
    g = torch.randint(0, 8, (n,), device=xs[0].device)
    rows = torch.arange(n, device=xs[0].device)
    return tuple(torch.stack([_dihedral(x, k) for k in range(8)])[g, rows] for x in xs)


def jitter_date(date: torch.Tensor, days: torch.Tensor) -> torch.Tensor:
    """Shift date features (N, 5) (see conditioning.date_features) by ``days`` (N,)."""
    a = (2.0 * math.pi / 365.25) * days.to(date.dtype)
    c1, s1, c2, s2 = torch.cos(a), torch.sin(a), torch.cos(2 * a), torch.sin(2 * a)
    sin1, cos1, sin2, cos2, year = date.unbind(-1)
    return torch.stack([
        sin1 * c1 + cos1 * s1, cos1 * c1 - sin1 * s1,
        sin2 * c2 + cos2 * s2, cos2 * c2 - sin2 * s2,
        year + days.to(date.dtype) / 3652.5,
    ], dim=-1)


class VaeObjective(nn.Module):
    """Stage 1 loss of ``net.vae``; ``forward(x, data, weight, wavelength, bandwidth, eq)``."""

    def __init__(self, net: D2arNet, *, kl_weight: float = 1e-4, compile_fn: Callable | None = None) -> None:
        super().__init__()
        self.vae = net.vae
        self.kl_weight = kl_weight
        wrap = compile_fn or (lambda f: f)
        self._encode = wrap(self.vae.encode)
        self._decode = wrap(self.vae.decode)

    def forward(
        self,
        x: torch.Tensor,
        data: torch.Tensor,
        weight: torch.Tensor,
        wavelength: torch.Tensor,
        bandwidth: torch.Tensor,
        eq: int = 0,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """x, data, weight (N, B, T, T); wavelength, bandwidth (N, B); eq in [0, 9) -> (loss, parts)."""
        emb = self.vae.embed_bands(wavelength, bandwidth)  # (N, B, E)
        mean, logvar = self._encode(x, data, emb)  # (N, C, T/4, T/4) each
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        target, w = x, weight
        if eq:
            z, target, w = _transform(eq, z, x, weight)
        rec = self._decode(z, emb).float()
        l1 = masked_mean((rec - target).abs(), w)
        l2 = masked_mean((rec - target) ** 2, w)
        kl = 0.5 * (mean.float() ** 2 + logvar.float().exp() - 1.0 - logvar.float()).mean()
        loss = l1 + l2 + self.kl_weight * kl
        return loss, {"l1": l1.detach(), "mse": l2.detach(), "kl": kl.detach()}


class FlowObjective(nn.Module):
    """Stage 2 loss of ``net.encoder`` + ``net.flow`` with the VAE frozen."""

    def __init__(
        self,
        net: D2arNet,
        *,
        p_zero: float = 0.1,
        p_sensor_drop: float = 0.1,
        date_jitter_days: float = 20.0,
        dihedral: bool = True,
        compile_fn: Callable | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.dihedral = dihedral
        self.encoder = net.encoder
        self.flow = net.flow
        self.p_zero = p_zero
        self.p_sensor_drop = p_sensor_drop
        self.date_jitter_days = date_jitter_days
        wrap = compile_fn or (lambda f: f)
        self._vae_encode = wrap(net.vae.encode)
        self._tokens = wrap(self.encoder.forward)
        self._velocity = wrap(self.flow.forward)

    def prefix_lengths(self, n: int, device: torch.device) -> torch.Tensor:
        """Kept prefix length per tile (n,) int64: 0 w.p. ``p_zero``, else half log-uniform, half
        uniform in [1, K]."""
        k_max = self.net.cfg.n_tokens - self.net.cfg.n_stat_total + self.net.cfg.stat_tokens  # flow context
        u = torch.rand(n, device=device)
        log_uniform = torch.exp(u * math.log(k_max))
        k = torch.where(torch.rand(n, device=device) < 0.5, log_uniform, u * k_max)
        k = torch.ceil(k).long().clamp(1, k_max)
        return torch.where(torch.rand(n, device=device) < self.p_zero, torch.zeros_like(k), k)

    def forward(
        self,
        x: torch.Tensor,
        data: torch.Tensor,
        weight: torch.Tensor,
        wavelength: torch.Tensor,
        bandwidth: torch.Tensor,
        geo: torch.Tensor,
        date: torch.Tensor,
        sensor: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Batch tensors (see :class:`~xr_d2ar.train.data.Batch`) -> (loss, parts)."""
        n = x.shape[0]
        with torch.no_grad():
            emb = self.net.vae.embed_bands(wavelength, bandwidth)
            mean, _ = self._vae_encode(x, data, emb)
            z1 = self.net.normalise_latent(mean.float())  # (N, C, h, w)
            # usable-pixel fraction under each latent cell
            frac = F.avg_pool2d(weight.amax(dim=1, keepdim=True), 4)  # (N, 1, h, w)
            if self.dihedral:  # the EQ-VAE latent follows the image: 8x the distinct tiles
                z1, frac = _random_dihedral(z1, frac)
        codes, _ = self._tokens(z1)  # (N, K - S, D) straight-through
        cfg = self.net.cfg
        codes = codes[:, : cfg.n_tokens - cfg.n_stat_total]  # learned tokens kept (block level: fewer)
        if cfg.stat_tokens:  # the tile-mean tokens, first (not learned; block means are not in the context)
            stats = self.net.token_codes(self.net.stat_tokens(x, data)[:, : cfg.stat_tokens])  # (N, S, D)
            codes = torch.cat([stats.to(codes.dtype), codes], dim=1)  # (N, K - S G G, D)
        k = self.prefix_lengths(n, x.device)
        k_max = codes.shape[1]
        keep = torch.arange(k_max, device=x.device)[None] < k[:, None]  # (N, K)
        key_mask = torch.cat([torch.ones(n, 1, dtype=torch.bool, device=x.device), keep], dim=1)
        drop = torch.rand(n, device=x.device) < self.p_sensor_drop
        sensor = torch.where(drop, torch.zeros_like(sensor), sensor)
        date = jitter_date(date, self.date_jitter_days * torch.randn(n, device=x.device))
        eps = torch.randn_like(z1)
        t = sample_time(n, device=x.device)
        z_t, target = interpolate(z1, eps, t)
        v = self._velocity(z_t, t, geo, date, sensor, codes, key_mask).float()
        w = frac + 0.05
        loss = masked_mean((v - target) ** 2, w.expand_as(v))
        return loss, {"k_mean": k.float().mean().detach()}
