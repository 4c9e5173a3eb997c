"""DS3: dissimilarity-based sparse subset selection by ADMM (Eq. 8, App. B.3-B.4).

Solves, for one dissimilarity matrix ``A`` or a batch of them,

    min_Z  λ ‖D Z‖_{2,1} + tr(Aᵀ Z)   s.t.  1ᵀ Z = 1ᵀ,  Z ≥ 0,

where ``Z[i, j]`` is how much candidate ``i`` represents candidate ``j`` and ``D`` are
per-row penalty weights. The ADMM splits ``Z = P`` with the linear term on the ``Z``
side (SPEC §6.4), in scaled form ``U = μ / ρ``:

- ``V = P − U − A / ρ``; row shrinkage ``Z_i = max(0, 1 − (λ D_i / ρ) / ‖V_i‖₂) V_i``;
- ``P = Π(Z + U)``, every column projected onto the probability simplex;
- ``U ← U + Z − P``.

Why it is fast: the projection of a column is ``max(w − θ, 0)`` for one threshold
``θ``. Instead of sorting every column at every iteration, each iteration starts from
the previous thresholds and takes Newton (Michelot) steps: the first lands on a lower
bound of the exact thresholds, every later one only shrinks the support, and a
threshold is exact once its support stops changing; each step is a few elementwise
passes. The projection residual ``mean |1ᵀ P − 1|`` is part of the stopping test, and
the returned ``Z`` is the exact projection of the last iterate (columns sum to one,
``Z ≥ 0``). The updates are in place on three ``[B, K, K]`` buffers holding the
transposes, so that the projections run along contiguous rows. On CPU an iteration
sweeps them in blocks of rows of about ``CACHE_BYTES``: every Newton step of a block
runs while it is in cache, which at K = 4,000 makes an iteration ~6x faster than
whole-matrix passes (``benchmarks/ds3_speed.py``, 2 threads). Convergence is checked
every ``check_every`` iterations, which (with the Newton steps' support test) is the
only time the loop reads anything back from the device.
"""

import logging
import math
from dataclasses import dataclass
from typing import Literal, Optional, Union

import torch
from torch import Tensor

log = logging.getLogger(__name__)

#: Rows whose norm reaches this fraction of the largest row norm are representatives.
REPRESENTATIVE_RATIO = 0.1
#: Cap on threshold steps per projection (Michelot's method is finite; this bounds
#: the floating-point corner case of an entry flickering at the threshold).
MAX_NEWTON_STEPS = 50
#: How λ is set from ``alpha`` (see :func:`ds3`).
LamRule = Literal["paper", "relative", "code"]
LAM_RULES: tuple[str, ...] = ("paper", "relative", "code")
#: How ρ evolves: the paper's fixed ρ, or residual balancing.
RhoRule = Literal["fixed", "adaptive"]
RHO_RULES: tuple[str, ...] = ("fixed", "adaptive")
#: Residual balancing (Boyd et al. 2011, §3.4.1): when the primal residual exceeds
#: ``RESIDUAL_RATIO`` times the dual one, ρ is multiplied by ``RHO_FACTOR`` (and
#: divided in the opposite case); ρ changes at most ``MAX_RHO_CHANGES`` times per
#: problem, after which it stays fixed and the usual ADMM convergence theory applies.
RESIDUAL_RATIO = 10.0
RHO_FACTOR = 2.0
MAX_RHO_CHANGES = 30
#: Relative tolerance of the bisection for ``λ_max``.
LAM_MAX_RTOL = 1e-6
#: Bytes of a block of rows on CPU (best of 1, 2, 4 MiB at K = 1,000-4,000 on
#: 2 threads): the block's projection runs in cache.
CACHE_BYTES = 1 << 22


@dataclass
class DS3Result:
    """The output of :func:`ds3`.

    Attributes:
        Z: The assignment matrix, ``(K, K)`` or ``(B, K, K)``; columns sum to one.
        representatives: Rows with ``‖Z_i‖ ≥ 0.1 · max_i ‖Z_i‖``, ordered by
            decreasing row norm: a ``LongTensor`` for one problem, a list of them for
            a batch.
        objective: ``λ ‖D Z‖_{2,1} + tr(Aᵀ Z)`` at ``Z``, shape ``()`` or ``(B,)``.
        num_iterations: ADMM iterations run, shape ``()`` or ``(B,)``.
        converged: Whether the stopping test passed before ``max_iter``.
        lam: The λ used, shape ``()`` or ``(B,)``.
        rho: The ρ of the last iteration (the initial ρ under ``rho_rule="fixed"``).
        lam_max: ``λ_max`` of each problem under ``lam_rule="relative"``, else
            ``None``.
    """

    Z: Tensor
    representatives: Union[Tensor, list[Tensor]]
    objective: Tensor
    num_iterations: Tensor
    converged: Tensor
    lam: Tensor
    rho: Optional[Tensor] = None
    lam_max: Optional[Tensor] = None


def simplex_projection(W: Tensor) -> Tensor:
    """Exact Euclidean projection of every column of ``W`` onto the probability simplex.

    Sort-free: Newton (Michelot) steps on the column thresholds ``θ`` of
    ``max(W − θ, 0)``, started from the lower bound ``max(W) − 1``.

    Shapes:
        W: ``(..., K, N)`` -> same shape, non-negative, every column summing to one.
    """
    if W.size(-2) == 0:
        return W.clone()
    theta = _newton_threshold(W, W.amax(-2, keepdim=True) - 1)
    return (W - theta).clamp_min_(0)


def _newton_threshold(
    W: Tensor, theta: Tensor, max_steps: int = 100, dim: int = -2
) -> Tensor:
    """Exact thresholds of ``W`` along ``dim`` by Newton (Michelot) steps from
    ``theta``.

    The first step lands on a lower bound; from there the support only shrinks, and
    the threshold is exact once it stops shrinking (finitely many steps).
    """
    previous = None
    for _ in range(max_steps):
        P = (W - theta).clamp_min_(0)
        count = torch.sign(P).sum(dim, keepdim=True)
        theta = theta + (P.sum(dim, keepdim=True) - 1) / count.clamp_min(1)
        if previous is not None and torch.equal(count, previous):
            break
        previous = count
    return theta


def _threshold_steps(
    W: Tensor, R: Tensor, theta: Tensor, steps: Optional[int], dim: int = -2
) -> Tensor:
    """Newton steps on the thresholds, updating ``R = max(W − θ, 0)`` in place.

    The first step (from the previous iteration's ``θ``, evaluated on the current
    ``W``) lands on a lower bound; later steps only shrink the support. With
    ``steps=None``, step until no column's support changes (then ``θ`` is exact);
    otherwise take exactly ``steps`` steps without reading anything back.
    """
    # Support sizes as floats: sign() of a non-negative matrix is its support
    # indicator, and summing floats is much cheaper than a bool-to-int64 count.
    count = torch.sign(R).sum(dim, keepdim=True)
    for step in range(steps or MAX_NEWTON_STEPS):
        delta = (R.sum(dim, keepdim=True) - 1).div_(count.clamp_min(1))
        if step == 0:
            theta = theta + delta
            torch.sub(W, theta, out=R).relu_()
        else:
            # From a lower bound the exact steps are >= 0; clamping drops rounding
            # noise that would otherwise revive entries already at zero.
            delta.clamp_min_(0)
            theta = theta + delta
            R.sub_(delta).relu_()
        if steps is not None and step + 1 == steps:
            break
        new_count = torch.sign(R).sum(dim, keepdim=True)
        if steps is None and torch.equal(new_count, count):
            break
        count = new_count
    return theta


def _check_input(A: Tensor, row_weights: Optional[Tensor]) -> tuple[Tensor, Tensor]:
    if not isinstance(A, Tensor) or A.dim() not in (2, 3) or A.size(-1) != A.size(-2):
        shape = tuple(A.shape) if isinstance(A, Tensor) else type(A).__name__
        raise ValueError(f"ds3: A must be a [K, K] or [B, K, K] tensor, got {shape}")
    if not A.is_floating_point():
        raise ValueError(f"ds3: A must be a floating tensor, got {A.dtype}")
    if not bool(torch.isfinite(A).all()):
        raise ValueError("ds3: A contains NaN or infinite values")
    batch, K = (A.size(0) if A.dim() == 3 else 1), A.size(-1)
    if row_weights is None:
        return A, A.new_ones(batch, K)
    row_weights = torch.as_tensor(row_weights, dtype=A.dtype, device=A.device)
    if row_weights.shape not in ((K,), (batch, K)) or (
        A.dim() == 2 and row_weights.dim() != 1
    ):
        raise ValueError(
            f"ds3: row_weights must have shape [K] or [B, K] matching A, "
            f"got {tuple(row_weights.shape)} for A of shape {tuple(A.shape)}"
        )
    if not bool(torch.isfinite(row_weights).all()) or bool((row_weights < 0).any()):
        raise ValueError("ds3: row_weights must be finite and non-negative")
    return A, row_weights.expand(batch, K)


def _batch_lambda(
    A: Tensor, weights: Tensor, alpha: float, lam, lam_rule: str, batch: int
) -> tuple[Tensor, Optional[Tensor]]:
    """λ per problem, and ``λ_max`` when the relative rule computed it."""
    K = A.size(-1)
    if lam is None:
        if lam_rule == "paper":
            # App. B.3: λ = α ‖A‖_F / √K, one λ per problem.
            norms = torch.linalg.matrix_norm(A.view(batch, K, K))
            return alpha * norms / math.sqrt(max(K, 1)), None
        if lam_rule == "relative":
            lam_max = _lambda_max(A, weights)
            return alpha * lam_max, lam_max
        # "code": the public code's constant λ (its --lambda_), weighted by D per row.
        return A.new_full((batch,), float(alpha)), None
    lam = torch.as_tensor(lam, dtype=A.dtype, device=A.device).reshape(-1)
    if lam.numel() not in (1, batch) or not bool(torch.isfinite(lam).all()):
        raise ValueError(f"ds3: lam must be a finite scalar or have {batch} entries")
    if bool((lam < 0).any()):
        raise ValueError("ds3: lam must be non-negative")
    return lam.expand(batch).clone(), None


def lambda_max(A: Tensor, row_weights: Optional[Tensor] = None) -> Tensor:
    r"""The smallest λ at which a single representative is optimal.

    ``Z = e_r 1ᵀ`` (row ``r`` represents everything) solves the DS3 problem iff, with
    ``r`` the best single row ``argmin_i λ D_i √K + 1ᵀ a_i`` and ``a_i`` the rows of
    ``A``, every other row satisfies the KKT condition

        ‖(a_r − a_i + λ D_r / √K)₊‖₂ ≤ λ D_i

    (the subgradient of row ``i``'s penalty must cover the columns where ``i`` is
    cheaper than ``r`` plus ``r``'s marginal penalty). For unit weights this is
    Elhamifar et al.'s ``λ_max,2 = max_i √K ‖a_i − a_r‖² / (2 · 1ᵀ(a_i − a_r))`` with
    the positive part made exact. ``λ_max`` is found by bisection on this test (to a
    relative ``1e-6``); it is what ``lam_rule="relative"`` multiplies by ``alpha``.

    Args:
        A: Dissimilarities, ``(K, K)`` or ``(B, K, K)``.
        row_weights: Positive row weights ``D``, ``(K,)`` or ``(B, K)``; ones when
            omitted.

    Shapes:
        A: ``(K, K)`` or ``(B, K, K)`` -> ``()`` or ``(B,)``.
    """
    A, weights = _check_input(A, row_weights)
    batch, K = (1 if A.dim() == 2 else A.size(0)), A.size(-1)
    work = A if A.dtype in (torch.float32, torch.float64) else A.float()
    out = _lambda_max(work.reshape(batch, K, K), weights.to(work.dtype))
    return out[0] if A.dim() == 2 else out


def _one_row_optimal(A: Tensor, weights: Tensor, lam: Tensor) -> Tensor:
    """Whether the best single-row ``Z`` passes the KKT test at ``lam``, per problem."""
    batch, K = A.size(0), A.size(-1)
    root = math.sqrt(K)
    best = (lam[:, None] * weights * root + A.sum(-1)).argmin(-1)
    idx = torch.arange(batch, device=A.device)
    reference = A[idx, best] + (lam * weights[idx, best] / root)[:, None]  # [B, K]
    slack = 1 + 64 * torch.finfo(A.dtype).eps
    ok = torch.ones(batch, dtype=torch.bool, device=A.device)
    size = _block_rows(A)
    for start in range(0, K, size):
        rows = slice(start, start + size)
        gap = (reference[:, None, :] - A[:, rows]).clamp_min_(0)
        fine = (
            torch.linalg.vector_norm(gap, dim=-1)
            <= slack * lam[:, None] * (weights[:, rows])
        )
        own = torch.arange(start, start + fine.size(1), device=A.device)
        fine |= own[None, :] == best[:, None]
        ok &= fine.all(-1)
    return ok


def _lambda_max(A: Tensor, weights: Tensor) -> Tensor:
    batch, K = A.size(0), A.size(-1)
    lo = A.new_zeros(batch)
    if K <= 1:
        return lo
    if bool((weights <= 0).any()):
        raise ValueError("ds3: lam_rule='relative' needs positive row_weights")
    ok0 = _one_row_optimal(A, weights, lo)
    scale = torch.linalg.matrix_norm(A) / math.sqrt(K) / weights.amin(-1)
    hi = scale.clamp_min(torch.finfo(A.dtype).tiny ** 0.5)
    for _ in range(200):
        ok = _one_row_optimal(A, weights, hi) | ok0
        if bool(ok.all()):
            break
        hi = torch.where(ok, hi, 2 * hi)
    for _ in range(200):
        if not bool(((hi - lo) > LAM_MAX_RTOL * hi).any()):
            break
        mid = (lo + hi) / 2
        ok = _one_row_optimal(A, weights, mid)
        hi, lo = torch.where(ok, mid, hi), torch.where(ok, lo, mid)
    return torch.where(ok0, torch.zeros_like(hi), hi)


def ds3(
    A: Tensor,
    *,
    alpha: float = 0.35,
    lam: Union[float, Tensor, None] = None,
    lam_rule: LamRule = "paper",
    row_weights: Optional[Tensor] = None,
    rho: float = 0.1,
    rho_rule: RhoRule = "adaptive",
    max_iter: int = 1000,
    tol: float = 1e-7,
    check_every: int = 10,
    newton_steps: Optional[int] = None,
) -> DS3Result:
    r"""Select representatives of a dissimilarity matrix with DS3 (Eq. 8).

    Args:
        A: Dissimilarities, ``A[i, j]`` the cost of ``i`` representing ``j``.
        alpha: Sparsification factor; what it means depends on ``lam_rule``.
            (default: ``0.35``)
        lam: λ itself (scalar or one per problem); overrides ``alpha`` and
            ``lam_rule``.
        lam_rule: How λ follows from ``alpha``, per problem:

            - ``"paper"`` (default): ``λ = α ‖A‖_F / √K`` (App. B.3). This λ grows
              with the pool; past a few hundred pairs (or at large α) it exceeds
              ``λ_max`` and one representative is optimal (with
              ``rho_rule="fixed"`` the ADMM instead stays near the uniform ``Z``,
              every row a representative, see ``docs/ds3.md``).
            - ``"relative"``: ``λ = α · λ_max`` (:func:`lambda_max`, the smallest λ
              at which one representative is optimal): ``α ≥ 1`` gives one
              representative, smaller α more, at every pool size.
            - ``"code"``: ``λ = α``, a constant as in the paper's public code
              (``--lambda_``, 0.5 in its ``run_experiments.sh``), weighted per row
              by ``D`` as the objective does.
        row_weights: Row penalty weights ``D`` (the diversity scores, Eq. 7), shape
            ``(K,)`` or ``(B, K)``; ones when omitted.
        rho: Initial ADMM penalty ρ. (default: ``0.1``)
        rho_rule: ``"fixed"``: the paper's constant ρ. ``"adaptive"`` (default):
            residual balancing every ``check_every`` iterations (ρ doubled when
            ``Σ|Z − P|`` exceeds ``10 ρ Σ|P_t − P_{t−1}|``, halved in the opposite
            case, the scaled dual rescaled; at most 30 changes per problem). The
            same problem, solved in far fewer iterations when λ is large.
        max_iter: Iteration limit ``T_iter``. (default: ``1000``)
        tol: ``ε`` of the stopping tests ``mean|Z − P| ≤ ε``,
            ``mean|P_t − P_{t−1}| ≤ ε`` and ``mean|1ᵀP − 1| ≤ ε``. (default: ``1e-7``)
        check_every: Evaluate the stopping tests (and adapt ρ) every this many
            iterations (the only host-device synchronisation inside the loop).
            (default: ``10``)
        newton_steps: Threshold (Newton) steps per P-update. ``None`` (default, on
            every device): step until every column's threshold is exact, which
            reads one flag back per step and makes the iterates those of the
            textbook ADMM. An integer: exactly that many steps, never reading
            back, fewer syncs on an accelerator; the stopping test still checks
            the projection, but 1-2 steps were seen to keep the ADMM from
            converging, so use it only where measured.

    Shapes:
        A: ``(K, K)`` or ``(B, K, K)``, any floating dtype and device.
        row_weights: ``(K,)`` or ``(B, K)``.
        Z: same shape as ``A``.
    """
    if (
        rho <= 0
        or max_iter < 1
        or tol < 0
        or check_every < 1
        or (newton_steps or 1) < 1
    ):
        raise ValueError(
            "ds3: need rho > 0, max_iter >= 1, tol >= 0, check_every >= 1 and "
            "newton_steps >= 1"
        )
    if lam_rule not in LAM_RULES:
        raise ValueError(f"ds3: lam_rule must be one of {LAM_RULES}, got {lam_rule!r}")
    if rho_rule not in RHO_RULES:
        raise ValueError(f"ds3: rho_rule must be one of {RHO_RULES}, got {rho_rule!r}")
    A, weights = _check_input(A, row_weights)
    single = A.dim() == 2
    batch, K = (1 if single else A.size(0)), A.size(-1)
    dtype = A.dtype
    # Half precision lacks the range for the ADMM's sums; solve in float32.
    work = A if dtype in (torch.float32, torch.float64) else A.float()
    work = work.reshape(batch, K, K).contiguous()
    weights = weights.to(work.dtype)
    lam_t, lam_max_t = _batch_lambda(work, weights, alpha, lam, lam_rule, batch)

    if K == 0:
        W, theta = work.clone(), None
        iterations = torch.zeros(batch, dtype=torch.long, device=A.device)
        converged = torch.ones(batch, dtype=torch.bool, device=A.device)
        rho_t = work.new_full((batch,), rho)
    else:
        W, theta, iterations, converged, rho_t = _admm(
            work,
            lam_t,
            weights,
            rho,
            rho_rule == "adaptive",
            max_iter,
            tol,
            check_every,
            newton_steps,
        )
    Z = (W - _newton_threshold(W, theta)).clamp_min_(0) if K > 0 else W
    norms = torch.linalg.vector_norm(Z, dim=-1)
    objective = lam_t * (weights * norms).sum(-1) + (work * Z).sum((-2, -1))
    representatives = [_representatives(row) for row in norms]

    Z = Z.to(dtype)
    if single:
        return DS3Result(
            Z[0],
            representatives[0],
            objective[0],
            iterations[0],
            converged[0],
            lam_t[0],
            rho_t[0],
            None if lam_max_t is None else lam_max_t[0],
        )
    return DS3Result(
        Z, representatives, objective, iterations, converged, lam_t, rho_t, lam_max_t
    )


def _representatives(norms: Tensor) -> Tensor:
    if norms.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=norms.device)
    order = norms.argsort(descending=True, stable=True)
    keep = norms[order] >= REPRESENTATIVE_RATIO * norms.max()
    return order[keep]


def _block_rows(X: Tensor) -> int:
    """Rows per block: a ``[B, b, K]`` slab of about ``CACHE_BYTES`` on CPU.

    An accelerator takes every row at once (one block, no extra launches).
    """
    if X.device.type != "cpu":
        return X.size(-2)
    row = X.size(0) * X.size(-1) * X.element_size()
    return max(1, min(X.size(-2), CACHE_BYTES // max(row, 1)))


def _admm(
    A: Tensor,
    lam: Tensor,
    weights: Tensor,
    rho: float,
    adaptive: bool,
    max_iter: int,
    tol: float,
    check_every: int,
    newton_steps: Optional[int],
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Run the ADMM on ``A [B, K, K]``; return the last ``W = Z + U``, thresholds,
    iterations, convergence flags and the last ρ of each problem.

    It works on the transposes (``X[j, i] = A[i, j]``), where the simplex
    projections run along contiguous rows. Everything but the norms of the
    Z-step's shrinkage is per column of ``Z``, so an iteration is one sweep over
    blocks of rows of ``Zᵀ``: for each block, the shrinkage, the projection (all
    its Newton steps while the block is in cache), the dual update and the next
    iteration's ``Vᵀ`` with its partial norms. With ``adaptive``, ρ is one value
    per problem, rebalanced at the convergence checks (the scaled dual ``U = μ/ρ``
    rescaled and ``V`` recomputed for the problems whose ρ changed).
    """
    batch, K = A.size(0), A.size(-1)
    W_out = torch.empty_like(A)
    theta_out = A.new_empty(batch, 1, K)
    iterations = torch.full((batch,), max_iter, dtype=torch.long, device=A.device)
    converged = torch.zeros(batch, dtype=torch.bool, device=A.device)
    rho_out = A.new_full((batch,), rho)
    A_act = A.transpose(-2, -1).contiguous()
    size = _block_rows(A_act)
    blocks = [slice(j, j + size) for j in range(0, K, size)]

    active = list(range(batch))
    shrink = (lam[:, None] * weights / rho).unsqueeze(-2)  # [B, 1, K]
    inv_rho = 1.0 / rho
    # Per-problem ρ (adaptive only): −1/ρ as a [B, 1, 1] factor of A in V's update.
    rho_act = A.new_full((batch,), rho)
    neg_inv_rho = (-1.0 / rho_act).view(-1, 1, 1)
    changes = torch.zeros(batch, dtype=torch.long)
    P = torch.full_like(A_act, 1.0 / K)
    U = torch.zeros_like(A_act)
    V = torch.sub(P, A_act, alpha=inv_rho)  # V = P − U − A/ρ
    sq_norms = V.square().sum(-2, keepdim=True)
    theta = A.new_empty(batch, K, 1)
    fresh = True

    for t in range(1, max_iter + 1):
        scale = (1 - shrink / sq_norms.sqrt_()).clamp_min_(0).nan_to_num_(0.0)
        sq_norms.zero_()
        check = t % check_every == 0 or t == max_iter
        if check:
            r_zp = A_act.new_zeros(len(active))
            r_pp, r_proj = torch.zeros_like(r_zp), torch.zeros_like(r_zp)
        for rows in blocks:
            Vb, Ub, Pb, Ab = V[:, rows], U[:, rows], P[:, rows], A_act[:, rows]
            Vb.mul_(scale)  # Z
            Ub.add_(Vb)  # W = Z + U
            # P-step: P = max(W − θ, 0), thresholds warm-started from the last
            # iteration; the first Newton step lands on a lower bound of the exact
            # ones, later steps only shrink the support.
            if fresh:
                theta[:, rows] = _newton_threshold(
                    Ub, Ub.amax(-1, keepdim=True) - 1, dim=-1
                )
            R = torch.sub(Ub, theta[:, rows])
            R.relu_()
            theta[:, rows] = _threshold_steps(
                Ub, R, theta[:, rows], newton_steps, dim=-1
            )
            Ub.sub_(R)  # the new dual U = W − P
            if check:
                r_zp += (Vb - R).abs_().sum((-2, -1))
                r_pp += (R - Pb).abs_().sum((-2, -1))
                r_proj += (R.sum(-1) - 1).abs_().sum(-1)
            # The new P goes into V's storage; P's takes the next iteration's V.
            Vb.copy_(R)
            if adaptive:
                torch.sub(R, Ub, out=R).addcmul_(Ab, neg_inv_rho)
            else:
                torch.sub(R, Ub, out=R).sub_(Ab, alpha=inv_rho)
            Pb.copy_(R)
            sq_norms += R.square().sum(-2, keepdim=True)
        fresh = False
        P, V = V, P
        if check:
            done = (r_zp <= tol * K * K) & (r_pp <= tol * K * K) & (r_proj <= tol * K)
            finished = done.tolist() if t < max_iter else [True] * len(active)
            if any(finished):
                keep = [i for i, f in enumerate(finished) if not f]
                stop = [i for i, f in enumerate(finished) if f]
                idx = torch.tensor([active[i] for i in stop], device=A.device)
                sel = torch.tensor(stop, device=A.device)
                W_out[idx] = (P[sel] + U[sel]).transpose(-2, -1)
                theta_out[idx] = theta[sel].transpose(-2, -1)
                iterations[idx] = t
                converged[idx] = done[sel]
                rho_out[idx] = rho_act[sel]
                if not keep:
                    break
                kept = torch.tensor(keep, device=A.device)
                active = [active[i] for i in keep]
                A_act, shrink, theta = A_act[kept], shrink[kept], theta[kept]
                P, U, V, sq_norms = P[kept], U[kept], V[kept], sq_norms[kept]
                rho_act, neg_inv_rho = rho_act[kept], neg_inv_rho[kept]
                changes = changes[kept.cpu()]
                r_zp, r_pp = r_zp[kept], r_pp[kept]
            if adaptive:
                fresh = _balance_rho(
                    A_act, P, U, V, sq_norms, shrink, rho_act, neg_inv_rho,
                    changes, r_zp, r_pp,
                )  # fmt: skip
    log.debug("ds3: %d problem(s), K=%d, iterations %s", batch, K, iterations.tolist())
    return W_out, theta_out, iterations, converged, rho_out


def _balance_rho(
    A_act: Tensor,
    P: Tensor,
    U: Tensor,
    V: Tensor,
    sq_norms: Tensor,
    shrink: Tensor,
    rho: Tensor,
    neg_inv_rho: Tensor,
    changes: Tensor,
    r_primal: Tensor,
    r_change: Tensor,
) -> bool:
    """Residual balancing (Boyd et al. 2011, §3.4.1), in place; True if ρ changed.

    Primal residual ``Σ|Z − P|``, dual residual ``ρ Σ|P_t − P_{t−1}|`` (both L1, as
    in the stopping test). Where ρ changes by a factor ``f``, the scaled dual
    ``U = μ/ρ`` is divided by ``f``, and the shrinkage and the next ``V`` are
    recomputed.
    """
    dual = rho * r_change
    up = r_primal > RESIDUAL_RATIO * dual
    down = dual > RESIDUAL_RATIO * r_primal
    allowed = (changes < MAX_RHO_CHANGES).to(rho.device)
    factor = torch.where(up & allowed, RHO_FACTOR, 1.0)
    factor = torch.where(down & allowed, 1.0 / RHO_FACTOR, factor).to(rho.dtype)
    moved = (factor != 1).nonzero().view(-1)
    if moved.numel() == 0:
        return False
    changes[moved.cpu()] += 1
    f = factor[moved]
    shrink[moved] = shrink[moved] / f.view(-1, 1, 1)
    rho[moved] = rho[moved] * f
    neg_inv_rho[moved] = (-1.0 / rho[moved]).view(-1, 1, 1)
    U_m = U[moved].div_(f.view(-1, 1, 1))
    U[moved] = U_m
    V_m = (P[moved] - U_m).addcmul_(A_act[moved], neg_inv_rho[moved])
    V[moved] = V_m
    sq_norms[moved] = V_m.square().sum(-2, keepdim=True)
    return True
