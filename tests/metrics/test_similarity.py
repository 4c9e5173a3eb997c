import math

import pytest
import torch

from almea_pyg.metrics import similarity
from almea_pyg.metrics.similarity import (
    alignment_candidates,
    check_finite,
    csls_neighbourhood,
    mutual_nearest_neighbours,
    similarity_chunks,
    topk_similarity,
)


def _pair(n_x: int = 13, n_y: int = 11, d: int = 5, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n_x, d, generator=gen, dtype=torch.float64)
    y = torch.randn(n_y, d, generator=gen, dtype=torch.float64)
    return x, y


def _dense(x: torch.Tensor, y: torch.Tensor, metric: str, k: int = 3) -> torch.Tensor:
    """Direct dense reference, computed entry by entry from the definitions."""
    cos = torch.tensor(
        [[float(a @ b) / (a.norm().item() * b.norm().item()) for b in y] for a in x],
        dtype=torch.float64,
    )
    if metric == "cosine":
        return cos
    k_x, k_y = min(k, y.size(0)), min(k, x.size(0))
    r_x = torch.tensor([sorted(row.tolist())[-k_x:] for row in cos]).mean(dim=1)
    r_y = torch.tensor([sorted(col.tolist())[-k_y:] for col in cos.t()]).mean(dim=1)
    return 2 * cos - r_x[:, None] - r_y[None, :]


@pytest.mark.parametrize("k", [1, 3, 50])
@pytest.mark.parametrize("chunk_size", [1, 4, 5, 4096])
def test_csls_neighbourhood_matches_dense(k: int, chunk_size: int) -> None:
    x, y = _pair()
    cos = _dense(x, y, "cosine")
    expected = cos.sort(dim=1, descending=True).values[:, : min(k, 11)].mean(dim=1)
    out = csls_neighbourhood(x, y, k=k, chunk_size=chunk_size)
    assert out.shape == (13,)
    assert torch.allclose(out, expected)


@pytest.mark.parametrize("metric", ["cosine", "csls"])
@pytest.mark.parametrize("chunk_size", [1, 4, 5, 13, 4096])
def test_similarity_chunks_match_dense(metric: str, chunk_size: int) -> None:
    x, y = _pair()
    chunks = list(similarity_chunks(x, y, metric=metric, chunk_size=chunk_size))
    starts = [start for start, _ in chunks]
    assert starts == list(range(0, 13, chunk_size))
    assert all(block.shape == (min(chunk_size, 13 - s), 11) for s, block in chunks)
    full = torch.cat([block for _, block in chunks])
    assert torch.allclose(full, _dense(x, y, metric))


def test_csls_is_symmetric_under_swapping_sides() -> None:
    x, y = _pair()
    xy = torch.cat([b for _, b in similarity_chunks(x, y, metric="csls", chunk_size=4)])
    yx = torch.cat([b for _, b in similarity_chunks(y, x, metric="csls", chunk_size=3)])
    assert torch.allclose(xy, yx.t())


def test_similarity_chunks_rejects_unknown_metric() -> None:
    x, y = _pair()
    with pytest.raises(ValueError, match="metric"):
        next(similarity_chunks(x, y, metric="dot"))


@pytest.mark.parametrize("metric", ["cosine", "csls"])
@pytest.mark.parametrize(("k", "chunk_size"), [(1, 1), (3, 4), (4, 5), (20, 6)])
def test_topk_similarity_matches_dense(metric: str, k: int, chunk_size: int) -> None:
    x, y = _pair()
    dense = _dense(x, y, metric).sort(dim=1, descending=True)
    values, indices = topk_similarity(x, y, k, metric=metric, chunk_size=chunk_size)
    k = min(k, 11)
    assert values.shape == indices.shape == (13, k)
    assert indices.dtype == torch.long
    assert torch.allclose(values, dense.values[:, :k])
    assert torch.equal(indices, dense.indices[:, :k])  # continuous data: no ties


def test_mutual_nearest_neighbours_hand_example() -> None:
    # y0 = east, y1 = north, y2 = west. x0 and x1 both prefer y0, which prefers x0;
    # x2 and y1, x3 and y2 are mutual.
    x = torch.tensor([[1.0, 0.1], [1.0, 0.3], [0.2, 1.0], [-1.0, -0.5]])
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    x_index, y_index, score = mutual_nearest_neighbours(x, y, chunk_size=3)
    assert x_index.tolist() == [0, 2, 3]
    assert y_index.tolist() == [0, 1, 2]
    expected = [1 / math.sqrt(1.01), 1 / math.sqrt(1.04), 1 / math.sqrt(1.25)]
    assert score.tolist() == pytest.approx(expected)


@pytest.mark.parametrize("metric", ["cosine", "csls"])
@pytest.mark.parametrize("chunk_size", [1, 4, 4096])
def test_mutual_nearest_neighbours_match_dense(metric: str, chunk_size: int) -> None:
    x, y = _pair(n_x=40, n_y=30, d=3, seed=2)
    dense = _dense(x, y, metric)
    best_y, best_x = dense.argmax(dim=1), dense.argmax(dim=0)
    pairs = {(i, int(best_y[i])) for i in range(40) if int(best_x[best_y[i]]) == i}
    x_index, y_index, score = mutual_nearest_neighbours(
        x, y, metric=metric, chunk_size=chunk_size
    )
    assert set(zip(x_index.tolist(), y_index.tolist())) == pairs
    assert len(pairs) == x_index.numel() > 0
    assert torch.allclose(score, dense[x_index, y_index])
    assert bool((score[:-1] >= score[1:]).all())


def test_mutual_nearest_neighbours_empty() -> None:
    x_index, y_index, score = mutual_nearest_neighbours(
        torch.empty(0, 4), torch.ones(3, 4)
    )
    assert x_index.numel() == y_index.numel() == score.numel() == 0
    assert x_index.dtype == torch.long


def test_similarity_is_scale_invariant() -> None:
    x, y = _pair()
    values, indices = topk_similarity(x, y, 3, metric="csls")
    values_scaled, indices_scaled = topk_similarity(
        7.0 * x, 0.1 * y, 3, metric="csls", chunk_size=2
    )
    assert torch.equal(indices, indices_scaled)
    assert torch.allclose(values, values_scaled)


@pytest.mark.parametrize(
    "search",
    [
        lambda x, y: next(similarity_chunks(x, y)),
        lambda x, y: topk_similarity(x, y, 2, metric="csls"),
        lambda x, y: mutual_nearest_neighbours(x, y, metric="csls"),
    ],
)
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_search_rejects_non_finite_rows(search, value: float) -> None:
    x, y = _pair()
    y[4, 1] = value
    with pytest.raises(ValueError, match=r"y has 1 non-finite row \(first: row 4\)"):
        search(x, y)
    x[[2, 9], 0] = value
    with pytest.raises(ValueError, match=r"x has 2 non-finite rows \(first: row 2\)"):
        search(x, y)


def test_check_finite() -> None:
    check_finite("x", torch.full((3, 2), 3e38))  # the sum overflows; values are finite
    check_finite("x", torch.empty(0, 4))
    x = torch.zeros(4, 3)
    x[[1, 3], 2] = float("nan")
    message = r"^emb has 2 non-finite rows \(first: row 11\); the model diverged\?$"
    with pytest.raises(ValueError, match=message):
        check_finite("emb", x, torch.tensor([10, 13, 12, 11]))


def test_alignment_candidates() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(6, 4), torch.randn(9, 4)
    ids = [f"s{i}" for i in range(6)], [f"t{j}" for j in range(9)]
    sources, targets = torch.tensor([4, 1]), torch.tensor([8, 2, 5, 0])
    out = alignment_candidates(
        x,
        y,
        3,
        sources=sources,
        targets=targets,
        source_ids=ids[0],
        target_ids=ids[1],
        metric="cosine",
    )
    assert out.target_index.shape == out.score.shape == (2, 3)
    assert torch.equal(out.source_index, sources)
    values, best = topk_similarity(x[sources], y[targets], 3)
    assert torch.equal(out.target_index, targets[best])
    torch.testing.assert_close(out.score, values)
    assert (out.score[:, :-1] >= out.score[:, 1:]).all()
    assert out.source_ids == ["s4", "s1"]
    assert out.target_ids[0][0] == f"t{int(out.target_index[0, 0])}"
    # Without ids or subsets: every source against every target.
    whole = alignment_candidates(x, y, 2)
    assert whole.target_index.shape == (6, 2)
    assert whole.source_ids == whole.target_ids == []


# --- search="faiss": top-k lists ------------------------------------------------


@pytest.mark.usefixtures("needs_faiss")
@pytest.mark.parametrize("metric", ["cosine", "csls"])
@pytest.mark.parametrize("csls_k", [1, 3])
def test_alignment_candidates_faiss_equals_exact(metric: str, csls_k: int) -> None:
    x, y = _pair(n_x=40, n_y=30, d=6, seed=3)
    sources, targets = torch.tensor([5, 0, 17, 33]), torch.arange(2, 30)
    options = dict(sources=sources, targets=targets, metric=metric, csls_k=csls_k)
    exact = alignment_candidates(x, y, 5, **options)
    # Lists as long as the targets: CSLS on the lists is exact CSLS.
    faiss = alignment_candidates(
        x, y, 5, search="faiss", search_kwargs={"list_size": 28}, **options
    )
    assert torch.equal(faiss.target_index, exact.target_index)
    torch.testing.assert_close(faiss.score, exact.score, atol=1e-5, rtol=0)
    assert exact.search == {"backend": "exact"}
    expected = {
        "backend": "faiss",
        "index": "Flat",
        "list_size": 28 if metric == "csls" else 5,
    }
    if metric == "csls":
        expected["source_index"] = {"index": "Flat"}
    assert faiss.search == expected


@pytest.mark.usefixtures("needs_faiss")
def test_csls_on_short_lists_scores_exactly_what_it_lists() -> None:
    # Each listed pair's score is its exact CSLS score; the top-k can only miss
    # targets outside the cosine list, here the 5 nearest of each source.
    x, y = _pair(n_x=40, n_y=60, d=6, seed=4)
    dense = _dense(x, y, "csls")
    out = alignment_candidates(
        x, y, 4, metric="csls", search="faiss", search_kwargs={"list_size": 5}
    )
    torch.testing.assert_close(
        out.score, dense.gather(1, out.target_index), atol=1e-5, rtol=0
    )
    cosine_list = _dense(x, y, "cosine").topk(5, dim=1).indices
    in_list = dense.scatter(1, cosine_list, float("inf")).isinf()
    best_in_list = dense.masked_fill(~in_list, float("-inf")).topk(4, dim=1)
    assert torch.equal(out.target_index, best_in_list.indices)
    assert not torch.equal(out.target_index, dense.topk(4, dim=1).indices)


@pytest.mark.usefixtures("needs_faiss")
def test_alignment_candidates_faiss_rejects_non_finite_rows() -> None:
    x, y = _pair()
    y[4, 1] = float("nan")
    with pytest.raises(ValueError, match=r"y has 1 non-finite row \(first: row 4\)"):
        alignment_candidates(x, y, 3, search="faiss")
    with pytest.raises(ValueError, match="metric"):
        alignment_candidates(x, x, 3, metric="dot", search="faiss")


def test_mean_of_found_neighbours_is_zero_when_none_was_found() -> None:
    # an approximate index may find no neighbour for a row: its CSLS term is 0,
    # never NaN (a NaN score would rank a link first)
    inf = float("inf")
    values = torch.tensor([[0.5, 0.3, -inf], [-inf, -inf, -inf]])
    assert similarity._mean_found(values).tolist() == pytest.approx([0.4, 0.0])
