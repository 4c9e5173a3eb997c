"""The central data object: two multimodal KGs and the links between them."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Data, HeteroData

from almea_pyg.data.split import split_links
from almea_pyg.typing import ATTRIBUTE, ENTITY, RELATION_EDGE

MASK_SUFFIX = "_mask"
FEATURE_PREFIX = "x_"


def feature_modalities(kg: HeteroData) -> list[str]:
    """Names of the feature modalities of ``kg``: ``x_<name>`` entity attributes.

    >>> feature_modalities(kg)  # kg['entity'] has x_rel, x_rel_mask, x_attr, ...
    ['attr', 'rel']
    """
    store = kg[ENTITY]
    return sorted(
        key[len(FEATURE_PREFIX) :]
        for key in store.keys()
        if key.startswith(FEATURE_PREFIX) and not key.endswith(MASK_SUFFIX)
    )


def modality_mask(kg: HeteroData, name: str) -> Tensor:
    """Bool mask of the entities of ``kg`` that have modality ``name``.

    A modality absent from ``kg`` altogether gives an all-``False`` mask.
    """
    store = kg[ENTITY]
    key = f"{FEATURE_PREFIX}{name}"
    if key not in store:
        return torch.zeros(store.num_nodes, dtype=torch.bool)
    mask_key = key + MASK_SUFFIX
    if mask_key in store:
        return store[mask_key]
    return torch.ones(store.num_nodes, dtype=torch.bool, device=store[key].device)


def link_keys(links: Tensor, num_targets: int) -> Tensor:
    """One integer per link ``(s, t)``: ``s * num_targets + t``, for set operations
    such as ``torch.isin`` on links."""
    return links[0] * num_targets + links[1]


#: Exact leaf types that ``torch.load(..., weights_only=True)`` reads back
#: (besides tensors); numpy scalars, for one, are refused.
PLAIN_TYPES = (str, int, float, bool, type(None), torch.dtype)


def _check_storable(value: Any, where: str) -> None:
    """Raise :class:`TypeError` naming the first value of a nested state that a
    ``weights_only`` load would refuse."""
    if type(value) is dict:
        for key, item in value.items():
            _check_storable(key, f"{where} key")
            _check_storable(item, f"{where}[{key!r}]")
    elif type(value) in (list, tuple, torch.Size):
        for index, item in enumerate(value):
            _check_storable(item, f"{where}[{index}]")
    elif not (isinstance(value, Tensor) or type(value) in PLAIN_TYPES):
        raise TypeError(
            f"{where} is a {type(value).__name__}; a pair file stores only tensors, "
            "numbers, strings and lists, tuples and dicts of them, so that "
            "MMKGPair.load can read it without unpickling code"
        )


def _kg_stats(kg: HeteroData) -> str:
    parts = [f"entities={kg[ENTITY].num_nodes}"]
    if RELATION_EDGE in kg.edge_types:
        edge_store = kg[RELATION_EDGE]
        parts.append(f"triples={edge_store.edge_index.size(1)}")
        if "edge_type" in edge_store and edge_store.edge_type.numel() > 0:
            parts.append(f"relations={int(edge_store.edge_type.max()) + 1}")
    if ATTRIBUTE in kg.node_types:
        parts.append(f"attributes={kg[ATTRIBUTE].num_nodes}")
    for name in feature_modalities(kg):
        mask = modality_mask(kg, name)
        dim = kg[ENTITY][f"{FEATURE_PREFIX}{name}"].size(-1)
        parts.append(f"{name}={dim}d/{mask.float().mean().item():.0%}")
    return ", ".join(parts)


class MMKGPair:
    r"""A pair of multimodal knowledge graphs with their alignment links.

    Each KG is a :class:`~torch_geometric.data.HeteroData` with node type
    ``entity`` (``num_nodes``, per-modality features ``x_<name>`` with bool masks
    ``x_<name>_mask``, original identifiers ``ids``), edge type
    ``(entity, relation, entity)`` (``edge_index``, ``edge_type``,
    ``relation_names``) and, optionally, node type ``attribute`` (``names``) with
    edge type ``(entity, has_attribute, attribute)`` (``edge_index``, ``value``:
    the numeric value or NaN).

    Args:
        source (HeteroData): The source KG.
        target (HeteroData): The target KG.
        links (torch.Tensor): All known links, ``(2, L)`` (source index, target
            index).
        train_links (torch.Tensor, optional): Seed links, ``(2, L_train)``.
        test_links (torch.Tensor, optional): Test links, ``(2, L_test)``.
        valid_links (torch.Tensor, optional): Validation links.
        name (str, optional): A name, e.g. ``"FB15K_DB15K"``.
    """

    def __init__(
        self,
        source: HeteroData,
        target: HeteroData,
        links: Tensor,
        *,
        train_links: Tensor | None = None,
        test_links: Tensor | None = None,
        valid_links: Tensor | None = None,
        name: str = "MMKGPair",
    ) -> None:
        links = torch.as_tensor(links, dtype=torch.long)
        if links.dim() != 2 or links.size(0) != 2:
            raise ValueError(f"links must have shape (2, L), got {tuple(links.shape)}")
        for side, kg, row in (
            ("source", source, links[0]),
            ("target", target, links[1]),
        ):
            num = kg[ENTITY].num_nodes
            if row.numel() and (int(row.min()) < 0 or int(row.max()) >= num):
                raise ValueError(f"links refer to {side} entities outside [0, {num})")
        self.source = source
        self.target = target
        self.links = links
        empty = links.new_empty(2, 0)
        self.train_links = train_links if train_links is not None else empty
        self.test_links = test_links if test_links is not None else links
        self.valid_links = valid_links if valid_links is not None else empty
        self.name = name

    @property
    def modalities(self) -> list[str]:
        """Feature modalities present in either KG (sorted)."""
        return sorted(
            set(feature_modalities(self.source)) | set(feature_modalities(self.target))
        )

    @property
    def num_entities(self) -> tuple[int, int]:
        return self.source[ENTITY].num_nodes, self.target[ENTITY].num_nodes

    def split(
        self,
        ratio: float,
        *,
        seed: int = 0,
        valid_ratio: float = 0.0,
        pool_ratio: float = 0.0,
    ) -> MMKGPair:
        """A copy split into seed/valid/test links by a seeded shuffle.

        ``pool_ratio`` of the links go into none of the three (see
        :func:`~almea_pyg.data.split.split_links`): under the default no-leak
        protocol their entities are the part of the active-learning pool that
        has true partners to find, without revealing a test link.
        """
        train, valid, test = split_links(
            self.links, ratio, seed=seed, valid_ratio=valid_ratio, pool_ratio=pool_ratio
        )
        return MMKGPair(
            self.source,
            self.target,
            self.links,
            train_links=train,
            test_links=test,
            valid_links=valid,
            name=self.name,
        )

    def with_kgs(self, source: HeteroData, target: HeteroData) -> MMKGPair:
        """The same links and splits over other KGs (e.g. transformed copies)."""
        return MMKGPair(
            source,
            target,
            self.links,
            train_links=self.train_links,
            test_links=self.test_links,
            valid_links=self.valid_links,
            name=self.name,
        )

    def to(self, device: torch.device | str) -> MMKGPair:
        return MMKGPair(
            self.source.to(device),
            self.target.to(device),
            self.links.to(device),
            train_links=self.train_links.to(device),
            test_links=self.test_links.to(device),
            valid_links=self.valid_links.to(device),
            name=self.name,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source.to_dict(),
            "target": self.target.to_dict(),
            "links": self.links,
            "train_links": self.train_links,
            "test_links": self.test_links,
            "valid_links": self.valid_links,
            "name": self.name,
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> MMKGPair:
        return cls(
            HeteroData.from_dict(state["source"]),
            HeteroData.from_dict(state["target"]),
            state["links"],
            train_links=state["train_links"],
            test_links=state["test_links"],
            valid_links=state["valid_links"],
            name=state["name"],
        )

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_dict` with :func:`torch.save`.

        Raises:
            TypeError: a stored value is not a tensor, number, string or a
                list, tuple or dict of them, which :meth:`load` could not read.
        """
        state = self.to_dict()
        _check_storable(state, "pair")
        torch.save(state, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> MMKGPair:
        """Read a file written by :meth:`save`.

        Loads with ``weights_only=True``: a pair file may come from anyone, and
        full unpickling would run any code it holds; a file holding other
        objects than tensors and plain containers raises
        :class:`pickle.UnpicklingError`.
        """
        return cls.from_dict(torch.load(path, weights_only=True))

    def to_pyg_pair(self, modality: str = "rel") -> Data:
        """PyG's DBP15K-style pair: ``Data(x1, edge_index1, x2, edge_index2, ...)``."""
        key = f"{FEATURE_PREFIX}{modality}"
        return Data(
            x1=self.source[ENTITY].get(key),
            edge_index1=self.source[RELATION_EDGE].edge_index,
            x2=self.target[ENTITY].get(key),
            edge_index2=self.target[RELATION_EDGE].edge_index,
            train_y=self.train_links,
            test_y=self.test_links,
        )

    @classmethod
    def from_pyg_pair(
        cls, data: Data, *, modality: str = "rel", name: str = "MMKGPair"
    ) -> MMKGPair:
        """A pair from PyG's DBP15K-style ``Data`` (inverse of :meth:`to_pyg_pair`)."""
        kgs = []
        for x, edge_index in ((data.x1, data.edge_index1), (data.x2, data.edge_index2)):
            kg = HeteroData()
            kg[ENTITY].num_nodes = x.size(0)
            kg[ENTITY][f"{FEATURE_PREFIX}{modality}"] = x
            kg[RELATION_EDGE].edge_index = edge_index
            kg[RELATION_EDGE].edge_type = torch.zeros(
                edge_index.size(1), dtype=torch.long
            )
            kgs.append(kg)
        links = torch.cat([data.train_y, data.test_y], dim=1)
        return cls(
            kgs[0],
            kgs[1],
            links,
            train_links=data.train_y,
            test_links=data.test_y,
            name=name,
        )

    def __repr__(self) -> str:
        return (
            f"{self.name}(\n  source: {_kg_stats(self.source)},\n"
            f"  target: {_kg_stats(self.target)},\n"
            f"  links={self.links.size(1)}, train={self.train_links.size(1)}, "
            f"valid={self.valid_links.size(1)}, test={self.test_links.size(1)}\n)"
        )
