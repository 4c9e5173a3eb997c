"""Ridge-regression imputation of missing modality embeddings."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: The relative ridge penalties :class:`LinearImputer` chooses from.
RIDGES: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


class LinearImputer(nn.Module):
    r"""Imputes a missing modality embedding :math:`h^m` by a ridge regression on
    the entity's other modalities, fitted in closed form, where it generalises.

    The input of an entity for modality :math:`m` is
    :math:`x = [p_k \, \mathrm{normalize}(h^k)]_{k \ne m} \,\Vert\,
    [p_k]_{k \ne m} \,\Vert\, 1` (:math:`p_k`: whether the entity has :math:`k`),
    and :math:`W_m` minimises

    .. math::
        \lVert X W_m - H^m \rVert^2 + \rho \, \frac{\mathrm{tr}(X^\top X)}{P}
        \lVert W_m \rVert^2

    over the entities that have :math:`m` (:math:`P` the input size). One
    entity in ``holdout`` is held out: :math:`\rho` is the one of ``ridges``
    with the best held-out :math:`R^2` (:attr:`r2`), and the map is refitted on
    all entities with it. A modality whose held-out :math:`R^2` is below
    ``min_r2`` is not imputed: its rows stay missing, since a map no better
    than one mean row for everyone makes the entities it fills alike (the
    mean-fill result in docs/results.md).

    It is fitted on a trained model's embeddings of both KGs (no labels), so it
    has nothing to train and cannot collapse the way LSL's decoders do: the
    learned baseline LSL has to beat. The fitted state is not part of the
    ``state_dict``: refit after loading (:meth:`fit`, deterministic).

    Args:
        modalities (Sequence[str]): Modality names, in the fusion's order.
        dim (int): Embedding size :math:`d`.
        ridges (Sequence[float]): Relative ridge penalties :math:`\rho` to choose
            from. (default: :data:`RIDGES`)
        holdout (int): Every ``holdout``-th entity is held out. (default: ``10``)
        min_r2 (float): The held-out :math:`R^2` a modality needs to be imputed.
            (default: ``0.1``)

    Shapes:
        - **input:** ``{m: (N, d)}`` embeddings, ``{m: (N,)}`` presence masks
        - **output:** ``({m: (N, d)}, {m: (N,)})``: missing rows of the imputed
          modalities replaced and marked present
    """

    def __init__(
        self,
        modalities: Sequence[str],
        dim: int,
        *,
        ridges: Sequence[float] = RIDGES,
        holdout: int = 10,
        min_r2: float = 0.1,
    ) -> None:
        super().__init__()
        if not ridges or min(ridges) <= 0:
            raise ValueError(f"ridges must be positive, got {list(ridges)}")
        if holdout < 2:
            raise ValueError(f"holdout must be at least 2, got {holdout}")
        self.modalities = list(modalities)
        self.dim = dim
        self.ridges = list(ridges)
        self.holdout = holdout
        self.min_r2 = min_r2
        num = len(self.modalities)
        size = num * (dim + 1) + 1
        self.register_buffer("weight", torch.zeros(num, size, dim), persistent=False)
        #: Held-out :math:`R^2` per modality at the chosen ridge (NaN: no rows).
        self.register_buffer("r2", torch.full((num,), float("nan")), persistent=False)
        #: The chosen relative ridge penalty per modality.
        self.register_buffer("ridge", torch.zeros(num), persistent=False)
        #: Which modalities are imputed.
        self.register_buffer(
            "active", torch.zeros(num, dtype=torch.bool), persistent=False
        )
        self.is_fitted = False

    def reset_parameters(self) -> None:
        self.weight.zero_()
        self.r2.fill_(float("nan"))
        self.ridge.zero_()
        self.active.zero_()
        self.is_fitted = False

    def design(
        self, h: dict[str, Tensor], present: dict[str, Tensor], target: str
    ) -> Tensor:
        """The regression inputs :math:`x` of every row for ``target``: its block
        and indicator are zero, so one layout serves every modality.

        Shapes:
            ``{m: (N, d)}``, ``{m: (N,)}`` -> :math:`(N, M (d + 1) + 1)`
        """
        first = h[self.modalities[0]]
        blocks, flags = [], []
        for m in self.modalities:
            keep = present[m] if m != target else torch.zeros_like(present[m])
            keep = keep.unsqueeze(-1).to(first.dtype)
            blocks.append(F.normalize(h[m], dim=-1) * keep)
            flags.append(keep)
        return torch.cat([*blocks, *flags, first.new_ones(first.size(0), 1)], dim=-1)

    @torch.no_grad()
    def fit(
        self, batches: Iterable[tuple[dict[str, Tensor], dict[str, Tensor]]]
    ) -> LinearImputer:
        """Fit every modality's map on ``(h, present)`` batches of entities, in
        one pass (normal equations summed in float64), choosing its ridge on the
        held-out entities."""
        num, size = self.weight.shape[:2]
        device = self.weight.device
        kwargs = {"dtype": torch.float64, "device": device}
        # [fit, held out] x modality: X^T X, X^T Y, sum of Y, sum of |Y|^2, rows
        gram = torch.zeros(2, num, size, size, **kwargs)
        cross = torch.zeros(2, num, size, self.dim, **kwargs)
        total = torch.zeros(2, num, self.dim, **kwargs)
        square = torch.zeros(2, num, **kwargs)
        count = torch.zeros(2, num, **kwargs)
        seen = 0
        for h, present in batches:
            rows = next(iter(present.values())).numel()
            held = (torch.arange(seen, seen + rows, device=device) % self.holdout) == 0
            seen += rows
            for i, m in enumerate(self.modalities):
                x = self.design(h, present, m).double()
                y = h[m].double()
                for part, mask in enumerate((present[m] & ~held, present[m] & held)):
                    xp, yp = x[mask], y[mask]
                    gram[part, i] += xp.T @ xp
                    cross[part, i] += xp.T @ yp
                    total[part, i] += yp.sum(dim=0)
                    square[part, i] += yp.pow(2).sum()
                    count[part, i] += xp.size(0)
        eye = torch.eye(size, **kwargs)
        scale = gram[0].diagonal(dim1=-2, dim2=-1).sum(-1).clamp_min(1e-12) / size
        scores = []
        for ridge in self.ridges:
            w = torch.linalg.solve(
                gram[0] + (ridge * scale).view(-1, 1, 1) * eye, cross[0]
            )
            sse = (
                (w * (gram[1] @ w)).sum(dim=(-2, -1))
                - 2 * (w * cross[1]).sum(dim=(-2, -1))
                + square[1]
            )
            spread = square[1] - total[1].pow(2).sum(-1) / count[1].clamp_min(1)
            scores.append(1 - sse / spread)
        scores = torch.stack(scores).nan_to_num(nan=float("-inf"))
        best = scores.argmax(dim=0)
        ridge = torch.tensor(self.ridges, **kwargs)[best]
        both = gram.sum(0)
        scale = both.diagonal(dim1=-2, dim2=-1).sum(-1).clamp_min(1e-12) / size
        w = torch.linalg.solve(
            both + (ridge * scale).view(-1, 1, 1) * eye, cross.sum(0)
        )
        r2 = scores.gather(0, best.view(1, -1)).squeeze(0)
        r2 = torch.where((count[1] > 1) & r2.isfinite(), r2, float("nan"))
        self.r2.copy_(r2)
        self.ridge.copy_(ridge)
        self.active.copy_(r2 >= self.min_r2)
        self.weight.copy_(w.to(self.weight.dtype))
        self.is_fitted = True
        return self

    def forward(
        self, h: dict[str, Tensor], present: dict[str, Tensor]
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        if not self.is_fitted:
            raise RuntimeError("LinearImputer is not fitted: call fit() first")
        out, mask = dict(h), dict(present)
        for i, m in enumerate(self.modalities):
            rows = (~present[m]).nonzero().flatten()
            if rows.numel() == 0 or not bool(self.active[i]):
                continue
            sub = {k: v[rows] for k, v in h.items()}
            sub_present = {k: v[rows] for k, v in present.items()}
            value = self.design(sub, sub_present, m) @ self.weight[i]
            out[m] = h[m].index_put((rows,), value)
            mask[m] = torch.ones_like(present[m])
        return out, mask

    def summary(self) -> dict[str, dict[str, float | bool | None]]:
        """Per modality, the fit a result states: held-out :math:`R^2`
        (``None``: no rows), the chosen ridge, and whether it is imputed."""
        return {
            m: {
                "heldout_r2": None if r2 != r2 else r2,
                "ridge": ridge,
                "imputes": active,
            }
            for m, r2, ridge, active in zip(
                self.modalities,
                self.r2.tolist(),
                self.ridge.tolist(),
                self.active.tolist(),
            )
        }

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({len(self.modalities)} modalities, "
            f"dim={self.dim}, min_r2={self.min_r2})"
        )
