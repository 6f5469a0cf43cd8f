"""Token model of the entropy coder: one integer frequency table per token position.

``freq[j, v]`` (uint32, all >= 1) is proportional to the probability of token value v at position j:
``freq = scale * count + 1`` where ``count`` comes from training tokens and ``scale`` (additive
smoothing ``1 / scale``) is the power of two that best predicts a held-out part of them. ``bits[j]``,
the expected code length at position j, is the cross-entropy of those held-out tokens under the
table: an honest rate for tokens the table has not seen (what :func:`tokens_for_ratio` budgets with).
"""

from __future__ import annotations

import numpy as np

__all__ = ["cross_entropy_bits", "fit_token_model", "tokens_for_ratio"]

_SCALES = tuple(2**i for i in range(11))


def _table(tokens: np.ndarray, codebook_size: int, scale: int) -> np.ndarray:
    k = tokens.shape[1]
    count = np.zeros((k, codebook_size), np.int64)
    for j in range(k):
        count[j] = np.bincount(tokens[:, j], minlength=codebook_size)
    freq = scale * count + 1
    if freq.max() >= 2**32:
        raise ValueError("Token counts overflow uint32; fit on fewer tokens or a smaller scale.")
    return freq.astype(np.uint32)


def cross_entropy_bits(freq: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Mean code length (bits) per position of ``tokens`` (M, k) under tables ``freq`` (>= k, V)."""
    k = tokens.shape[1]
    logp = np.log2(freq[:k].astype(np.float64)) - np.log2(freq[:k].sum(axis=1, dtype=np.float64))[:, None]
    return -np.take_along_axis(logp, tokens.T.astype(np.int64), axis=1).mean(axis=1)


def fit_token_model(
    tokens: np.ndarray, codebook_size: int, *, holdout: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Fit tables on training tokens (M, K) int; return ``(freq (K, V) uint32, bits (K,) float64)``.

    A random ``holdout`` fraction of rows picks the smoothing and measures ``bits``; the final
    table is then counted from all rows with that smoothing.
    """
    tokens = np.asarray(tokens, np.int64)
    if tokens.ndim != 2 or len(tokens) < 2:
        raise ValueError(f"tokens must be (M >= 2, K). Got shape {tokens.shape} instead.")
    if tokens.min() < 0 or tokens.max() >= codebook_size:
        raise ValueError(f"tokens must lie in [0, {codebook_size}). Got [{tokens.min()}, {tokens.max()}].")
    order = np.random.default_rng(seed).permutation(len(tokens))
    n_hold = max(1, round(holdout * len(tokens)))
    fit, held = tokens[order[n_hold:]], tokens[order[:n_hold]]
    scores = {s: cross_entropy_bits(_table(fit, codebook_size, s), held) for s in _SCALES}
    best = min(scores, key=lambda s: scores[s].sum())
    return _table(tokens, codebook_size, best), scores[best]


def tokens_for_ratio(bits: np.ndarray, ratio: float, original_bytes: float) -> int:
    """Largest k with ``sum(bits[:k]) <= 8 * original_bytes / ratio`` (0 = climatology only)."""
    if not np.isfinite(ratio) or ratio <= 0:
        raise ValueError(f"ratio must be a positive number (e.g. 1000). Got {ratio!r} instead.")
    budget = 8.0 * original_bytes / ratio
    cum = np.cumsum(np.asarray(bits, np.float64))
    return int(np.searchsorted(cum, budget, side="right"))
