import math

import pytest
import torch
import torch.nn.functional as F

from almea_pyg.metrics import ranking
from almea_pyg.metrics.knn import FaissSearch
from almea_pyg.metrics.ranking import (
    RankingMetric,
    alignment_ranks,
    evaluate_alignment,
    evaluate_directions,
    hits_at_k,
    mean_reciprocal_rank,
)


def _hand_example() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Targets 0-3 are one-hot, so cos(source, t_j) is proportional to source[j].

    Target 4 = e0 + e1 is not a link target; source 4 is not linked. The links are
    given out of source order to check that ranks come back in link order.
    """
    x_src = torch.tensor(
        [
            [4.0, 3.0, 2.0, 1.0],  # -> t2: t0, t1 higher            -> rank 3
            [2.0, 3.0, 2.0, 0.0],  # -> t0: t1 higher, t2 tied         -> rank 2
            [0.0, 0.0, 0.0, 1.0],  # -> t3: best                       -> rank 1
            [5.0, 1.0, 3.0, 2.0],  # -> t1: t0, t2, t3 higher          -> rank 4
            [1.0, 1.0, 1.0, 1.0],
        ]
    )
    x_tgt = torch.cat([torch.eye(4), torch.tensor([[1.0, 1.0, 0.0, 0.0]])])
    links = torch.tensor([[2, 0, 3, 1], [3, 2, 1, 0]])
    return x_src, x_tgt, links


HAND_RANKS = [1, 3, 4, 2]
# With target 4 as an extra candidate, cos(s, t4) = (s[0] + s[1]) / (sqrt(2) |s|).
HAND_RANKS_WITH_T4 = [1, 4, 5, 3]


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 4096])
def test_alignment_ranks_hand_example(chunk_size: int) -> None:
    x_src, x_tgt, links = _hand_example()
    ranks = alignment_ranks(x_src, x_tgt, links, chunk_size=chunk_size)
    assert ranks.dtype == torch.long
    assert ranks.tolist() == HAND_RANKS
    ranks = alignment_ranks(
        x_src, x_tgt, links, candidates=torch.arange(5), chunk_size=chunk_size
    )
    assert ranks.tolist() == HAND_RANKS_WITH_T4


def test_alignment_ranks_tie_is_optimistic() -> None:
    # Source 0 scores t0 and t1 equally: both get rank 1.
    x_src = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    x_tgt = torch.eye(2)
    links = torch.tensor([[0, 0], [0, 1]])
    assert alignment_ranks(x_src, x_tgt, links).tolist() == [1, 1]


def test_alignment_ranks_duplicate_targets_counted_once() -> None:
    x_src = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    x_tgt = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    links = torch.tensor([[0, 1], [1, 1]])
    assert alignment_ranks(x_src, x_tgt, links).tolist() == [1, 1]
    candidates = torch.tensor([1, 0, 1, 0])
    ranks = alignment_ranks(x_src, x_tgt, links, candidates=candidates)
    assert ranks.tolist() == [1, 2]


def _dense_ranks(
    x_src: torch.Tensor, x_tgt: torch.Tensor, links: torch.Tensor, metric: str, k: int
) -> list[int]:
    """Direct dense reference: sources/targets of the links, full score matrix."""
    sources, targets = links[0].unique(), links[1].unique()
    sim = F.normalize(x_src[sources], dim=-1) @ F.normalize(x_tgt[targets], dim=-1).t()
    if metric == "csls":
        r_src = sim.topk(k, dim=1).values.mean(dim=1)
        r_tgt = sim.topk(k, dim=0).values.mean(dim=0)
        sim = 2 * sim - r_src[:, None] - r_tgt[None, :]
    ranks = []
    for s, t in links.t().tolist():
        row = sim[(sources == s).nonzero().item()]
        true = row[(targets == t).nonzero().item()]
        ranks.append(int((row > true).sum()) + 1)
    return ranks


@pytest.mark.parametrize("metric", ["cosine", "csls"])
@pytest.mark.parametrize("chunk_size", [1, 7, 4096])
def test_alignment_ranks_match_dense(metric: str, chunk_size: int) -> None:
    gen = torch.Generator().manual_seed(0)
    x_src = torch.randn(30, 8, generator=gen, dtype=torch.float64)
    x_tgt = torch.randn(35, 8, generator=gen, dtype=torch.float64)
    x_tgt[:30] += 0.8 * x_src  # make the truth findable but not trivial
    links = torch.stack([torch.randperm(30, generator=gen)[:20], torch.arange(20)])
    links = links[:, torch.randperm(20, generator=gen)]
    expected = _dense_ranks(x_src, x_tgt, links, metric, k=3)
    ranks = alignment_ranks(
        x_src, x_tgt, links, metric=metric, csls_k=3, chunk_size=chunk_size
    )
    assert ranks.tolist() == expected
    assert 1 < max(expected) <= 20 and min(expected) == 1


def test_csls_changes_ranks_and_uses_only_link_entities() -> None:
    gen = torch.Generator().manual_seed(1)
    x_src = torch.randn(20, 6, generator=gen, dtype=torch.float64)
    hub = x_src.mean(dim=0, keepdim=True)
    x_tgt = torch.cat([x_src + 0.9 * torch.randn(20, 6, generator=gen), 3 * hub])
    links = torch.stack([torch.arange(20), torch.arange(20)])
    cosine = alignment_ranks(x_src, x_tgt, links, candidates=torch.arange(21))
    csls = alignment_ranks(
        x_src, x_tgt, links, candidates=torch.arange(21), metric="csls"
    )
    assert not torch.equal(cosine, csls)
    # Entities outside the links do not enter the CSLS neighbourhoods.
    extra_src = torch.cat([x_src, torch.randn(5, 6, generator=gen, dtype=x_src.dtype)])
    extra_tgt = torch.cat([x_tgt, torch.randn(5, 6, generator=gen, dtype=x_tgt.dtype)])
    csls_extra = alignment_ranks(
        extra_src, extra_tgt, links, candidates=torch.arange(21), metric="csls"
    )
    assert torch.equal(csls, csls_extra)


def test_alignment_ranks_errors_and_empty() -> None:
    x_src, x_tgt, links = _hand_example()
    with pytest.raises(ValueError, match="candidates"):
        alignment_ranks(x_src, x_tgt, links, candidates=torch.tensor([0, 1, 4]))
    with pytest.raises(ValueError, match="candidates"):
        alignment_ranks(
            x_src, x_tgt, links, candidates=torch.empty(0, dtype=torch.long)
        )
    with pytest.raises(ValueError, match=r"\(2, L\)"):
        alignment_ranks(x_src, x_tgt, links.t())
    with pytest.raises(ValueError, match="metric"):
        alignment_ranks(x_src, x_tgt, links, metric="euclidean")
    empty = alignment_ranks(x_src, x_tgt, torch.empty(2, 0, dtype=torch.long))
    assert empty.shape == (0,) and empty.dtype == torch.long


def test_alignment_ranks_no_grad() -> None:
    x_src, x_tgt, links = _hand_example()
    x_src.requires_grad_()
    assert not alignment_ranks(x_src, x_tgt, links).requires_grad


def test_alignment_ranks_right_to_left_by_swapping() -> None:
    x_src, x_tgt, links = _hand_example()
    # Target-to-source: each target ranks the linked sources 0-3.
    ranks = alignment_ranks(x_tgt, x_src, links.flip(0))
    sim = F.normalize(x_tgt[:4], dim=-1) @ F.normalize(x_src[:4], dim=-1).t()
    expected = [int((sim[t] > sim[t, s]).sum()) + 1 for s, t in links.t().tolist()]
    assert ranks.tolist() == expected
    assert ranks.tolist() != HAND_RANKS


# --- Hits@k and MRR -------------------------------------------------------------

RANKS = torch.tensor([1, 3, 10, 11, 2])


@pytest.mark.parametrize(("k", "expected"), [(1, 0.2), (2, 0.4), (3, 0.6), (10, 0.8)])
def test_hits_at_k(k: int, expected: float) -> None:
    assert hits_at_k(RANKS, k) == pytest.approx(expected)


def test_mean_reciprocal_rank() -> None:
    expected = (1 + 1 / 3 + 1 / 10 + 1 / 11 + 1 / 2) / 5
    assert mean_reciprocal_rank(RANKS) == pytest.approx(expected)
    assert mean_reciprocal_rank(torch.ones(4, dtype=torch.long)) == 1.0


def test_rank_functions_validate_input() -> None:
    assert math.isnan(hits_at_k(torch.empty(0, dtype=torch.long), 1))
    assert math.isnan(mean_reciprocal_rank(torch.empty(0, dtype=torch.long)))
    with pytest.raises(ValueError, match="1-based"):
        hits_at_k(torch.tensor([0, 1]), 1)
    with pytest.raises(ValueError, match="1-based"):
        mean_reciprocal_rank(torch.tensor([2, 0]))


def test_ranking_metric_accumulates() -> None:
    metric = RankingMetric()
    assert repr(metric) == "RankingMetric(ks=(1, 10), num=0)"
    metric.update(RANKS[:2])
    metric.update(RANKS[2:])
    out = metric.compute()
    assert set(out) == {"hits@1", "hits@10", "mrr", "num"}
    assert out["num"] == 5
    assert out["hits@1"] == pytest.approx(20.0)
    assert out["hits@10"] == pytest.approx(80.0)
    assert out["mrr"] == pytest.approx(100 * mean_reciprocal_rank(RANKS))
    assert repr(metric) == "RankingMetric(ks=(1, 10), num=5)"
    metric.reset()
    assert metric.compute()["num"] == 0 and math.isnan(metric.compute()["mrr"])


def test_ranking_metric_custom_ks() -> None:
    metric = RankingMetric(ks=(3, 5))
    metric.update(RANKS)
    out = metric.compute()
    assert out["hits@3"] == pytest.approx(60.0) and out["hits@5"] == pytest.approx(60.0)
    assert "hits@1" not in out


@pytest.mark.parametrize("metric", ["cosine", "csls"])
def test_evaluate_alignment(metric: str) -> None:
    x_src, x_tgt, links = _hand_example()
    out = evaluate_alignment(x_src, x_tgt, links, metric=metric, chunk_size=2)
    assert set(out) == {"hits@1", "hits@10", "mrr"}
    ranks = alignment_ranks(x_src, x_tgt, links, metric=metric)
    assert out["hits@1"] == pytest.approx(100 * hits_at_k(ranks, 1))
    assert out["hits@10"] == pytest.approx(100.0)
    assert out["mrr"] == pytest.approx(100 * mean_reciprocal_rank(ranks))
    if metric == "cosine":
        assert out["hits@1"] == pytest.approx(25.0)
        assert out["mrr"] == pytest.approx(100 * (1 + 1 / 3 + 1 / 4 + 1 / 2) / 4)


def _random_links(n: int = 40, d: int = 8, num_links: int = 20):
    gen = torch.Generator().manual_seed(0)
    x_src = torch.randn(n, d, generator=gen)
    x_tgt = torch.randn(n, d, generator=gen)
    links = torch.stack([torch.randperm(n, generator=gen)[:num_links]] * 2)
    return x_src, x_tgt, links


@pytest.mark.parametrize("metric", ["cosine", "csls"])
def test_evaluate_alignment_rejects_all_nan(metric: str) -> None:
    x_src, x_tgt, links = _random_links()
    nan = torch.full_like(x_src, float("nan"))
    with pytest.raises(ValueError, match=r"x_src has 40 non-finite rows"):
        evaluate_alignment(nan, nan, torch.arange(40).repeat(2, 1), metric=metric)
    with pytest.raises(ValueError, match=r"x_tgt has 20 non-finite rows"):
        evaluate_alignment(x_src, nan, links, metric=metric)


def test_csls_rejects_one_nan_target_row() -> None:
    x_src, x_tgt, links = _random_links()
    row = int(links[1, 5])
    x_tgt[row, 3] = float("nan")
    message = rf"x_tgt has 1 non-finite row \(first: row {row}\)"
    with pytest.raises(ValueError, match=message):
        evaluate_alignment(x_src, x_tgt, links, metric="csls")


@pytest.mark.parametrize("metric", ["cosine", "csls"])
def test_alignment_ranks_rejects_one_inf_source_row(metric: str) -> None:
    x_src, x_tgt, links = _random_links()
    row = int(links[0, 7])
    x_src[row, 0] = float("-inf")
    message = rf"x_src has 1 non-finite row \(first: row {row}\)"
    with pytest.raises(ValueError, match=message):
        alignment_ranks(x_src, x_tgt, links, metric=metric)


@pytest.mark.parametrize("metric", ["cosine", "csls"])
def test_non_finite_rows_that_are_not_scored_are_ignored(metric: str) -> None:
    x_src, x_tgt, links = _random_links()
    expected = alignment_ranks(x_src, x_tgt, links, metric=metric)
    unused = torch.ones(40, dtype=torch.bool)
    unused[links[0]] = False
    x_src[unused, 0] = float("nan")
    x_tgt[unused, 0] = float("inf")
    assert torch.equal(alignment_ranks(x_src, x_tgt, links, metric=metric), expected)


@pytest.mark.parametrize("metric", ["cosine", "csls"])
def test_evaluate_directions(metric):
    generator = torch.Generator().manual_seed(0)
    x_src = torch.randn(30, 4, generator=generator)
    x_tgt = x_src + torch.randn(30, 4, generator=generator)
    links = torch.stack([torch.arange(20), torch.arange(20)])
    both = evaluate_directions(x_src, x_tgt, links, metric=metric)
    assert both["l2r"] == evaluate_alignment(x_src, x_tgt, links, metric=metric)
    assert both["r2l"] == evaluate_alignment(x_tgt, x_src, links.flip(0), metric=metric)
    assert both["l2r"]["mrr"] != both["r2l"]["mrr"]
    for key in ("hits@1", "hits@10", "mrr"):
        assert both["mean"][key] == pytest.approx(
            (both["l2r"][key] + both["r2l"][key]) / 2
        )


# --- search="faiss": ranks within top-k lists ------------------------------------


def _findable_links(n: int = 60, d: int = 8, num_links: int = 40, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x_src = torch.randn(n, d, generator=gen, dtype=torch.float64)
    x_tgt = 0.8 * x_src + torch.randn(n, d, generator=gen, dtype=torch.float64)
    links = torch.stack([torch.randperm(n, generator=gen)[:num_links]] * 2)
    return x_src, x_tgt, links


@pytest.mark.usefixtures("needs_faiss")
@pytest.mark.parametrize("metric", ["cosine", "csls"])
@pytest.mark.parametrize("all_candidates", [False, True])
def test_faiss_evaluation_equals_exact_when_lists_hold_every_target(
    metric: str, all_candidates: bool
) -> None:
    x_src, x_tgt, links = _findable_links()
    candidates = torch.arange(60) if all_candidates else None
    options = dict(metric=metric, candidates=candidates)
    exact = alignment_ranks(x_src, x_tgt, links, **options)
    kwargs = {"list_size": 60}
    ranks = alignment_ranks(
        x_src,
        x_tgt,
        links,
        search="faiss",
        search_kwargs=kwargs,
        chunk_size=7,
        **options,
    )
    assert ranks.dtype == torch.float64
    assert ranks.tolist() == exact.tolist()
    expected = evaluate_alignment(x_src, x_tgt, links, **options)
    out = evaluate_alignment(
        x_src, x_tgt, links, search="faiss", search_kwargs=kwargs, **options
    )
    search = out.pop("search")
    assert out == pytest.approx(expected)
    assert search["backend"] == "faiss" and search["index"] == "Flat"
    assert search["list_size"] == (60 if all_candidates else 40)
    assert search["unranked"] == 0
    assert ("source_index" in search) == (metric == "csls")


@pytest.mark.usefixtures("needs_faiss")
def test_faiss_evaluation_truncates_at_the_list() -> None:
    x_src, x_tgt, links = _findable_links(num_links=60)
    exact = alignment_ranks(x_src, x_tgt, links)
    assert (exact > 10).sum() > 0  # some true targets fall outside a list of 10
    search = FaissSearch(index="flat", list_size=10)
    ranks = alignment_ranks(x_src, x_tgt, links, search=search)
    inside = exact <= 10
    assert ranks[inside].tolist() == exact[inside].tolist()
    assert torch.isinf(ranks[~inside]).all()
    out = evaluate_alignment(x_src, x_tgt, links, search=search)
    assert out["search"]["unranked"] == int((~inside).sum())
    assert out["hits@1"] == pytest.approx(100 * hits_at_k(exact, 1))
    assert out["hits@10"] == pytest.approx(100 * hits_at_k(exact, 10))
    # Reciprocal rank 0 beyond the list: MRR is a lower bound.
    truncated = torch.where(inside, exact.double().reciprocal(), 0.0).mean()
    assert out["mrr"] == pytest.approx(100 * truncated.item())
    assert out["mrr"] < 100 * mean_reciprocal_rank(exact)
    with pytest.raises(ValueError, match=r"list_size 5 .* max\(ks\) = 10"):
        evaluate_alignment(
            x_src, x_tgt, links, search="faiss", search_kwargs={"list_size": 5}
        )


@pytest.mark.usefixtures("needs_faiss")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_faiss_csls_ranks_are_exact_or_unranked(seed: int) -> None:
    # CSLS can lift a target outside a source's cosine list above a listed one:
    # ranking within the list alone would flatter the link. Such a link is
    # unranked (a miss); every rank given is the exact one.
    x_src, x_tgt, links = _findable_links(n=200, d=16, num_links=150, seed=seed)
    x_tgt = x_tgt + 2.0 * torch.randn(200, 16, dtype=torch.float64)
    exact = alignment_ranks(x_src, x_tgt, links, metric="csls")
    search = FaissSearch(list_size=10)
    ranks = alignment_ranks(x_src, x_tgt, links, metric="csls", search=search)
    ranked = torch.isfinite(ranks)
    assert ranked.sum() > 0
    assert ranks[ranked].tolist() == exact[ranked].double().tolist()
    # links listed, yet unranked: the check matters at every seed
    in_list = exact <= 10
    assert (in_list & ~ranked).sum() > 0
    out = evaluate_alignment(x_src, x_tgt, links, metric="csls", search=search)
    expected = evaluate_alignment(x_src, x_tgt, links, metric="csls")
    for key in ("hits@1", "hits@10", "mrr"):
        assert out[key] <= expected[key] + 1e-9


def test_rank_functions_take_infinite_ranks() -> None:
    ranks = torch.tensor([1.0, 4.0, float("inf")])
    assert hits_at_k(ranks, 10) == pytest.approx(2 / 3)
    assert mean_reciprocal_rank(ranks) == pytest.approx((1 + 1 / 4) / 3)
    metric = RankingMetric()
    metric.update(ranks)
    assert metric.compute()["mrr"] == pytest.approx(100 * (1 + 1 / 4) / 3)


@pytest.mark.usefixtures("needs_faiss")
@pytest.mark.parametrize("metric", ["cosine", "csls"])
def test_evaluate_directions_faiss(metric: str) -> None:
    x_src, x_tgt, links = _findable_links()
    kwargs = {"list_size": 60}
    both = evaluate_directions(
        x_src, x_tgt, links, metric=metric, search="faiss", search_kwargs=kwargs
    )
    exact = evaluate_directions(x_src, x_tgt, links, metric=metric)
    for direction in ("l2r", "r2l"):
        assert both[direction].pop("search")["backend"] == "faiss"
        assert both[direction] == pytest.approx(exact[direction])
    assert set(both["mean"]) == {"hits@1", "hits@10", "mrr"}
    assert both["mean"] == pytest.approx(exact["mean"])


def test_evaluate_alignment_builds_no_graph(monkeypatch) -> None:
    x_src, x_tgt, links = _hand_example()
    x_src.requires_grad_()
    grad_enabled = []
    score_chunks = ranking._score_chunks

    def spy(*args):
        grad_enabled.append(torch.is_grad_enabled())
        return score_chunks(*args)

    monkeypatch.setattr(ranking, "_score_chunks", spy)
    evaluate_alignment(x_src, x_tgt, links)
    assert grad_enabled == [False]
