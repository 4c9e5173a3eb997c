"""Balanced blocks of a large candidate pool, for one batched DS3 call.

DS3's ``A`` is ``K × K``: a pool of 100k pairs would need 40 GB. Split into ``B``
blocks of ``k`` nearby pairs, the problems are ``[B, k, k]`` and solved together in
one :func:`~almea_pyg.select.ds3.ds3` call. Pairs far apart would rarely represent
each other anyway, so blocks of neighbours lose little of the whole problem
(``benchmarks/ds3_blocks.py`` measures how little).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def balanced_blocks(x: Tensor, block_size: int, *, num_power_steps: int = 10) -> Tensor:
    """Split the rows of ``x`` into ``B = 2^L`` blocks of equal size ``≤ block_size``.

    Recursive bisection: each level splits every block at the median of its rows'
    projections on the block's principal direction (found by ``num_power_steps``
    power iterations from a fixed random start, so the split is deterministic). ``B`` is
    the smallest power of two that brings the blocks to ``block_size``; the rows
    past ``B · ⌊K / B⌋`` (the last ``K mod B``, fewer than ``B``) are left out, so a
    pool sorted by confidence loses its least confident pairs.

    Shapes:
        x: ``(K, d)`` -> ``(B, k)`` row indices, ``k = ⌊K / B⌋``.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be positive, got {block_size}")
    K = x.size(0)
    levels = max(0, math.ceil(math.log2(K / block_size))) if K else 0
    B = 2**levels
    index = torch.arange(B * (K // B), device=x.device).view(1, -1)
    x = x.float()
    start = torch.randn(x.size(-1), 1, generator=torch.Generator().manual_seed(0))
    for _ in range(levels):
        points = x[index]
        centred = points - points.mean(dim=1, keepdim=True)
        direction = start.to(x.device).expand(centred.size(0), -1, -1)
        for _ in range(num_power_steps):
            direction = centred.transpose(1, 2) @ (centred @ direction)
            direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-12)
        projection = (centred @ direction).squeeze(-1)
        order = projection.argsort(dim=1, stable=True)
        index = index.gather(1, order).view(2 * index.size(0), -1)
    return index
