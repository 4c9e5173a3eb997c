"""Model inputs gathered once from an :class:`~almea_pyg.data.MMKGPair`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.utils import to_undirected

from almea_pyg.data.pair import FEATURE_PREFIX, MMKGPair, modality_mask
from almea_pyg.typing import ENTITY, RELATION_EDGE


@dataclass
class PairInputs:
    """The tensors ALMEA reads from a pair, with the target KG's entities offset.

    Entities of both KGs share one index space: source entity ``i`` is ``i``,
    target entity ``j`` is ``num_source + j``.

    Attributes:
        edge_index: Undirected union of both KGs' relation edges, ``(2, E)``.
        num_source: Source entity count.
        num_target: Target entity count.
        features: ``{m: (x_source (N_s, F_s), x_target (N_t, F_t))}``.
        present: ``{m: (N_s + N_t,)}`` True where the entity has modality ``m``.
    """

    edge_index: Tensor
    num_source: int
    num_target: int
    features: dict[str, tuple[Tensor, Tensor]]
    present: dict[str, Tensor]

    @property
    def num_entities(self) -> int:
        return self.num_source + self.num_target

    @classmethod
    def from_pair(
        cls, pair: MMKGPair, modalities: list[str] | None = None
    ) -> PairInputs:
        """Gather inputs; a modality missing from one KG becomes zeros, all absent."""
        num_source, num_target = pair.num_entities
        edges = []
        for kg, offset in ((pair.source, 0), (pair.target, num_source)):
            if RELATION_EDGE in kg.edge_types:
                edges.append(kg[RELATION_EDGE].edge_index + offset)
        edge_index = (
            torch.cat(edges, dim=1) if edges else torch.empty(2, 0, dtype=torch.long)
        )
        edge_index = to_undirected(edge_index, num_nodes=num_source + num_target)
        features, present = {}, {}
        for name in modalities if modalities is not None else pair.modalities:
            key = f"{FEATURE_PREFIX}{name}"
            xs = [kg[ENTITY].get(key) for kg in (pair.source, pair.target)]
            if all(x is None for x in xs):
                raise ValueError(f"modality {name!r} is in neither KG of {pair.name}")
            dim = next(x.size(-1) for x in xs if x is not None)
            xs = [
                x.float() if x is not None else torch.zeros(kg[ENTITY].num_nodes, dim)
                for x, kg in zip(xs, (pair.source, pair.target))
            ]
            features[name] = (xs[0], xs[1])
            present[name] = torch.cat(
                [modality_mask(pair.source, name), modality_mask(pair.target, name)]
            ).to(edge_index.device)
        return cls(edge_index, num_source, num_target, features, present)

    def in_channels(
        self, shared: tuple[str, ...] = ("img", "text")
    ) -> dict[str, int | tuple[int, int]]:
        """Feature sizes: one shared size for modalities in a common space
        (``shared``, when both sides agree), else a ``(source, target)`` pair."""
        sizes: dict[str, int | tuple[int, int]] = {}
        for name, (xs, xt) in self.features.items():
            same = xs.size(-1) == xt.size(-1)
            sizes[name] = (
                xs.size(-1) if name in shared and same else (xs.size(-1), xt.size(-1))
            )
        return sizes
