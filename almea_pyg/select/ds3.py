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
from typing import Optional, Union

import torch
from torch import Tensor

log = logging.getLogger(__name__)

#: Rows whose norm reaches this fraction of the largest row norm are representatives.
REPRESENTATIVE_RATIO = 0.1
#: Cap on threshold steps per projection (Michelot's method is finite; this bounds
#: the floating-point corner case of an entry flickering at the threshold).
MAX_NEWTON_STEPS = 50
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
    """

    Z: Tensor
    representatives: Union[Tensor, list[Tensor]]
    objective: Tensor
    num_iterations: Tensor
    converged: Tensor
    lam: Tensor


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


def _batch_lambda(A: Tensor, alpha: float, lam, batch: int) -> Tensor:
    K = A.size(-1)
    if lam is None:
        # App. B.3: λ = α ‖A‖_F / √K, one λ per problem.
        return alpha * torch.linalg.matrix_norm(A.view(batch, K, K)) / math.sqrt(K)
    lam = torch.as_tensor(lam, dtype=A.dtype, device=A.device).reshape(-1)
    if lam.numel() not in (1, batch) or not bool(torch.isfinite(lam).all()):
        raise ValueError(f"ds3: lam must be a finite scalar or have {batch} entries")
    if bool((lam < 0).any()):
        raise ValueError("ds3: lam must be non-negative")
    return lam.expand(batch).clone()


def ds3(
    A: Tensor,
    *,
    alpha: float = 0.35,
    lam: Union[float, Tensor, None] = None,
    row_weights: Optional[Tensor] = None,
    rho: float = 0.1,
    max_iter: int = 1000,
    tol: float = 1e-7,
    check_every: int = 10,
    newton_steps: Optional[int] = None,
) -> DS3Result:
    r"""Select representatives of a dissimilarity matrix with DS3 (Eq. 8).

    Args:
        A: Dissimilarities, ``A[i, j]`` the cost of ``i`` representing ``j``.
        alpha: Sparsification factor: ``λ = α ‖A‖_F / √K`` (App. B.3). Larger values
            give fewer representatives. (default: ``0.35``)
        lam: λ itself (scalar or one per problem); overrides ``alpha``.
        row_weights: Row penalty weights ``D`` (the diversity scores, Eq. 7), shape
            ``(K,)`` or ``(B, K)``; ones when omitted.
        rho: ADMM penalty ρ. (default: ``0.1``)
        max_iter: Iteration limit ``T_iter``. (default: ``1000``)
        tol: ``ε`` of the stopping tests ``mean|Z − P| ≤ ε``,
            ``mean|P_t − P_{t−1}| ≤ ε`` and ``mean|1ᵀP − 1| ≤ ε``. (default: ``1e-7``)
        check_every: Evaluate the stopping tests every this many iterations (the
            only host-device synchronisation inside the loop). (default: ``10``)
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
    A, weights = _check_input(A, row_weights)
    single = A.dim() == 2
    batch, K = (1 if single else A.size(0)), A.size(-1)
    dtype = A.dtype
    # Half precision lacks the range for the ADMM's sums; solve in float32.
    work = A if dtype in (torch.float32, torch.float64) else A.float()
    work = work.reshape(batch, K, K).contiguous()
    weights = weights.to(work.dtype)
    lam_t = _batch_lambda(work, alpha, lam, batch)

    if K == 0:
        W, theta = work.clone(), None
        iterations = torch.zeros(batch, dtype=torch.long, device=A.device)
        converged = torch.ones(batch, dtype=torch.bool, device=A.device)
    else:
        W, theta, iterations, converged = _admm(
            work, lam_t, weights, rho, max_iter, tol, check_every, newton_steps
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
        )
    return DS3Result(Z, representatives, objective, iterations, converged, lam_t)


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
    max_iter: int,
    tol: float,
    check_every: int,
    newton_steps: Optional[int],
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Run the ADMM on ``A [B, K, K]``; return the last ``W = Z + U`` and thresholds.

    It works on the transposes (``X[j, i] = A[i, j]``), where the simplex
    projections run along contiguous rows. Everything but the norms of the
    Z-step's shrinkage is per column of ``Z``, so an iteration is one sweep over
    blocks of rows of ``Zᵀ``: for each block, the shrinkage, the projection (all
    its Newton steps while the block is in cache), the dual update and the next
    iteration's ``Vᵀ`` with its partial norms.
    """
    batch, K = A.size(0), A.size(-1)
    W_out = torch.empty_like(A)
    theta_out = A.new_empty(batch, 1, K)
    iterations = torch.full((batch,), max_iter, dtype=torch.long, device=A.device)
    converged = torch.zeros(batch, dtype=torch.bool, device=A.device)
    A_act = A.transpose(-2, -1).contiguous()
    size = _block_rows(A_act)
    blocks = [slice(j, j + size) for j in range(0, K, size)]

    active = list(range(batch))
    shrink = (lam[:, None] * weights / rho).unsqueeze(-2)  # [B, 1, K]
    inv_rho = 1.0 / rho
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
                if not keep:
                    break
                kept = torch.tensor(keep, device=A.device)
                active = [active[i] for i in keep]
                A_act, shrink, theta = A_act[kept], shrink[kept], theta[kept]
                P, U, V, sq_norms = P[kept], U[kept], V[kept], sq_norms[kept]
    log.debug("ds3: %d problem(s), K=%d, iterations %s", batch, K, iterations.tolist())
    return W_out, theta_out, iterations, converged
