import math

import pytest
import torch
from clustered_pairs import LABELLED, SOURCE, TARGET

from almea_pyg.select.acquire import ds3_acquire
from almea_pyg.select.blocks import balanced_blocks
from almea_pyg.select.dissimilarity import (
    dissimilarity_matrix,
    pair_embeddings,
)
from almea_pyg.select.ds3 import ds3
from almea_pyg.select.strategies import DS3Strategy


def test_blocks_are_equal_disjoint_and_drop_the_last_rows():
    x = torch.randn(103, 5, generator=torch.Generator().manual_seed(0))
    blocks = balanced_blocks(x, 30)
    assert blocks.shape == (4, 25)  # 2^2 blocks of 103 // 4 rows
    assert torch.equal(blocks.flatten().sort().values, torch.arange(100))
    assert balanced_blocks(x, 200).shape == (1, 103)
    with pytest.raises(ValueError, match="block_size"):
        balanced_blocks(x, 0)


def test_blocks_keep_clusters_together():
    g = torch.Generator().manual_seed(1)
    centres = torch.tensor([[10.0, 0.0, 0.0], [-10.0, 0.0, 0.0]])
    x = centres[torch.arange(64) % 2] + torch.randn(64, 3, generator=g)
    halves = balanced_blocks(x, 32)
    labels = torch.arange(64) % 2
    assert halves.shape == (2, 32)
    assert all(labels[b].unique().numel() == 1 for b in halves)


def test_blocked_acquisition_solves_each_block_as_its_own_problem():
    budget = 40
    acq = ds3_acquire(SOURCE, TARGET, LABELLED, budget, alpha=0.1, block_size=20)
    K = len(acq.pool)
    assert K > 20 and acq.blocks is not None
    B = acq.blocks.size(0)
    assert B == 2 ** math.ceil(math.log2(K / 20))  # the fewest that fit
    assert acq.blocks.size(1) == K // B <= 20
    h_s, h_t = pair_embeddings(
        SOURCE, TARGET, acq.pool.source_index, acq.pool.target_index
    )
    expected = []
    for b, reps in zip(acq.blocks, acq.result.representatives):
        alone = ds3(
            dissimilarity_matrix(h_s[b], h_t[b]),
            alpha=0.1,
            row_weights=acq.diversity[b],
        )
        assert torch.equal(alone.representatives, reps)
        expected.append(b[reps])
    chosen = torch.cat(expected).sort().values[:budget]
    assert torch.equal(acq.source_index, acq.pool.source_index[chosen])
    assert bool((acq.score[:-1] >= acq.score[1:]).all())


def test_block_size_above_the_pool_is_the_whole_problem():
    whole = ds3_acquire(SOURCE, TARGET, LABELLED, 10, alpha=0.1)
    same = ds3_acquire(SOURCE, TARGET, LABELLED, 10, alpha=0.1, block_size=10_000)
    assert same.blocks is None
    assert torch.equal(whole.source_index, same.source_index)


def test_strategy_reports_blocks():
    strategy = DS3Strategy(alpha=0.1, block_size=20)
    strategy.select(SOURCE, TARGET, LABELLED, 10)
    summary = strategy.summary_
    assert summary["blocks"] == strategy.acquisition_.blocks.size(0) > 1
    assert summary["representatives"] == sum(
        r.numel() for r in strategy.acquisition_.result.representatives
    )
    assert summary["pool"] == len(strategy.acquisition_.pool)
