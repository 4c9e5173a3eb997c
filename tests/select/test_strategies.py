import pytest
import torch
import torch.nn.functional as F
from clustered_pairs import LABELLED, PERM, SOURCE, TARGET

from almea_pyg.select.base import STRATEGIES, Selection, Strategy, strategy_resolver
from almea_pyg.select.pool import candidate_pool
from almea_pyg.select.strategies import (
    CoreSetStrategy,
    DegreeStrategy,
    DS3Strategy,
    RandomPairStrategy,
    RandomStrategy,
    UncertaintyStrategy,
)

DEGREE = torch.arange(60) % 7


class StrategyContract:
    """Contract every acquisition strategy passes (PyKEEN-style generic test case)."""

    cls: type[Strategy]
    kwargs: dict = {}

    def strategy(self) -> Strategy:
        return self.cls(**self.kwargs)

    def select(self, budget=8, **kwargs) -> Selection:
        kwargs.setdefault("source_degree", DEGREE)
        kwargs.setdefault("generator", torch.Generator().manual_seed(0))
        return self.strategy().select(SOURCE, TARGET, LABELLED, budget, **kwargs)

    def test_shapes_and_budget(self):
        sel = self.select()
        assert isinstance(sel, Selection)
        assert 0 < len(sel) <= 8
        assert sel.source_index.dtype == sel.target_index.dtype == torch.long
        assert sel.source_index.shape == sel.target_index.shape == sel.score.shape
        assert sel.pairs.shape == (2, len(sel))
        assert sel.source_index.unique().numel() == len(sel)

    def test_never_selects_labelled_or_excluded(self):
        ex_s, ex_t = torch.arange(6, 20), PERM[20:30]
        sel = self.select(exclude_source=ex_s, exclude_target=ex_t)
        taken_s = set(LABELLED[0].tolist()) | set(ex_s.tolist())
        taken_t = set(LABELLED[1].tolist()) | set(ex_t.tolist())
        assert not set(sel.source_index.tolist()) & taken_s
        assert not set(sel.target_index.tolist()) & taken_t

    def test_target_is_best_match_and_score_is_similarity(self):
        ex_t = PERM[30:40]
        sel = self.select(exclude_target=ex_t)
        sim = F.normalize(SOURCE, dim=1) @ F.normalize(TARGET, dim=1).t()
        blocked = torch.cat([LABELLED[1], ex_t])
        sim[:, blocked] = -2
        best = sim[sel.source_index].argmax(1)
        assert torch.equal(sel.target_index, best)
        assert torch.allclose(
            sel.score, sim[sel.source_index, sel.target_index], atol=1e-5
        )

    def test_empty_cases(self):
        assert len(self.select(budget=0)) == 0
        assert len(self.select(exclude_source=torch.arange(60))) == 0
        assert len(self.select(exclude_target=torch.arange(60))) == 0

    def test_deterministic(self):
        first, second = self.select(), self.select()
        assert torch.equal(first.source_index, second.source_index)
        assert torch.equal(first.target_index, second.target_index)

    @pytest.mark.parametrize("budget", [-1, 2.5, True])
    def test_bad_budget(self, budget):
        with pytest.raises(ValueError, match="budget"):
            self.select(budget=budget)

    def test_bad_labelled(self):
        with pytest.raises(ValueError, match="labelled"):
            self.strategy().select(SOURCE, TARGET, LABELLED[0], 3)

    def test_repr_and_registry(self):
        strategy = self.strategy()
        assert repr(strategy).startswith(f"{self.cls.__name__}(")
        assert isinstance(strategy_resolver(self.cls.name, **self.kwargs), self.cls)
        assert strategy_resolver(strategy) is strategy


class TestDS3(StrategyContract):
    cls = DS3Strategy
    kwargs = {"alpha": 0.3}


class TestRandom(StrategyContract):
    cls = RandomStrategy


class TestRandomPair(StrategyContract):
    cls = RandomPairStrategy


class TestUncertainty(StrategyContract):
    cls = UncertaintyStrategy


class TestDegree(StrategyContract):
    cls = DegreeStrategy


class TestCoreSet(StrategyContract):
    cls = CoreSetStrategy


def test_registry_and_resolver():
    assert set(STRATEGIES) == {
        "ds3",
        "random",
        "random_pair",
        "uncertainty",
        "degree",
        "coreset",
    }
    assert isinstance(strategy_resolver("DS3", alpha=0.5), DS3Strategy)
    assert strategy_resolver(DS3Strategy, alpha=0.5).alpha == 0.5
    assert (
        repr(DS3Strategy(alpha=0.5))
        == "DS3Strategy(alpha=0.5, sigma=3.0, metric='cosine')"
    )
    relative = strategy_resolver("ds3", alpha=0.5, lam_rule="relative")
    assert repr(relative).startswith("DS3Strategy(alpha=0.5, lam_rule='relative'")
    with pytest.raises(ValueError, match="unknown strategy"):
        strategy_resolver("nope")
    with pytest.raises(ValueError, match="kwargs"):
        strategy_resolver(RandomStrategy(), metric="csls")
    with pytest.raises(ValueError, match="'random' takes no option 'alpha'.*metric"):
        strategy_resolver("random", alpha=0.3)
    with pytest.raises(ValueError, match="'ds3' takes no option 'sigmas'.*sigma"):
        strategy_resolver(DS3Strategy, sigmas=2.0)
    with pytest.raises(ValueError, match="metric"):
        RandomStrategy(metric="euclid")


def test_random_depends_on_generator():
    def run(seed):
        g = torch.Generator().manual_seed(seed)
        return RandomStrategy().select(SOURCE, TARGET, LABELLED, 10, generator=g)

    assert not torch.equal(run(0).source_index, run(1).source_index)


def test_uncertainty_picks_smallest_margin():
    source = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    target = torch.tensor([[1.0, 0.1], [0.1, 1.0]])
    empty = torch.empty(2, 0, dtype=torch.long)
    sel = UncertaintyStrategy().select(source, target, empty, 1)
    assert sel.source_index.tolist() == [1]  # equally close to both targets


def test_degree_orders_by_source_plus_target_degree():
    empty = torch.empty(2, 0, dtype=torch.long)
    degree = torch.zeros(60, dtype=torch.long)
    degree[[7, 9]] = torch.tensor([5, 9])
    sel = DegreeStrategy().select(SOURCE, TARGET, empty, 2, source_degree=degree)
    assert sel.source_index.tolist() == [9, 7]
    tdeg = torch.zeros(60, dtype=torch.long)
    tdeg[PERM[7]] = 10
    sel = DegreeStrategy().select(
        SOURCE, TARGET, empty, 1, source_degree=degree, target_degree=tdeg
    )
    assert sel.source_index.tolist() == [7]
    with pytest.raises(ValueError, match="source_degree"):
        DegreeStrategy().select(SOURCE, TARGET, empty, 2)


def test_coreset_picks_the_far_cluster_first():
    source = torch.tensor([[1.0, 0.0], [0.99, 0.1], [0.98, 0.15], [0.0, 1.0]])
    target = source.clone()
    labelled = torch.tensor([[0], [0]])
    sel = CoreSetStrategy().select(source, target, labelled, 2)
    assert sel.source_index.tolist()[0] == 3


def test_ds3_strategy_keeps_its_acquisition():
    strategy = DS3Strategy(alpha=0.3, tau=0.9)
    sel = strategy.select(SOURCE, TARGET, LABELLED, 5)
    acq = strategy.acquisition_
    assert acq is not None and acq.result is not None
    assert bool((sel.score >= 0.9).all())
    assert set(sel.source_index.tolist()) <= set(
        acq.pool.source_index[acq.result.representatives].tolist()
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(lam_rule="relative", alpha=0.5),
        dict(lam_rule="code", alpha=0.5, dissimilarity="csls"),
        dict(rho_rule="fixed"),
    ],
)
def test_ds3_strategy_passes_the_rules(kwargs):
    strategy = DS3Strategy(**kwargs)
    sel = strategy.select(SOURCE, TARGET, LABELLED, 4)
    assert 0 < len(sel) <= 4
    result = strategy.acquisition_.result
    if kwargs.get("lam_rule") == "relative":
        assert result.lam.item() == pytest.approx(0.5 * result.lam_max.item())
    if kwargs.get("lam_rule") == "code":
        assert result.lam.item() == 0.5
    if kwargs.get("rho_rule") == "fixed":
        assert result.rho.item() == pytest.approx(0.1)


def test_random_pair_draws_from_the_mutual_nn_pool():
    pool = candidate_pool(
        SOURCE, TARGET, exclude_source=LABELLED[0], exclude_target=LABELLED[1]
    )
    pool_pairs = set(zip(pool.source_index.tolist(), pool.target_index.tolist()))
    picks = [
        RandomPairStrategy().select(
            SOURCE, TARGET, LABELLED, 5, generator=torch.Generator().manual_seed(seed)
        )
        for seed in (0, 1)
    ]
    for sel in picks:
        assert set(zip(sel.source_index.tolist(), sel.target_index.tolist())) <= (
            pool_pairs
        )
    assert not torch.equal(picks[0].source_index, picks[1].source_index)
