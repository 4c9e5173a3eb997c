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

#: Encoding of every text file read: UTF-8, a leading byte-order mark dropped.
TEXT_ENCODING = "utf-8-sig"

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
    The line terminator (``\\n`` or ``\\r\\n``) is removed, and so is a
    byte-order mark at the start (editors on Windows write one), which would
    otherwise become part of the first identifier.

    Raises:
        DataFormatError: the file is not UTF-8, naming the first bad line.
    """
    path = require_file(path)
    with path.open(encoding=TEXT_ENCODING, newline="") as handle:
        try:
            for number, line in enumerate(handle, 1):
                line = line.rstrip("\r\n")
                if line and not line.isspace():
                    yield number, line
        except UnicodeDecodeError:
            raise _undecodable_error(path) from None


def _undecodable_error(path: Path) -> DataFormatError:
    """A :class:`DataFormatError` naming the first line of ``path`` that is not
    UTF-8 (the text decoder reads ahead in blocks: its position names no line)."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as error:
                return DataFormatError(
                    path,
                    number,
                    f"not UTF-8 text (byte 0x{raw[error.start]:02x} at byte "
                    f"{error.start + 1} of the line); save the file as UTF-8",
                )
    return DataFormatError(path, None, "not UTF-8 text; save the file as UTF-8")


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


def entities_in_facts(kg: HeteroData) -> Tensor:
    """Bool mask of the entities of ``kg`` in a relation triple or attribute fact."""
    mask = torch.zeros(kg[ENTITY].num_nodes, dtype=torch.bool)
    mask[kg[RELATION_EDGE].edge_index.reshape(-1)] = True
    if ATTRIBUTE_EDGE in kg.edge_types:
        mask[kg[ATTRIBUTE_EDGE].edge_index[0]] = True
    return mask


def check_link_ends(
    path: PathLike, links: Tensor, kgs: Sequence[tuple[str, HeteroData]]
) -> None:
    """Stop at a links file of other KGs; warn about links to isolated entities.

    A link whose end is in no triple or attribute fact of its KG points at an
    isolated entity: a few occur in real data (mmkb has some), but when more
    than half of the links do, the file almost surely belongs to another KG and
    every result computed on it would be wrong.

    Args:
        path (str or os.PathLike): The links file, for messages.
        links (torch.Tensor): ``(2, L)`` local indices, source row first.
        kgs (sequence): ``(name, kg)`` of the source and the target KG.

    Raises:
        DataFormatError: more than half of the links have such an end on one side.
    """
    messages = []
    for (name, kg), row in zip(kgs, links):
        stray = ~entities_in_facts(kg)[row]
        count = int(stray.sum())
        if count == 0:
            continue
        example = kg[ENTITY].ids[int(row[stray][0])]
        message = (
            f"{count} of {row.numel()} links point at an entity in no triple or "
            f"attribute fact of {name}, e.g. {example!r}"
        )
        if 2 * count > row.numel():
            raise DataFormatError(
                path, None, f"{message}; the file may belong to another KG"
            )
        messages.append(message)
    for message in messages:
        logger.warning("%s: %s (isolated entities)", Path(path).name, message)


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
