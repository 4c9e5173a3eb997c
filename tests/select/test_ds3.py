import importlib

import pytest
import torch

from almea_pyg.select.ds3 import DS3Result, ds3, lambda_max, simplex_projection

# The module itself: ``almea_pyg.select.ds3`` is also the name of the function.
ds3_module = importlib.import_module("almea_pyg.select.ds3")


def clustered(n_per=4, centres=(0.0, 5.0, 11.0), seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.cat([c + 0.3 * torch.randn(n_per, 2, generator=g) for c in centres])
    A = torch.cdist(x, x).pow(2)
    return (A / A.max()).to(dtype)


def objective(A, Z, lam, D):
    return lam * (D * Z.norm(dim=1)).sum() + (A * Z).sum()


def sort_projection(W):
    """Textbook sort-based projection of every column onto the simplex."""
    s = W.sort(0, descending=True).values
    cs = s.cumsum(0) - 1
    k = torch.arange(1, W.size(0) + 1, dtype=W.dtype)[:, None]
    r = (s - cs / k > 0).sum(0)
    theta = cs[r - 1, torch.arange(W.size(1))] / r
    return (W - theta).clamp_min(0)


def subgradient_solver(A, lam, D, steps=5000):
    """Projected subgradient descent with diminishing steps; returns the best Z."""
    K = A.size(0)
    Z = torch.full_like(A, 1.0 / K)
    best, best_Z = float("inf"), Z
    for t in range(1, steps + 1):
        norms = Z.norm(dim=1, keepdim=True)
        grad = A + lam * D[:, None] * torch.where(norms > 0, Z / norms, 0.0)
        Z = sort_projection(Z - 0.5 / t**0.5 * grad)
        value = objective(A, Z, lam, D).item()
        if value < best:
            best, best_Z = value, Z
    return best, best_Z


def textbook_admm(A, lam, D, rho=0.1, steps=20000):
    """The ADMM of SPEC 6.4 written plainly: unscaled dual, sort-based projection."""
    K = A.size(0)
    P, mu = torch.full_like(A, 1.0 / K), torch.zeros_like(A)
    for _ in range(steps):
        V = P - (mu + A) / rho
        Z = (1 - lam * D[:, None] / rho / V.norm(dim=1, keepdim=True)).clamp_min(0) * V
        P = sort_projection(Z + mu / rho)
        mu = mu + rho * (Z - P)
    return P


def reps_of(Z):
    n = Z.norm(dim=1)
    return set((n >= 0.1 * n.max()).nonzero().view(-1).tolist())


@pytest.mark.parametrize("seed,alpha", [(0, 0.2), (1, 0.5), (2, 1.0)])
def test_matches_slow_solver(seed, alpha):
    A = clustered(seed=seed)
    D = 1 + 2 * torch.rand(A.size(0), generator=torch.Generator().manual_seed(seed))
    D = D.double()
    out = ds3(A, alpha=alpha, row_weights=D, max_iter=5000, tol=1e-10)
    assert out.converged
    assert torch.allclose(out.objective, objective(A, out.Z, out.lam, D))
    # An independent solver can only do worse (it is inexact), and not by much.
    best, _ = subgradient_solver(A, out.lam, D)
    assert out.objective.item() <= best + 1e-9
    assert best - out.objective.item() <= 0.05 * best
    # The same ADMM written plainly and run long reaches the same point.
    plain = textbook_admm(A, out.lam, D)
    assert out.objective.item() == pytest.approx(
        objective(A, plain, out.lam, D).item(), rel=1e-6
    )
    assert set(out.representatives.tolist()) == reps_of(plain)


def test_constraints_and_result_shapes():
    A = clustered()
    out = ds3(A, alpha=0.3)
    assert isinstance(out, DS3Result)
    assert out.Z.shape == A.shape and out.Z.dtype == A.dtype
    assert torch.allclose(out.Z.sum(0), torch.ones(A.size(0), dtype=A.dtype))
    assert bool((out.Z >= 0).all())
    norms = out.Z.norm(dim=1)
    reps = out.representatives
    assert torch.all(norms[reps][:-1] >= norms[reps][1:])  # ordered by norm
    assert out.lam.item() == pytest.approx(0.3 * A.norm().item() / A.size(0) ** 0.5)
    assert out.num_iterations.dtype == torch.long and out.converged.dtype == torch.bool


def test_three_clusters_give_three_representatives():
    A = clustered(n_per=5)
    reps = ds3(A, alpha=0.3, max_iter=3000).representatives
    assert sorted(int(r) // 5 for r in reps) == [0, 1, 2]


def test_zero_lambda_every_column_picks_its_cheapest_row():
    g = torch.Generator().manual_seed(0)
    A = torch.rand(6, 6, generator=g, dtype=torch.float64)
    out = ds3(A, lam=0.0, max_iter=5000, tol=1e-10)
    expected = torch.nn.functional.one_hot(A.argmin(0), 6).t().to(A.dtype)
    assert torch.allclose(out.Z, expected, atol=1e-4)


def test_huge_lambda_keeps_only_the_medoid():
    A = clustered(n_per=3)
    out = ds3(A, lam=5.0, max_iter=3000)
    assert out.converged
    assert out.representatives.tolist() == [int(A.sum(1).argmin())]
    assert torch.allclose(
        out.Z[out.representatives[0]], torch.ones(A.size(0), dtype=A.dtype)
    )


def test_heavy_row_weight_is_never_a_representative():
    A = clustered(n_per=3, centres=(0.0,))
    medoid = int(A.sum(1).argmin())
    D = torch.ones(A.size(0), dtype=A.dtype)
    D[medoid] = 50.0
    out = ds3(A, alpha=1.0, row_weights=D)
    assert medoid not in out.representatives.tolist()


@pytest.mark.parametrize("rho_rule", ["fixed", "adaptive"])
@pytest.mark.parametrize("lam_rule", [None, "relative"])
def test_batch_equals_loop_of_single_problems(rho_rule, lam_rule):
    # The guarantee of docs/ds3.md: the same λ and the same iterations as alone,
    # up to floating-point rounding (the batch's reductions may round differently,
    # so Z is not bitwise equal); the same representatives.
    As = torch.stack([clustered(seed=s) for s in range(3)])
    D = 1 + torch.rand(3, As.size(-1), generator=torch.Generator().manual_seed(0))
    D = D.double()
    lam = torch.tensor([0.5, 2.0, 6.0], dtype=torch.float64)
    kw = dict(rho_rule=rho_rule)
    kw.update(dict(lam=lam) if lam_rule is None else dict(lam_rule=lam_rule))
    batch = ds3(As, row_weights=D, **kw)
    assert batch.Z.shape == As.shape and len(batch.representatives) == 3
    for b in range(3):
        kw_b = dict(kw, lam=lam[b]) if lam_rule is None else kw
        one = ds3(As[b], row_weights=D[b], **kw_b)
        assert torch.equal(batch.lam[b], one.lam)
        assert torch.allclose(batch.Z[b], one.Z, atol=1e-10)
        assert batch.representatives[b].tolist() == one.representatives.tolist()
        assert batch.num_iterations[b] == one.num_iterations
        assert batch.converged[b] == one.converged
        assert torch.allclose(batch.objective[b], one.objective)


@pytest.mark.parametrize("cache_bytes,rows", [(1, 1), (1000, 3)])
def test_blocked_sweep_equals_one_block(monkeypatch, cache_bytes, rows):
    # On CPU an iteration sweeps blocks of rows; blocks of one row or of three,
    # with the problems of a batch stopping at different iterations, must give
    # the iterates of a single block over the whole matrix.
    As = torch.stack([clustered(seed=s) for s in range(3)])
    lam = torch.tensor([0.5, 2.0, 6.0], dtype=torch.float64)
    kwargs = dict(lam=lam, tol=1e-9, max_iter=3000, rho_rule="fixed")
    monkeypatch.setattr(ds3_module, "CACHE_BYTES", 1 << 30)
    whole = ds3(As, **kwargs)
    monkeypatch.setattr(ds3_module, "CACHE_BYTES", cache_bytes)
    blocked = ds3(As, **kwargs)
    assert ds3_module._block_rows(As) == rows
    assert len(set(whole.num_iterations.tolist())) > 1  # early stops differ
    assert torch.equal(blocked.num_iterations, whole.num_iterations)
    assert torch.allclose(blocked.Z, whole.Z, atol=1e-10)
    for b, w in zip(blocked.representatives, whole.representatives):
        assert b.tolist() == w.tolist()


def test_batch_lambda_from_alpha_is_per_problem():
    As = torch.stack([clustered(seed=0), 3 * clustered(seed=1)])
    out = ds3(As, alpha=0.4)
    expected = 0.4 * torch.linalg.matrix_norm(As) / As.size(-1) ** 0.5
    assert torch.allclose(out.lam, expected)


def test_float32_and_float64_agree():
    A = clustered(seed=3)
    r64 = ds3(A, alpha=0.4)
    r32 = ds3(A.float(), alpha=0.4)
    assert r32.Z.dtype == torch.float32
    assert r32.representatives.tolist() == r64.representatives.tolist()
    assert r32.objective.item() == pytest.approx(r64.objective.item(), rel=1e-4)


def test_half_precision_is_solved_in_float32():
    A = clustered().to(torch.bfloat16)
    out = ds3(A, alpha=0.3)
    assert out.Z.dtype == torch.bfloat16
    assert sorted(int(r) // 4 for r in out.representatives) == [0, 1, 2]


def test_empty_and_single_problem():
    empty = ds3(torch.empty(0, 0))
    assert empty.Z.shape == (0, 0) and empty.representatives.numel() == 0
    one = ds3(torch.zeros(1, 1))
    assert one.Z.tolist() == [[1.0]] and one.representatives.tolist() == [0]
    assert one.converged


def test_duplicate_points():
    x = torch.tensor([[0.0], [0.0], [0.0], [10.0], [10.0]], dtype=torch.float64)
    A = torch.cdist(x, x).pow(2) / 100
    out = ds3(A, alpha=0.5)
    assert torch.isfinite(out.Z).all() and torch.allclose(
        out.Z.sum(0), torch.ones(5).double()
    )
    groups = {0 if int(r) < 3 else 1 for r in out.representatives}
    assert groups == {0, 1}


def test_deterministic():
    A = clustered(seed=5).float()
    first, second = ds3(A, alpha=0.3), ds3(A, alpha=0.3)
    assert torch.equal(first.Z, second.Z)
    assert torch.equal(first.representatives, second.representatives)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_input_is_rejected(bad):
    A = clustered()
    A[1, 2] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        ds3(A)


@pytest.mark.parametrize(
    "A,kwargs",
    [
        (torch.zeros(3, 4), {}),
        (torch.zeros(3), {}),
        (torch.zeros(3, 3, dtype=torch.long), {}),
        (torch.zeros(3, 3), {"row_weights": torch.ones(4)}),
        (torch.zeros(3, 3), {"row_weights": -torch.ones(3)}),
        (torch.zeros(3, 3), {"lam": -1.0}),
        (torch.zeros(3, 3), {"rho": 0.0}),
        (torch.zeros(3, 3), {"lam_rule": "frobenius"}),
        (torch.zeros(3, 3), {"rho_rule": "balanced"}),
        (torch.zeros(3, 3), {"lam_rule": "relative", "row_weights": torch.zeros(3)}),
    ],
)
def test_bad_arguments(A, kwargs):
    with pytest.raises(ValueError, match="ds3"):
        ds3(A, **kwargs)


def test_simplex_projection_matches_sort_based():
    W = torch.randn(
        30, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    assert torch.allclose(simplex_projection(W), sort_projection(W), atol=1e-12)
    batch = torch.stack([W, 3 * W])
    assert torch.allclose(
        simplex_projection(batch)[1], sort_projection(3 * W), atol=1e-12
    )


# Computed with the solver before the λ / ρ rules existed (paper's λ, fixed ρ),
# 60 iterations, float64: the fixed-ρ path must reproduce it bit for bit.
ORIGINAL_Z = [
    [0.901829523443817, 0.9538843211377173, 0.29445614368430206, 0.21726272978206573,
     0.0, 0.0],
    [0.0, 3.2090896695535776e-07, 0.0, 0.0, 0.0, 0.0],
    [0.0, 3.2090896695535776e-07, 0.0, 0.0, 0.0, 0.0],
    [0.09817047655618305, 0.046115037044348384, 0.7055438563156975,
     0.7827372702179343, 0.12644939078929873, 0.11172425317560197],
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [0.0, 0.0, 0.0, 0.0, 0.8735506092107013, 0.8882757468243976],
]  # fmt: skip


def test_paper_options_reproduce_the_original_solver():
    A = clustered(n_per=2)
    D = torch.tensor([1.0, 2.0, 1.5, 1.0, 3.0, 1.2], dtype=torch.float64)
    out = ds3(A, alpha=0.3, row_weights=D, max_iter=60, rho_rule="fixed")
    assert out.Z.tolist() == ORIGINAL_Z
    assert out.representatives.tolist() == [0, 5, 3]
    assert out.objective.item() == 1.573154997942103
    assert out.num_iterations == 60 and not out.converged
    longer = ds3(clustered(n_per=4, seed=1), alpha=0.6, rho_rule="fixed")
    assert longer.objective.item() == 5.08112589156638
    assert longer.representatives.tolist() == [4, 9, 0]
    assert longer.num_iterations == 470
    assert out.lam_max is None and out.rho.item() == 0.1


def single_row_objective(A, D, lam):
    K = A.size(0)
    return (lam * D * K**0.5 + A.sum(1)).min()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lambda_max_is_where_one_representative_becomes_optimal(seed):
    A = clustered(n_per=4, seed=seed)
    g = torch.Generator().manual_seed(seed)
    D = (1 + torch.rand(A.size(0), generator=g)).double()
    lam_max = lambda_max(A, D)
    kw = dict(row_weights=D, max_iter=5000, tol=1e-11)
    above = ds3(A, lam=1.001 * lam_max, **kw)
    assert above.converged and above.representatives.numel() == 1
    assert above.objective.item() == pytest.approx(
        single_row_objective(A, D, 1.001 * lam_max).item(), rel=1e-7
    )
    # Below λ_max a Z with several rows does strictly better than any single row.
    below = ds3(A, lam=0.95 * lam_max, **kw)
    assert below.converged and int((below.Z.norm(dim=1) > 1e-6).sum()) > 1
    assert below.objective.item() < single_row_objective(A, D, 0.95 * lam_max).item()
    # Unit weights: the closed form of Elhamifar et al. bounds it from above.
    ones = torch.ones_like(D)
    r = int(A.sum(1).argmin())
    diff = A - A[r]
    K = A.size(0)
    mask = torch.arange(K) != r
    closed = (K**0.5 * diff.pow(2).sum(1) / (2 * diff.sum(1)))[mask].max()
    assert lambda_max(A, ones).item() <= closed.item() * (1 + 1e-6)


def test_relative_rule_is_monotone_in_alpha_and_reaches_one():
    A = clustered(n_per=5, centres=(0.0, 4.0, 9.0, 15.0))
    D = (1 + torch.rand(A.size(0), generator=torch.Generator().manual_seed(3))).double()
    alphas = [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9, 1.0, 1.5, 3.0]
    counts = []
    for alpha in alphas:
        out = ds3(A, alpha=alpha, lam_rule="relative", row_weights=D, max_iter=5000)
        assert out.lam.item() == pytest.approx(alpha * out.lam_max.item())
        counts.append(out.representatives.numel())
    assert counts == sorted(counts, reverse=True)
    assert counts[0] >= 4 and all(c == 1 for a, c in zip(alphas, counts) if a >= 1)


def test_code_rule_is_a_constant_lambda():
    A = clustered()
    assert ds3(A, alpha=0.5, lam_rule="code").lam.item() == 0.5
    assert ds3(3 * A, alpha=0.5, lam_rule="code").lam.item() == 0.5


def pool_like(K, seed=0):
    """A clustered pool as the pipeline sees it: K // 50 clusters, min-max A."""
    g = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(K // 50, 32, generator=g)
    x = centres[torch.randint(0, K // 50, (K,), generator=g)]
    x = torch.nn.functional.normalize(x + torch.randn(K, 32, generator=g), dim=1)
    A = torch.cdist(x, x).pow(2)
    D = 1 + 2 * torch.rand(K, generator=g)
    return A / A.max(), D


def test_large_pool_leaves_the_uniform_point():
    A, D = pool_like(300)
    old = ds3(A, alpha=0.5, row_weights=D, rho_rule="fixed")
    # The paper's fixed ρ stays near the uniform Z: every row a representative.
    assert not old.converged and old.representatives.numel() == 300
    assert float((old.Z - 1 / 300).abs().max()) < 0.01
    for rule in ("relative", "paper"):
        new = ds3(A, alpha=0.5, lam_rule=rule, row_weights=D)
        assert new.converged
        assert 1 < new.representatives.numel() < 30


@pytest.mark.parametrize("seed,alpha", [(0, 0.1), (1, 0.35), (2, 1.0), (3, 3.0)])
def test_adaptive_rho_converges(seed, alpha):
    A = clustered(n_per=6, seed=seed)
    D = (
        1 + torch.rand(A.size(0), generator=torch.Generator().manual_seed(seed))
    ).double()
    fixed = ds3(A, alpha=alpha, row_weights=D, rho_rule="fixed", max_iter=5000)
    adaptive = ds3(A, alpha=alpha, row_weights=D)
    assert adaptive.converged and fixed.converged
    assert adaptive.objective.item() == pytest.approx(fixed.objective.item(), rel=1e-5)
