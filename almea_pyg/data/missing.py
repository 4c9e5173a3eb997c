"""Missing modalities: remove one on purpose, or fill it without learning.

:class:`DropModality` takes a modality away from a random share of the entities
(a controlled benchmark of imputation: the features removed are known).
:class:`FillMissing` fills the rows an entity lacks with a non-learned estimate,
the baselines a learned imputer (LSL) has to beat: the KG's mean row, or feature
propagation over the relation graph (each missing row repeatedly replaced by the
mean of its neighbours' rows while the observed rows stay fixed, as in Rossi et
al., 2022). Filled rows count as present: the model reads them like observed ones.

Both work on one KG (:class:`~torch_geometric.data.HeteroData`) and on an
:class:`~almea_pyg.data.MMKGPair` (each side on its own); the input is not
modified.
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.transforms import BaseTransform
from torch_geometric.utils import scatter, to_undirected

from almea_pyg.data.pair import (
    FEATURE_PREFIX,
    MASK_SUFFIX,
    MMKGPair,
    feature_modalities,
    modality_mask,
)
from almea_pyg.typing import ENTITY, RELATION_EDGE

FillMethod = Literal["zero", "mean", "propagate"]
FILL_METHODS: tuple[str, ...] = ("zero", "mean", "propagate")


def _check_modality(kg: HeteroData, name: str) -> None:
    if f"{FEATURE_PREFIX}{name}" not in kg[ENTITY]:
        raise ValueError(
            f"the KG has no modality {name!r} (it has {feature_modalities(kg)})"
        )


class DropModality(BaseTransform):
    """Remove modality ``name`` from ``fraction`` of the entities, at random.

    The entities are drawn uniformly among all entities of each KG (one that
    already lacked the modality may be drawn again: it stays without), their rows
    are zeroed and their mask set to ``False``. The draw depends on ``seed`` and
    the side only, so a source KG loses the same entities whatever else changes.

    Args:
        name (str): The modality, e.g. ``"attr"``.
        fraction (float): Share of each KG's entities that lose it, in ``[0, 1]``.
        seed (int, optional): Seed of the draw. (default: :obj:`0`)
    """

    def __init__(self, name: str, fraction: float, *, seed: int = 0) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be in [0, 1], got {fraction}")
        self.name, self.fraction, self.seed = name, fraction, seed

    def dropped(self, num_entities: int, side: int = 0) -> Tensor:
        """The entities that lose the modality on ``side`` (0: source), sorted."""
        generator = torch.Generator().manual_seed(self.seed * 2 + side)
        count = round(self.fraction * num_entities)
        return torch.randperm(num_entities, generator=generator)[:count].sort().values

    def forward(self, data: HeteroData | MMKGPair) -> HeteroData | MMKGPair:
        if isinstance(data, MMKGPair):
            return data.with_kgs(self._drop(data.source, 0), self._drop(data.target, 1))
        return self._drop(data, 0)

    def _drop(self, kg: HeteroData, side: int) -> HeteroData:
        _check_modality(kg, self.name)
        key = f"{FEATURE_PREFIX}{self.name}"
        out = copy.copy(kg)  # its stores are copies: assigning leaves kg intact
        store = out[ENTITY]
        index = self.dropped(store.num_nodes, side).to(store[key].device)
        x = store[key].clone()
        x[index] = 0
        mask = modality_mask(kg, self.name).clone()
        mask[index] = False
        store[key], store[key + MASK_SUFFIX] = x, mask
        return out

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.name!r}, fraction={self.fraction}, "
            f"seed={self.seed})"
        )


def propagate_features(
    x: Tensor, present: Tensor, edge_index: Tensor, *, num_iterations: int = 20
) -> Tensor:
    """Fill the rows of ``x`` not ``present`` by feature propagation.

    Missing rows start at the mean observed row; each iteration sets every missing
    row to the mean of its neighbours' rows (undirected ``edge_index``), observed
    rows fixed. Rows no path links to an observed one keep the mean.

    Shapes:
        x: ``(N, F)``, present: ``(N,)`` bool, edge_index: ``(2, E)`` -> ``(N, F)``
    """
    x = x.float()
    if present.all() or not present.any():
        return x
    out = x.clone()
    out[~present] = x[present].mean(dim=0)
    missing = ~present
    row, col = to_undirected(edge_index, num_nodes=x.size(0))
    degree = scatter(torch.ones_like(row, dtype=x.dtype), row, 0, x.size(0), "sum")
    has_neighbours = missing & (degree > 0)
    for _ in range(num_iterations):
        mean = (
            scatter(out[col], row, 0, x.size(0), "sum") / degree.clamp(min=1)[:, None]
        )
        out[has_neighbours] = mean[has_neighbours]
    return out


class FillMissing(BaseTransform):
    """Fill the rows entities lack with a non-learned estimate; mark them present.

    Args:
        method (str): ``"mean"`` (the KG's mean observed row), ``"propagate"``
            (:func:`propagate_features` over the KG's relation graph) or
            ``"zero"`` (leave the zero rows and masks as they are: the paper's
            default, a no-op).
        modalities (list[str], optional): The modalities to fill. (default: all
            feature modalities of the KG)
        num_iterations (int, optional): Propagation steps. (default: :obj:`20`)
    """

    def __init__(
        self,
        method: FillMethod = "mean",
        *,
        modalities: list[str] | None = None,
        num_iterations: int = 20,
    ) -> None:
        if method not in FILL_METHODS:
            raise ValueError(f"method must be one of {FILL_METHODS}, got {method!r}")
        self.method, self.modalities = method, modalities
        self.num_iterations = num_iterations

    def forward(self, data: HeteroData | MMKGPair) -> HeteroData | MMKGPair:
        if self.method == "zero":
            return data
        if isinstance(data, MMKGPair):
            return data.with_kgs(self._fill(data.source), self._fill(data.target))
        return self._fill(data)

    def _fill(self, kg: HeteroData) -> HeteroData:
        names = feature_modalities(kg) if self.modalities is None else self.modalities
        out = copy.copy(kg)  # its stores are copies: assigning leaves kg intact
        store = out[ENTITY]
        for name in names:
            _check_modality(kg, name)
            key = f"{FEATURE_PREFIX}{name}"
            present = modality_mask(kg, name)
            if present.all() or not present.any():
                continue
            x = store[key].float()
            if self.method == "mean":
                filled = x.clone()
                filled[~present] = x[present].mean(dim=0)
            else:
                edge_index = (
                    kg[RELATION_EDGE].edge_index
                    if RELATION_EDGE in kg.edge_types
                    else torch.empty(2, 0, dtype=torch.long, device=x.device)
                )
                filled = propagate_features(
                    x, present, edge_index, num_iterations=self.num_iterations
                )
            store[key] = filled
            store[key + MASK_SUFFIX] = torch.ones_like(present)
        return out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.method!r})"
