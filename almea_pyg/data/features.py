"""Feature builders: bag-of-relations, bag-of-attributes and given feature matrices.

Every builder returns dense ``float32`` features with zero rows for the entities
that lack the modality, plus (where it matters) a bool mask saying which entities
really have it, as :class:`~almea_pyg.data.MMKGPair` expects
(``x_<name>`` / ``x_<name>_mask``).

The top-k columns are chosen **per KG**: column ``j`` is the ``j``-th most frequent
relation (attribute) of that KG, ties broken by the smaller id. The two KGs of a
pair name their relations differently, so their relation ids are unrelated; ordering
the columns by frequency makes column ``j`` of both sides refer to relations of the
same rank, which correlate when the two KGs cover similar facts.
"""

from __future__ import annotations

import copy
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.transforms import BaseTransform

from almea_pyg.data.pair import MMKGPair
from almea_pyg.typing import ATTRIBUTE, ATTRIBUTE_EDGE, ENTITY, RELATION_EDGE

DEFAULT_TOP_K = 1000

Graph = TypeVar("Graph", HeteroData, MMKGPair)


def top_k_columns(ids: Tensor, num_classes: int, top_k: int) -> Tensor:
    """Map each class to its column among the ``top_k`` most frequent, or ``-1``.

    Classes are ranked by decreasing frequency in ``ids``, ties broken by the
    smaller class id, so the result is deterministic. Classes that never occur are
    ranked last and still get a column when fewer than ``top_k`` classes exist.

    Args:
        ids (torch.Tensor): Class id of each occurrence.
        num_classes (int): Number of classes ``C``.
        top_k (int): Number of columns kept, ``k = min(top_k, C)``.

    Shapes:
        ids: ``(M,)`` -> ``(C,)`` with values in ``[-1, k)``
    """
    if top_k < 1:
        raise ValueError(f"top_k must be positive, got {top_k}")
    counts = torch.bincount(ids, minlength=num_classes)
    order = torch.sort(counts, descending=True, stable=True).indices
    num_columns = min(top_k, num_classes)
    column = torch.full((num_classes,), -1, dtype=torch.long, device=ids.device)
    column[order[:num_columns]] = torch.arange(num_columns, device=ids.device)
    return column


def _check_ids(ids: Tensor, bound: int, what: str) -> None:
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= bound):
        raise ValueError(f"{what} must lie in [0, {bound})")


def _scatter_counts(rows: Tensor, columns: Tensor, num_rows: int, k: int) -> Tensor:
    keep = columns >= 0
    flat = rows[keep] * k + columns[keep]
    out = torch.zeros(num_rows * k, dtype=torch.float32, device=rows.device)
    out.index_add_(0, flat, torch.ones_like(flat, dtype=torch.float32))
    return out.view(num_rows, k)


def bag_of_relations(
    edge_index: Tensor,
    edge_type: Tensor,
    num_nodes: int,
    *,
    num_relations: int | None = None,
    top_k: int = DEFAULT_TOP_K,
) -> Tensor:
    r"""Counts of the ``top_k`` most frequent relations each entity takes part in.

    Both directions count: a triple :math:`(h, r, t)` adds one to column ``r`` of
    both :math:`h` and :math:`t` (a self-loop adds two), as in MCLEA's relation
    features.

    Args:
        edge_index (torch.Tensor): Head and tail of each triple.
        edge_type (torch.Tensor): Relation id of each triple.
        num_nodes (int): Number of entities ``N``.
        num_relations (int, optional): Number of relations ``R``; inferred as
            ``edge_type.max() + 1`` when omitted. (default: :obj:`None`)
        top_k (int, optional): Number of relations kept (by frequency, see
            :func:`top_k_columns`). (default: :obj:`1000`)

    Shapes:
        edge_index: ``(2, E)``, edge_type: ``(E,)`` -> ``(N, min(top_k, R))``
    """
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"edge_index must be (2, E), got {tuple(edge_index.shape)}")
    if edge_type.shape != (edge_index.size(1),):
        raise ValueError("edge_type must have one relation id per edge")
    if num_relations is None:
        num_relations = int(edge_type.max()) + 1 if edge_type.numel() else 0
    _check_ids(edge_index, num_nodes, "edge_index")
    _check_ids(edge_type, num_relations, "edge_type")
    if num_relations == 0:
        return torch.zeros(num_nodes, 0, device=edge_index.device)
    column = top_k_columns(edge_type, num_relations, top_k)
    rows = edge_index.reshape(-1)
    columns = column[edge_type].repeat(2)
    return _scatter_counts(rows, columns, num_nodes, min(top_k, num_relations))


def bag_of_attributes(
    edge_index: Tensor,
    num_entities: int,
    num_attributes: int,
    *,
    top_k: int = DEFAULT_TOP_K,
    binary: bool = True,
) -> tuple[Tensor, Tensor]:
    r"""Multi-hot (or count) vector over the ``top_k`` most frequent attributes.

    The mask is ``True`` for the entities with at least one kept attribute; the
    others get a zero row. With ``top_k`` at least the number of attributes (the
    usual case: FB15K has about a hundred) this is "has any attribute".

    Args:
        edge_index (torch.Tensor): ``(entity, attribute)`` pairs.
        num_entities (int): Number of entities ``N``.
        num_attributes (int): Number of attributes ``A``.
        top_k (int, optional): Number of attributes kept (by frequency, see
            :func:`top_k_columns`). (default: :obj:`1000`)
        binary (bool, optional): Multi-hot (MCLEA's choice) if :obj:`True`, counts
            of repeated (entity, attribute) pairs otherwise. (default: :obj:`True`)

    Shapes:
        edge_index: ``(2, E_a)`` -> ``(N, min(top_k, A))``, ``(N,)``
    """
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"edge_index must be (2, E), got {tuple(edge_index.shape)}")
    _check_ids(edge_index[0], num_entities, "entity ids")
    _check_ids(edge_index[1], num_attributes, "attribute ids")
    if num_attributes == 0:
        x = torch.zeros(num_entities, 0, device=edge_index.device)
        return x, torch.zeros(num_entities, dtype=torch.bool, device=x.device)
    column = top_k_columns(edge_index[1], num_attributes, top_k)
    x = _scatter_counts(
        edge_index[0], column[edge_index[1]], num_entities, min(top_k, num_attributes)
    )
    if binary:
        x = x.clamp_(max=1.0)
    return x, x.sum(dim=1) > 0


def feature_matrix(
    index: Tensor, features: Tensor, num_entities: int, *, normalize: bool = True
) -> tuple[Tensor, Tensor]:
    """Scatter the feature rows of some entities into a dense matrix with a mask.

    Used for given features such as image or text embeddings that exist for a
    subset of the entities. Missing entities get a zero row and ``mask=False``.

    Args:
        index (torch.Tensor): Entity index of each feature row (no duplicates).
        features (torch.Tensor): The feature rows (finite values).
        num_entities (int): Number of entities ``N``.
        normalize (bool, optional): L2-normalise the rows. (default: :obj:`True`)

    Shapes:
        index: ``(M,)``, features: ``(M, F)`` -> ``(N, F)``, ``(N,)``
    """
    index = torch.as_tensor(index, dtype=torch.long)
    if index.dim() != 1 or features.dim() != 2 or features.size(0) != index.numel():
        raise ValueError(
            "expected index (M,) and features (M, F), got "
            f"{tuple(index.shape)} and {tuple(features.shape)}"
        )
    _check_ids(index, num_entities, "feature index")
    if torch.unique(index).numel() != index.numel():
        raise ValueError("feature index has duplicate entities")
    features = features.to(torch.float32)
    if not torch.isfinite(features).all():
        raise ValueError("features contain NaN or infinite values")
    if normalize:
        features = F.normalize(features, dim=-1)
    x = features.new_zeros(num_entities, features.size(1))
    x[index] = features
    mask = torch.zeros(num_entities, dtype=torch.bool, device=x.device)
    mask[index] = True
    return x, mask


def build_features(kg: HeteroData, *, top_k: int = DEFAULT_TOP_K) -> HeteroData:
    """Add the relation and attribute modalities of one KG, in place.

    Adds ``x_rel`` / ``x_rel_mask`` (:func:`bag_of_relations`, the mask is "has at
    least one kept relation") from the relation edges and, when ``kg`` has
    attribute edges, ``x_attr`` / ``x_attr_mask`` (:func:`bag_of_attributes`). The
    number of relations is ``len(relation_names)`` when present.

    Args:
        kg (HeteroData): One KG in the layout of :class:`~almea_pyg.data.MMKGPair`.
        top_k (int, optional): Columns kept per modality, chosen within this KG.
            (default: :obj:`1000`)

    Returns:
        HeteroData: ``kg`` itself.
    """
    store = kg[ENTITY]
    num_entities = store.num_nodes
    if RELATION_EDGE in kg.edge_types:
        edge_store = kg[RELATION_EDGE]
        names = edge_store.get("relation_names")
        store.x_rel = bag_of_relations(
            edge_store.edge_index,
            edge_store.edge_type,
            num_entities,
            num_relations=len(names) if names is not None else None,
            top_k=top_k,
        )
        store.x_rel_mask = store.x_rel.sum(dim=1) > 0
    if ATTRIBUTE_EDGE in kg.edge_types:
        store.x_attr, store.x_attr_mask = bag_of_attributes(
            kg[ATTRIBUTE_EDGE].edge_index,
            num_entities,
            kg[ATTRIBUTE].num_nodes,
            top_k=top_k,
        )
    return kg


def match_feature_widths(
    source: HeteroData, target: HeteroData, *, names: tuple[str, ...] = ("rel", "attr")
) -> None:
    """Zero-pad ``x_<name>`` of two KGs to a common width, in place.

    With per-KG top-k the two sides of a pair can have different widths (e.g. 1000
    relations kept in FB15K, all 279 in DB15K); padding the narrower side with zero
    columns lets one :class:`~torch.nn.Linear` encode both sides. Modalities missing
    from either KG are left alone.

    Args:
        source (HeteroData): One KG.
        target (HeteroData): The other KG.
        names (tuple of str, optional): Modalities to pad.
            (default: :obj:`("rel", "attr")`)
    """
    stores = (source[ENTITY], target[ENTITY])
    for key in (f"x_{name}" for name in names):
        if not all(key in store for store in stores):
            continue
        width = max(store[key].size(1) for store in stores)
        for store in stores:
            store[key] = F.pad(store[key], (0, width - store[key].size(1)))


class BuildModalityFeatures(BaseTransform):
    """Transform adding ``x_rel`` and ``x_attr`` (with masks): :func:`build_features`.

    Works on one KG (:class:`~torch_geometric.data.HeteroData`) and on an
    :class:`~almea_pyg.data.MMKGPair`, where it builds each side with its own top-k
    (per KG, see the module docstring) and then zero-pads both sides to a common
    width (:func:`match_feature_widths`). The input is not modified: the KGs are
    shallow-copied first, so their existing tensors are shared, not cloned.

    Args:
        top_k (int, optional): Columns kept per modality. (default: :obj:`1000`)
    """

    def __init__(self, top_k: int = DEFAULT_TOP_K) -> None:
        self.top_k = top_k

    def forward(self, data: Graph) -> Graph:
        if isinstance(data, MMKGPair):
            source = self.forward(copy.copy(data.source))
            target = self.forward(copy.copy(data.target))
            match_feature_widths(source, target)
            return data.with_kgs(source, target)
        if not isinstance(data, HeteroData):
            raise TypeError(f"expected HeteroData or MMKGPair, got {type(data)}")
        return build_features(data, top_k=self.top_k)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(top_k={self.top_k})"
