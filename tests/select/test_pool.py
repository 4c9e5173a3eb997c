import pytest
import torch

from almea_pyg.select.pool import candidate_pool, keep_mask, merge_indices

# Source 0 <-> target 1 and source 2 <-> target 0 are mutual; source 1's best target
# is 1, but target 1 prefers source 0, so source 1 has no mutual partner.
SOURCE = torch.tensor([[1.0, 0.0], [0.9, 0.3], [0.0, 1.0]])
TARGET = torch.tensor([[0.1, 1.0], [1.0, 0.05]])


def test_mutual_nearest_neighbours_by_hand():
    pool = candidate_pool(SOURCE, TARGET)
    assert list(zip(pool.source_index.tolist(), pool.target_index.tolist())) == [
        (0, 1),
        (2, 0),
    ]
    expected = torch.nn.functional.cosine_similarity(SOURCE[[0, 2]], TARGET[[1, 0]])
    assert torch.allclose(pool.score, expected)
    assert len(pool) == 2


def test_excluded_entities_leave_the_pool_and_indices_stay_global():
    pool = candidate_pool(SOURCE, TARGET, exclude_source=torch.tensor([0]))
    # Without source 0, source 1 becomes target 1's best match.
    pairs = set(zip(pool.source_index.tolist(), pool.target_index.tolist()))
    assert pairs == {(1, 1), (2, 0)}
    pool = candidate_pool(SOURCE, TARGET, exclude_target=[1])
    assert pool.target_index.tolist() == [0] and pool.source_index.tolist() == [2]


def test_prune_keeps_the_most_confident_fraction():
    full = candidate_pool(SOURCE, TARGET)
    half = candidate_pool(SOURCE, TARGET, prune=0.5)
    assert half.source_index.tolist() == full.source_index[:1].tolist()


def test_chunked_search_and_csls_agree_with_full():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(50, 8, generator=g), torch.randn(40, 8, generator=g)
    small = candidate_pool(s, t, chunk_size=7)
    big = candidate_pool(s, t)
    assert torch.equal(small.source_index, big.source_index)
    csls = candidate_pool(s, t, metric="csls", chunk_size=7)
    assert len(csls) > 0 and bool((csls.score[:-1] >= csls.score[1:]).all())


@pytest.mark.parametrize("metric", ["cosine", "csls"])
def test_faiss_search_gives_the_exact_pool(metric):
    # a flat index finds the exact nearest neighbours; CSLS re-scores lists that
    # hold every target here, so both metrics give the chunked search's pool
    pytest.importorskip("faiss", reason="faiss is not installed (almea-pyg[faiss])")
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(60, 8, generator=g), torch.randn(50, 8, generator=g)
    exclude = torch.tensor([3, 7])
    exact = candidate_pool(s, t, metric=metric, exclude_source=exclude)
    listed = candidate_pool(
        s,
        t,
        metric=metric,
        exclude_source=exclude,
        search="faiss",
        search_kwargs={"list_size": 60},
    )
    assert len(exact) > 5
    assert torch.equal(listed.source_index, exact.source_index)
    assert torch.equal(listed.target_index, exact.target_index)
    torch.testing.assert_close(listed.score, exact.score)


def test_empty_pool_when_everything_is_excluded():
    pool = candidate_pool(SOURCE, TARGET, exclude_target=[0, 1])
    assert len(pool) == 0


@pytest.mark.parametrize(
    "kwargs",
    [{"prune": 0.0}, {"prune": 1.5}, {"exclude_source": [7]}, {"exclude_target": [-1]}],
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        candidate_pool(SOURCE, TARGET, **kwargs)


def test_helpers():
    assert keep_mask(4, torch.tensor([1, 3]), torch.device("cpu")).tolist() == [
        True,
        False,
        True,
        False,
    ]
    assert merge_indices(torch.tensor([1]), [2, 3]).tolist() == [1, 2, 3]
    assert merge_indices(torch.tensor([1]), None).tolist() == [1]


@pytest.mark.parametrize("metric", ["cosine", "csls"])
def test_non_finite_row_raises_naming_it(metric):
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(50, 8, generator=g), torch.randn(40, 8, generator=g)
    s[17, 2] = float("nan")
    message = r"source_emb has 1 non-finite row \(first: row 17\)"
    with pytest.raises(ValueError, match=message):
        candidate_pool(s, t, metric=metric)
    # An excluded row is never searched, so it cannot spoil the pool.
    expected = candidate_pool(s[18:], t, metric=metric)
    pool = candidate_pool(s, t, metric=metric, exclude_source=torch.arange(18))
    assert torch.equal(pool.source_index, expected.source_index + 18)
    t[[5, 30]] = float("inf")
    message = r"target_emb has 2 non-finite rows \(first: row 5\)"
    with pytest.raises(ValueError, match=message):
        candidate_pool(s, t, exclude_source=[17])
