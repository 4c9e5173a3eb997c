"""Training objectives of ALMEA.

The base alignment objective (Section 2, inherited from MCLEA): bidirectional
in-batch InfoNCE (:func:`info_nce`), the inter-modal alignment term
(:func:`inter_modal_alignment`) and learned uncertainty weighting of the per-modality
losses (:class:`UncertaintyWeighting`). The ALMEA terms: ``L_SCL`` (Eq. 2,
:func:`semantic_calibration_loss`), ``L_DML`` (Eq. 9, :func:`kl_standard_normal`),
``L_URL`` (Eq. 10, :func:`reconstruction_loss`) and ``L_JAL`` (Eq. 11,
:func:`joint_alignment_loss`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _check_same_shape(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def _normalised_pair(
    x_src: Tensor, x_tgt: Tensor, temperature: float
) -> tuple[Tensor, Tensor]:
    """Row-normalised copies of both sides, after checking shapes and temperature."""
    _check_same_shape(x_src, x_tgt, "x_src", "x_tgt")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    return F.normalize(x_src, dim=-1), F.normalize(x_tgt, dim=-1)


class _InBatchSoftmaxLoss(torch.autograd.Function):
    """Row and column softmax cross-entropy of the in-batch logits ``a @ b.T * s``.

    The target of row ``i`` (and of column ``i``) is the one-hot diagonal, or the
    softmax of a teacher's logits ``ta @ tb.T * ts``. The loss is the mean of the
    row and the column terms, each averaged over the batch. The gradient with
    respect to the logits, ``(softmax_rows + softmax_cols - targets) / 2B``, is
    formed in the forward pass and is the only ``(B, B)`` matrix kept for backward:
    autograd would keep about five of them per call (logits, scaled logits and the
    log-softmaxes), which dominated the training step's peak memory.
    """

    @staticmethod
    def forward(
        ctx: Any,
        a: Tensor,
        b: Tensor,
        scale: float,
        teacher_a: Tensor | None,
        teacher_b: Tensor | None,
        teacher_scale: float,
    ) -> Tensor:
        batch = a.size(0)
        logits = (a @ b.t()).mul_(scale)
        log_rows = logits.log_softmax(dim=1)
        log_cols = logits.log_softmax(dim=0)
        del logits
        if teacher_a is None:
            loss = -0.5 * (log_rows.diagonal().mean() + log_cols.diagonal().mean())
            grad = log_rows.exp_().add_(log_cols.exp_())
            grad.diagonal().sub_(2.0)
        else:
            teacher = (teacher_a @ teacher_b.t()).mul_(teacher_scale)
            loss = 0.0
            grad = torch.zeros_like(log_rows)
            for log_student, dim in ((log_rows, 1), (log_cols, 0)):
                log_target = teacher.log_softmax(dim=dim)
                target = log_target.exp()
                loss = loss + (target * (log_target - log_student)).sum() / batch
                grad.add_(log_student.exp_()).sub_(target)
            loss = 0.5 * loss
        grad.mul_(0.5 / batch)
        ctx.save_for_backward(a, b, grad)
        ctx.scale = scale
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_loss: Tensor) -> tuple[Tensor | None, ...]:
        return (*_logit_backward(ctx, grad_loss), None, None, None, None)


class _RowSoftmaxLoss(torch.autograd.Function):
    """Summed softmax cross-entropy of the logit rows ``q @ k.T * s``: the target
    of row ``i`` is the one-hot ``positives[i]``, or the softmax of a teacher's
    rows ``tq @ tk.T * ts``.

    The row half of :class:`_InBatchSoftmaxLoss` for some rows of a batch (its
    columns are the rows of ``b @ a.T``). As there, the gradient with respect to
    the ``(n, B)`` logits is the only matrix kept for backward.
    """

    @staticmethod
    def forward(
        ctx: Any,
        q: Tensor,
        k: Tensor,
        positives: Tensor,
        scale: float,
        teacher_q: Tensor | None,
        teacher_k: Tensor | None,
        teacher_scale: float,
    ) -> Tensor:
        log_student = (q @ k.t()).mul_(scale).log_softmax(dim=1)
        if teacher_q is None:
            rows = torch.arange(q.size(0), device=q.device)
            loss = -log_student[rows, positives].sum()
            grad = log_student.exp_()
            grad[rows, positives] -= 1.0
        else:
            teacher = (teacher_q @ teacher_k.t()).mul_(teacher_scale)
            log_target = teacher.log_softmax(dim=1)
            target = log_target.exp()
            loss = (target * (log_target - log_student)).sum()
            grad = log_student.exp_().sub_(target)
        ctx.save_for_backward(q, k, grad)
        ctx.scale = scale
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_loss: Tensor) -> tuple[Tensor | None, ...]:
        return (*_logit_backward(ctx, grad_loss), None, None, None, None, None)


def _logit_backward(ctx: Any, grad_loss: Tensor) -> tuple[Tensor | None, ...]:
    """Gradients of ``a`` and ``b`` from the saved gradient with respect to the
    logits ``a @ b.T * scale`` (the backward both softmax losses share)."""
    a, b, grad = ctx.saved_tensors
    grad = grad * (grad_loss * ctx.scale)
    grad_a = grad @ b if ctx.needs_input_grad[0] else None
    grad_b = grad.t() @ a if ctx.needs_input_grad[1] else None
    return grad_a, grad_b


def _in_batch_loss(
    a: Tensor,
    b: Tensor,
    scale: float,
    teacher_a: Tensor | None,
    teacher_b: Tensor | None,
    teacher_scale: float,
    rows: Tensor | None,
) -> Tensor:
    """The in-batch loss of ``a @ b.T``, or the share of it that the rows and
    columns ``rows`` contribute (divided by the whole batch size, as the loss is):
    the shares of a partition of ``range(B)`` sum to the loss, and so do their
    gradients, while every row still meets all ``B`` candidates."""
    if rows is None:
        return _InBatchSoftmaxLoss.apply(
            a, b, scale, teacher_a, teacher_b, teacher_scale
        )
    rows = rows.to(a.device)
    halves = [
        _RowSoftmaxLoss.apply(
            q[rows], k, rows, scale, None if tq is None else tq[rows], tk, teacher_scale
        )
        for q, k, tq, tk in ((a, b, teacher_a, teacher_b), (b, a, teacher_b, teacher_a))
    ]
    return (halves[0] + halves[1]) * (0.5 / a.size(0))


def info_nce(
    x_src: Tensor,
    x_tgt: Tensor,
    *,
    temperature: float = 0.1,
    rows: Tensor | None = None,
) -> Tensor:
    """Bidirectional in-batch InfoNCE for aligned rows (the base alignment loss).

    Row ``i`` of ``x_src`` and row ``i`` of ``x_tgt`` are a seed pair; every other
    row of the other side is a negative. Rows are L2-normalised, the logits are
    ``x_src @ x_tgt.T / temperature``, and the loss is the mean of the
    cross-entropies with the diagonal as target over the rows (source to target) and
    over the columns (target to source), so it is symmetric in its two arguments.
    Only one ``(B, B)`` matrix is kept for backward.

    Args:
        x_src: Source embeddings of the seed pairs.
        x_tgt: Target embeddings, row-aligned with ``x_src``.
        temperature: Softmax temperature (default ``0.1``, as in the paper).
        rows: Only the terms of these pairs (their rows and columns), as their
            share of the batch's loss: the shares of a partition of ``range(B)``
            sum to the loss and its gradients, which is how a batch is split
            over processes without losing negatives (default: all pairs).

    Shapes:
        x_src, x_tgt: ``(B, d)`` -> scalar
    """
    a, b = _normalised_pair(x_src, x_tgt, temperature)
    return _in_batch_loss(a, b, 1.0 / temperature, None, None, 1.0, rows)


def inter_modal_alignment(
    joint_src: Tensor,
    joint_tgt: Tensor,
    modal_src: Tensor,
    modal_tgt: Tensor,
    *,
    temperature: float = 4.0,
    rows: Tensor | None = None,
) -> Tensor:
    """Inter-modal alignment: distil the joint in-batch distribution into a modality.

    MCLEA's inter-modal term. The joint embedding is the (detached) teacher: its
    in-batch similarity distribution ``softmax(cos(joint_src, joint_tgt) / T)`` per
    row is matched by the modality's ``softmax(cos(modal_src, modal_tgt) / T)`` with
    ``KL(joint || modal)`` averaged over rows. Both directions are used (rows and,
    with the similarity matrices transposed, columns) and averaged. All four inputs
    are L2-normalised. Gradients flow only into ``modal_src`` and ``modal_tgt``.
    Only one ``(B, B)`` matrix is kept for backward.

    Args:
        joint_src: Joint (fused) source embeddings of the seed pairs (teacher).
        joint_tgt: Joint target embeddings, row-aligned with ``joint_src``.
        modal_src: One modality's source embeddings of the same pairs.
        modal_tgt: That modality's target embeddings.
        temperature: Softmax temperature (default ``4.0``).
        rows: Only the terms of these pairs, as in :func:`info_nce`.

    Shapes:
        joint_src, joint_tgt: ``(B, d)``; modal_src, modal_tgt: ``(B, d_m)`` -> scalar
    """
    if joint_src.size(0) != modal_src.size(0):
        raise ValueError(
            "joint and modality embeddings must have the same batch size, got "
            f"{joint_src.size(0)} and {modal_src.size(0)}"
        )
    with torch.no_grad():
        teacher_a, teacher_b = _normalised_pair(joint_src, joint_tgt, temperature)
    a, b = _normalised_pair(modal_src, modal_tgt, temperature)
    scale = 1.0 / temperature
    return _in_batch_loss(a, b, scale, teacher_a, teacher_b, scale, rows)


class UncertaintyWeighting(nn.Module):
    """Learned uncertainty weighting of several losses (Kendall et al., 2018).

    MCLEA's automatic loss weighting. Each loss ``L_i`` gets a learned log-variance
    ``s_i`` and the total is ``sum_i exp(-s_i) * L_i + s_i``: a noisy loss can lower
    its weight ``exp(-s_i)`` only by paying ``s_i``. The log-variance form is used
    (rather than MCLEA's ``0.5 / p^2`` form) so that the initial ``s_i = 0`` gives
    every loss weight exactly 1.

    Args:
        num_losses: Number of losses combined.

    ``forward(losses, share=1.0)``: ``share`` scales the ``s_i`` term, for losses
    that are a share of a batch's (see :func:`info_nce`'s ``rows``), so that the
    totals of the shares sum to the batch's total.

    Shapes:
        losses: ``(num_losses,)`` (or a sequence of scalars) -> scalar
    """

    def __init__(self, num_losses: int) -> None:
        super().__init__()
        if num_losses < 1:
            raise ValueError(f"num_losses must be positive, got {num_losses}")
        self.num_losses = num_losses
        self.log_vars = nn.Parameter(torch.empty(num_losses))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Reset every log-variance to 0 (weight 1)."""
        nn.init.zeros_(self.log_vars)

    @property
    def weights(self) -> Tensor:
        """The current weights ``exp(-s_i)`` (detached)."""
        return torch.exp(-self.log_vars.detach())

    def forward(
        self, losses: Tensor | Sequence[Tensor], *, share: float = 1.0
    ) -> Tensor:
        if not isinstance(losses, Tensor):
            losses = torch.stack([torch.as_tensor(loss) for loss in losses])
        if losses.shape != (self.num_losses,):
            raise ValueError(
                f"expected {self.num_losses} losses, got shape {tuple(losses.shape)}"
            )
        return (torch.exp(-self.log_vars) * losses + share * self.log_vars).sum()

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.num_losses})"


def kl_standard_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """``L_DML`` (Eq. 9): KL divergence of ``N(mu, exp(logvar))`` from ``N(0, I)``.

    ``0.5 * sum_j (sigma_j^2 + mu_j^2 - log sigma_j^2 - 1)``, summed over the latent
    dimensions and averaged over the batch. It is zero for ``mu = 0, logvar = 0``.

    Args:
        mu: Means of the diagonal Gaussian posterior.
        logvar: Log-variances ``log sigma^2``, same shape as ``mu``.

    Shapes:
        mu, logvar: ``(B, d)`` -> scalar
    """
    _check_same_shape(mu, logvar, "mu", "logvar")
    kl = 0.5 * (logvar.exp() + mu.pow(2) - logvar - 1)
    return kl.sum(dim=-1).mean()


def reconstruction_loss(
    reconstruction: Tensor,
    target: Tensor,
    mask: Tensor | None = None,
    *,
    reduction: str = "mean",
) -> Tensor:
    """``L_URL`` (Eq. 10): mean squared error to the detached modality embedding.

    The target ``h^m`` is detached so that the decoder learns to reproduce the
    encoder's embedding without pulling the encoder towards the reconstruction.
    Rows outside ``mask`` (entities without the modality) are left out by
    weighting, not indexing, so no device sync is needed on GPU.

    Args:
        reconstruction: Decoded embeddings ``Decoder_m(z~^m)``.
        target: The modality embeddings ``h^m``.
        mask: Optional boolean mask of the rows to score (default: all rows).
        reduction: ``"mean"`` averages the per-row squared error over the scored
            rows (``nan`` if there are none), ``"sum"`` sums it, so that sums over
            chunks can be divided by the total row count afterwards.

    Shapes:
        reconstruction, target: ``(B, d)``, mask: ``(B,)`` -> scalar
    """
    _check_same_shape(reconstruction, target, "reconstruction", "target")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    per_row = (reconstruction - target.detach()).pow(2).mean(dim=-1)
    if mask is not None:
        per_row = per_row * mask
    total = per_row.sum()
    if reduction == "sum":
        return total
    return total / (per_row.numel() if mask is None else mask.sum())


def semantic_calibration_loss(z_a: Tensor, z_b: Tensor, *, eps: float = 1e-8) -> Tensor:
    """``L_SCL`` (Eq. 2): symmetric KL between ReLU-L1-normalised latents.

    Each row becomes a distribution over the latent dimensions,
    ``p(x) = (ReLU(x) + eps) / ||ReLU(x) + eps||_1`` (the ``eps`` keeps an all-zero
    row finite: it becomes the uniform distribution), and the loss is
    ``KL(p_a || p_b) + KL(p_b || p_a)`` summed over dimensions and averaged over the
    batch. It is symmetric in its arguments and zero for identical inputs.

    Args:
        z_a: Fused latents of one side (e.g. the masked source ``z~_S``).
        z_b: Fused latents of the other side (e.g. the unmasked target ``z_T``).
        eps: Added to every entry before normalising.

    Shapes:
        z_a, z_b: ``(B, d)`` -> scalar
    """
    _check_same_shape(z_a, z_b, "z_a", "z_b")

    def log_prob(z: Tensor) -> Tensor:
        p = F.relu(z) + eps
        return p.log() - p.sum(dim=-1, keepdim=True).log()

    log_a, log_b = log_prob(z_a), log_prob(z_b)
    # KL(a||b) + KL(b||a) = sum_x (p_a - p_b) (log p_a - log p_b)
    return ((log_a.exp() - log_b.exp()) * (log_a - log_b)).sum(dim=-1).mean()


def joint_alignment_loss(x_src: Tensor, x_tgt: Tensor) -> Tensor:
    """``L_JAL`` (Eq. 11): mean squared error between the two sides of seed pairs.

    Applied to the fused decoded (reconstructed) joint embeddings ``h^_S``, ``h^_T``;
    gradients flow into both sides.

    Args:
        x_src: Source embeddings of the seed pairs.
        x_tgt: Target embeddings, row-aligned with ``x_src``.

    Shapes:
        x_src, x_tgt: ``(B, d)`` -> scalar
    """
    _check_same_shape(x_src, x_tgt, "x_src", "x_tgt")
    return F.mse_loss(x_src, x_tgt)
