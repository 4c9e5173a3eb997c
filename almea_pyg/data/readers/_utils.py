"""Shared reader pieces: line iteration, id maps, de-duplication, KG assembly."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from almea_pyg.data.errors import DataFormatError
from almea_pyg.data.features import feature_matrix
from almea_pyg.typing import ATTRIBUTE, ATTRIBUTE_EDGE, ENTITY, RELATION_EDGE

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: Features given in memory: ``{id: vector}`` or ``(ids, matrix)``.
FeatureInput = Union[Mapping[str, Any], tuple[Sequence[str], Any]]


def require_file(path: PathLike) -> Path:
    """``path`` as a :class:`Path`; a :class:`FileNotFoundError` naming it if absent."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return path


def iter_lines(path: PathLike) -> Iterator[tuple[int, str]]:
    """Yield ``(line number, line)`` for the non-blank lines of a UTF-8 file.

    Line numbers are 1-based and count blank lines, so they match an editor's.
    The line terminator (``\\n`` or ``\\r\\n``) is removed.
    """
    path = require_file(path)
    with path.open(encoding="utf-8", newline="") as handle:
        try:
            for number, line in enumerate(handle, 1):
                line = line.rstrip("\r\n")
                if line and not line.isspace():
                    yield number, line
        except UnicodeDecodeError as error:
            raise DataFormatError(path, None, f"not UTF-8 text ({error})") from None


def tab_columns(layout: str) -> int:
    """The number of fields a layout such as ``"h<TAB>r<TAB>t"`` shows."""
    return layout.count("<TAB>") + 1


def iter_tab_fields(path: PathLike, layout: str) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line number, fields)`` of a TAB-separated file.

    ``layout`` names the fields, e.g. ``"head<TAB>relation<TAB>tail"``; a line with
    another number of fields than it shows raises :class:`DataFormatError`.
    """
    columns = tab_columns(layout)
    for number, line in iter_lines(path):
        fields = line.split("\t")
        if len(fields) != columns:
            raise DataFormatError(
                path, number, f"expected '{layout}', got {len(fields)} fields"
            )
        yield number, fields


def iter_statements(path: PathLike, layout: str) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line number, [subject, predicate, object])`` of N-Triples-like lines.

    Lines are whitespace-separated ``s p o`` with an optional final ``.``;
    ``layout`` (e.g. ``"head relation tail ."``) names them in errors.
    """
    for number, line in iter_lines(path):
        parts = line.split()
        if not (len(parts) == 3 or (len(parts) == 4 and parts[3] == ".")):
            raise DataFormatError(
                path, number, f"expected '{layout}', got {len(parts)} fields"
            )
        yield number, parts[:3]


class Vocabulary:
    """A growing map from string tokens to consecutive indices (first seen, first)."""

    def __init__(self, tokens: Iterable[str] = ()) -> None:
        self.index: dict[str, int] = {}
        for token in tokens:
            self.add(token)

    def add(self, token: str) -> int:
        """The index of ``token``, adding it if new."""
        index = self.index.get(token)
        if index is None:
            index = self.index[token] = len(self.index)
        return index

    @property
    def tokens(self) -> list[str]:
        return list(self.index)

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, token: object) -> bool:
        return token in self.index


def unique_columns(index: Tensor) -> Tensor:
    """The columns of ``index`` without repeats, in order of first occurrence.

    Uses :func:`numpy.unique` (single-threaded, fast on CPU) on one mixed-radix
    key per column when the key fits in 62 bits, on the columns otherwise.

    Shapes:
        index: ``(K, E)`` non-negative integers -> ``(K, E_unique)``
    """
    if index.size(1) == 0:
        return index
    columns = index.numpy()
    sizes = columns.max(axis=1) + 1
    if float(np.prod(sizes, dtype=np.float64)) < 2**62:
        key = columns[0].copy()
        for row, size in zip(columns[1:], sizes[1:]):
            key = key * size + row
        _, first = np.unique(key, return_index=True)
    else:
        _, first = np.unique(columns, axis=1, return_index=True)
    first.sort()
    return index[:, torch.from_numpy(first)]


def make_kg(
    entity_ids: list[str],
    triples: Tensor,
    relation_names: list[str],
    *,
    attribute_facts: Tensor | None = None,
    attribute_values: Tensor | None = None,
    attribute_names: list[str] | None = None,
) -> HeteroData:
    """Assemble one KG in the layout of :class:`~almea_pyg.data.MMKGPair`.

    Args:
        entity_ids (list[str]): Original identifier of every entity, by index.
        triples (torch.Tensor): ``(head, relation, tail)`` indices, ``(3, E)``.
        relation_names (list[str]): Name of every relation, by index.
        attribute_facts (torch.Tensor, optional): ``(entity, attribute)`` indices,
            ``(2, E_a)``. Without it the KG has no ``attribute`` node type.
        attribute_values (torch.Tensor, optional): Numeric value of every fact
            (NaN where there is none), ``(E_a,)``; all NaN if omitted.
        attribute_names (list[str], optional): Name of every attribute, by index.
    """
    kg = HeteroData()
    kg[ENTITY].num_nodes = len(entity_ids)
    kg[ENTITY].ids = list(entity_ids)
    kg[RELATION_EDGE].edge_index = triples[[0, 2]].contiguous()
    kg[RELATION_EDGE].edge_type = triples[1].contiguous()
    kg[RELATION_EDGE].relation_names = list(relation_names)
    if attribute_facts is not None:
        names = list(attribute_names or [])
        if attribute_values is None:
            attribute_values = torch.full((attribute_facts.size(1),), float("nan"))
        kg[ATTRIBUTE].num_nodes = len(names)
        kg[ATTRIBUTE].names = names
        kg[ATTRIBUTE_EDGE].edge_index = attribute_facts.contiguous()
        kg[ATTRIBUTE_EDGE].value = attribute_values.to(torch.float)
    return kg


def to_index_tensor(rows: list[list[int]] | tuple[list[int], ...]) -> Tensor:
    """Stack equal-length Python int lists into a ``(K, E)`` long tensor."""
    return torch.tensor(rows, dtype=torch.long)


def attach_features(
    kg: HeteroData,
    name: str,
    ids: Sequence[str],
    matrix: Any,
    *,
    normalize: bool = True,
    source: str = "features",
) -> HeteroData:
    """Add modality ``x_<name>`` (and its mask) to ``kg`` from rows keyed by id.

    Rows whose id is not an entity of ``kg`` are dropped (counted in a warning);
    entities without a row get zeros and ``mask=False``.

    Args:
        kg (HeteroData): The KG, with ``kg["entity"].ids``.
        name (str): Modality name, e.g. ``"img"``.
        ids (Sequence[str]): Entity identifier of every row of ``matrix``.
        matrix (array-like): Feature rows, ``(len(ids), F)``.
        normalize (bool, optional): L2-normalise the rows. (default: ``True``)
        source (str, optional): Where the rows came from, for messages.
    """
    matrix = torch.as_tensor(np.asarray(matrix), dtype=torch.float)
    if matrix.dim() != 2 or matrix.size(0) != len(ids):
        raise ValueError(
            f"{source}: expected a ({len(ids)}, F) matrix for {len(ids)} ids, "
            f"got shape {tuple(matrix.shape)}"
        )
    if len(set(ids)) != len(ids):
        raise ValueError(f"{source}: duplicate ids among the feature rows")
    lookup = {token: i for i, token in enumerate(kg[ENTITY].ids)}
    found = [lookup.get(token, -1) for token in ids]
    index = torch.tensor(found, dtype=torch.long).view(-1)
    keep = index >= 0
    if not bool(keep.all()):
        logger.warning(
            "%s: %d of %d feature rows name no entity of the KG and are ignored",
            source,
            int((~keep).sum()),
            len(ids),
        )
    x, mask = feature_matrix(
        index[keep], matrix[keep], kg[ENTITY].num_nodes, normalize=normalize
    )
    kg[ENTITY][f"x_{name}"] = x
    kg[ENTITY][f"x_{name}_mask"] = mask
    return kg


def split_feature_input(features: FeatureInput, source: str) -> tuple[list[str], Any]:
    """``(ids, matrix)`` from ``{id: vector}`` or an ``(ids, matrix)`` pair."""
    if isinstance(features, Mapping):
        ids = [str(key) for key in features]
        if not ids:
            raise ValueError(f"{source}: the feature dict is empty")
        return ids, np.stack(
            [np.asarray(v, dtype=np.float32) for v in features.values()]
        )
    if isinstance(features, tuple) and len(features) == 2:
        ids, matrix = features
        return [str(token) for token in ids], matrix
    raise TypeError(f"{source}: expected a dict id -> vector or a tuple (ids, matrix)")
