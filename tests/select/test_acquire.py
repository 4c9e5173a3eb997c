import pytest
import torch
from clustered_pairs import LABELLED, PERM, SOURCE, TARGET

from almea_pyg.select.acquire import ds3_acquire
from almea_pyg.select.dissimilarity import dissimilarity_matrix, diversity_scores
from almea_pyg.select.ds3 import ds3
from almea_pyg.select.pool import candidate_pool


def test_selects_confident_representatives_up_to_budget():
    acq = ds3_acquire(SOURCE, TARGET, LABELLED, 3, alpha=0.3)
    reps = acq.result.representatives
    # The most confident representatives (lowest pool positions), in that order.
    expected = reps.sort().values[:3]
    assert torch.equal(acq.source_index, acq.pool.source_index[expected])
    assert torch.equal(acq.target_index, acq.pool.target_index[expected])
    assert bool((acq.score[:-1] >= acq.score[1:]).all())
    # On this easy data the mutual nearest neighbours are the true links.
    assert torch.equal(acq.target_index, PERM[acq.source_index])


def test_inputs_are_the_paper_matrices():
    acq = ds3_acquire(SOURCE, TARGET, LABELLED, 3, alpha=0.3, sigma=2.0)
    hs = torch.nn.functional.normalize(SOURCE[acq.pool.source_index], dim=1)
    ht = torch.nn.functional.normalize(TARGET[acq.pool.target_index], dim=1)
    ls = torch.nn.functional.normalize(SOURCE[LABELLED[0]], dim=1)
    lt = torch.nn.functional.normalize(TARGET[LABELLED[1]], dim=1)
    D = diversity_scores(hs, ht, ls, lt, sigma=2.0)
    assert torch.allclose(acq.diversity, D)
    direct = ds3(dissimilarity_matrix(hs, ht), alpha=0.3, row_weights=D)
    assert torch.equal(acq.result.representatives, direct.representatives)


def test_tau_prune_and_exclusion():
    tau = 0.999
    acq = ds3_acquire(SOURCE, TARGET, LABELLED, 50, alpha=0.3, tau=tau)
    assert bool((acq.score >= tau).all())
    pruned = ds3_acquire(SOURCE, TARGET, LABELLED, 50, alpha=0.3, prune=0.5)
    full = ds3_acquire(SOURCE, TARGET, LABELLED, 50, alpha=0.3)
    assert len(pruned.pool) == round(0.5 * len(full.pool))
    excluded = ds3_acquire(
        SOURCE, TARGET, LABELLED, 50, alpha=0.3, exclude_source=torch.arange(30)
    )
    assert bool((excluded.pool.source_index >= 30).all())
    assert not set(LABELLED[0].tolist()) & set(full.pool.source_index.tolist())


def test_a_pool_built_once_gives_the_same_selection():
    pool = candidate_pool(
        SOURCE,
        TARGET,
        exclude_source=torch.cat([LABELLED[0], torch.arange(30)]),
        exclude_target=LABELLED[1],
        prune=0.5,
    )
    given = ds3_acquire(SOURCE, TARGET, LABELLED, 5, alpha=0.3, pool=pool)
    built = ds3_acquire(
        SOURCE,
        TARGET,
        LABELLED,
        5,
        alpha=0.3,
        prune=0.5,
        exclude_source=torch.arange(30),
    )
    assert given.pool is pool
    assert torch.equal(given.pool.source_index, built.pool.source_index)
    assert torch.equal(given.source_index, built.source_index)
    assert torch.equal(given.target_index, built.target_index)
    assert torch.equal(given.result.representatives, built.result.representatives)
    with pytest.raises(ValueError, match="labelled entities"):
        ds3_acquire(SOURCE, TARGET, LABELLED, 5, pool=candidate_pool(SOURCE, TARGET))


def test_empty_pool_or_budget():
    empty = ds3_acquire(SOURCE, TARGET, LABELLED, 0)
    assert len(empty.source_index) == 0 and empty.result is None
    none = ds3_acquire(SOURCE, TARGET, LABELLED, 5, exclude_target=torch.arange(60))
    assert len(none.source_index) == 0 and len(none.pool) == 0


def test_lambda_rule_rho_rule_and_dissimilarity_options():
    import pytest

    from almea_pyg.select.dissimilarity import pair_embeddings

    acq = ds3_acquire(
        SOURCE, TARGET, LABELLED, 5, alpha=0.5, lam_rule="relative", rho_rule="fixed"
    )
    assert acq.result.lam.item() == pytest.approx(0.5 * acq.result.lam_max.item())
    assert acq.result.rho.item() == pytest.approx(0.1)
    code = ds3_acquire(
        SOURCE, TARGET, LABELLED, 5, alpha=0.5, lam_rule="code", dissimilarity="csls"
    )
    assert code.result.lam.item() == 0.5
    hs, ht = pair_embeddings(
        SOURCE, TARGET, code.pool.source_index, code.pool.target_index
    )
    direct = ds3(
        dissimilarity_matrix(hs, ht, csls_k=3),
        alpha=0.5,
        lam_rule="code",
        row_weights=code.diversity,
    )
    assert torch.equal(code.result.representatives, direct.representatives)
    with pytest.raises(ValueError, match="dissimilarity"):
        ds3_acquire(SOURCE, TARGET, LABELLED, 5, dissimilarity="cosine")


def test_faiss_pool_selects_what_the_exact_pool_selects():
    pytest.importorskip("faiss", reason="faiss is not installed (almea-pyg[faiss])")
    exact = ds3_acquire(SOURCE, TARGET, LABELLED, 8)
    listed = ds3_acquire(SOURCE, TARGET, LABELLED, 8, search="faiss")
    assert len(exact.pool) > 8
    assert torch.equal(listed.source_index, exact.source_index)
    assert torch.equal(listed.target_index, exact.target_index)
