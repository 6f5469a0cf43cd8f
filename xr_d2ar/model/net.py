"""The whole D2AR prior as one torch module: EQ-VAE + control-token encoder + velocity network.

Tensors only, no xarray and no numpy I/O: :mod:`xr_d2ar.model.api` wraps it for users.
The latent seen by the token encoder and the flow is normalised per channel:
``z = (mean_vae - latent_mean) / latent_std`` (buffers, saved with the weights).
Tokens are ``[S (1 + sum G^2) statistics tokens ; learned tokens]`` (see :mod:`~xr_d2ar.model.stats`).
"""

from __future__ import annotations

import torch
from torch import nn

from xr_d2ar.model.config import ModelConfig
from xr_d2ar.model.flow import integrate
from xr_d2ar.model.stats import stat_codes, stat_tokens
from xr_d2ar.model.tokenizer import TokenEncoder
from xr_d2ar.model.vae import VAE
from xr_d2ar.model.velocity import VelocityNet

__all__ = ["Conditioning", "D2arNet"]

Conditioning = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # geo (N, G), date (N, 5), sensor (N,)


class D2arNet(nn.Module):
    """Prior networks. See vae.py, tokenizer.py and velocity.py for the op-by-op descriptions."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.vae = VAE(cfg)
        self.encoder = TokenEncoder(cfg)
        self.flow = VelocityNet(cfg)
        self.register_buffer("latent_mean", torch.zeros(cfg.latent_channels))
        self.register_buffer("latent_std", torch.ones(cfg.latent_channels))

    def normalise_latent(self, mean: torch.Tensor) -> torch.Tensor:
        """VAE posterior mean (N, C, h, w) -> normalised latent."""
        return (mean - self.latent_mean[:, None, None]) / self.latent_std[:, None, None]

    def denormalise_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised latent -> VAE latent (input of ``vae.decode``)."""
        return z * self.latent_std[:, None, None] + self.latent_mean[:, None, None]

    def stat_tokens(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Normalised image + pixel mask (N, B, T, T) -> the statistics tokens (N, S (1 + sum G^2)) int64."""
        return stat_tokens(x, mask, self.cfg.stat_tokens, self.cfg.codebook_size, self.cfg.stat_grid)

    def token_codes(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens (N, k) (statistics first) -> flow context codes (N, k', D_fsq) float32.

        The context is the tile-mean tokens then the learned ones; block-mean tokens are left out
        (they act after the VAE decoder), so ``k' = k - (tokens of the block level kept)``.
        """
        s = min(self.cfg.stat_tokens, tokens.shape[1])
        learned = self.encoder.fsq.codes(tokens[:, self.cfg.n_stat_total :])
        if s == 0:
            return learned
        stats = stat_codes(tokens[:, :s], self.cfg.codebook_size, learned.shape[-1])
        return torch.cat([stats, learned], dim=1)

    @torch.no_grad()
    def encode(self, x: torch.Tensor, mask: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """Normalised image + pixel mask (N, B, T, T), band embedding (N, B, E) -> tokens (N, K) int64."""
        mean, _ = self.vae.encode(x, mask, emb)
        learned = self.encoder(self.normalise_latent(mean))[1]  # (N, K - S)
        keep = self.cfg.n_tokens - self.cfg.n_stat_total
        return torch.cat([self.stat_tokens(x, mask), learned[:, :keep]], dim=1)

    @torch.no_grad()
    def decode(
        self,
        tokens: torch.Tensor,
        cond: Conditioning,
        emb: torch.Tensor,
        noise: torch.Tensor,
        *,
        steps: int,
        solver: str = "euler",
    ) -> torch.Tensor:
        """Tokens (N, k) + conditioning + noise (N, C, h, w) -> normalised image (N, B, 4h, 4w).

        The mean corrections of the statistics tokens (:func:`~xr_d2ar.model.stats.apply_means`)
        are not applied here but by the callers, on numpy arrays.
        """
        geo, date, sensor = cond
        codes = self.token_codes(tokens).to(noise.dtype)  # (N, k, D_fsq)

        def velocity(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.flow(z, t, geo, date, sensor, codes)

        z = integrate(velocity, noise, steps=steps, solver=solver)
        return self.vae.decode(self.denormalise_latent(z), emb)
