"""Generic TSV reader: bring your own KGs (triples, attributes, feature matrices).

One KG is

* a triples file, ``head<TAB>relation<TAB>tail`` per line (any strings);
* optionally an attributes file, ``entity<TAB>attribute[<TAB>value]``: values,
  bare or as N-Triples literals (``"1982"^^<...#gYear>``), are parsed as numbers,
  years or dates (:func:`~almea_pyg.data.readers.literals.literal_value`), NaN
  when absent or not numeric; entities only named here are added to the KG;
* optionally feature matrices per modality (``"img"``, ``"text"``, ...): a ``.pt``
  file holding ``{"ids": [...], "x": Tensor}``, or a ``.npy`` / ``.pt`` matrix
  plus an ids file (one entity id per line, the id of each row). Rows are
  L2-normalised and stored as ``x_<name>`` with mask ``x_<name>_mask``; entities
  without a row get zeros and ``mask=False``;
* optionally an images file, ``entity<TAB>path-or-URL``: a local image file
  (a relative path is read against the images file's folder) or an ``http(s)``
  URL, kept as ``kg["entity"].images``, a dict entity id -> reference, for
  people to look at (the labelling page shows them; training does not).

A pair adds a links file, ``source_id<TAB>target_id`` per line. A KG of a pair may
be given as a directory in this layout::

    triples.tsv
    attributes.tsv            (optional)
    features/<name>.pt        (optional: {"ids", "x"}, or a matrix with <name>.ids)
    features/<name>.npy       (optional, with features/<name>.ids)
    images.tsv                (optional: entity<TAB>path-or-URL)

and a pair directory, as :func:`~almea_pyg.data.readers.detect.read_pair` finds
it, holds two KG directories and the links::

    source/   target/   links.tsv

Example:
    >>> pair = read_tsv_pair("my_kg_a/", "my_kg_b/", "links.tsv")
    >>> pair = pair.split(0.3, seed=0)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union
from urllib.parse import urlsplit

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from almea_pyg.data.errors import DataFormatError
from almea_pyg.data.pair import MMKGPair
from almea_pyg.data.readers._utils import (
    PathLike,
    Vocabulary,
    attach_features,
    iter_lines,
    iter_tab_fields,
    make_kg,
    require_file,
    to_index_tensor,
    unique_columns,
)
from almea_pyg.data.readers.literals import literal_value
from almea_pyg.typing import ENTITY

logger = logging.getLogger(__name__)

#: A feature file: a ``.pt`` dict ``{"ids", "x"}``, or ``(matrix file, ids file)``.
FeatureSource = Union[PathLike, tuple[PathLike, PathLike]]

#: A KG of a pair: a directory, keyword arguments of :func:`read_tsv_kg`, or a KG.
KGSource = Union[PathLike, Mapping[str, Any], HeteroData]

TRIPLES_FILE = "triples.tsv"
ATTRIBUTES_FILE = "attributes.tsv"
FEATURES_DIR = "features"
IDS_SUFFIX = ".ids"
IMAGES_FILE = "images.tsv"
#: URL schemes an image reference may have; anything else is a local path.
IMAGE_URL_SCHEMES = ("http", "https")
#: A pair directory: the two KG directories and the links file.
PAIR_FILES = ("source", "target", "links.tsv")


def read_triples(path: Path, entities: Vocabulary, relations: Vocabulary) -> Tensor:
    """Unique ``(3, E)`` index triples of a ``head<TAB>relation<TAB>tail`` file."""
    rows: tuple[list[int], list[int], list[int]] = ([], [], [])
    for _, fields in iter_tab_fields(path, "head<TAB>relation<TAB>tail"):
        rows[0].append(entities.add(fields[0]))
        rows[1].append(relations.add(fields[1]))
        rows[2].append(entities.add(fields[2]))
    if not rows[0]:
        raise DataFormatError(path, None, "no triples in file")
    return unique_columns(to_index_tensor(rows))


def read_attributes(
    path: Path,
    entities: Vocabulary,
    attributes: Vocabulary,
    *,
    tabs_in_values: bool = False,
) -> tuple[Tensor, Tensor]:
    """Unique ``(entity, attribute)`` facts ``(2, E_a)`` and their values ``(E_a,)``.

    With ``tabs_in_values`` the value is the rest of the line after the second
    TAB (OpenEA's literals may hold TABs); otherwise a third TAB is an error.
    """
    values = Vocabulary([""])
    rows: tuple[list[int], list[int], list[int]] = ([], [], [])
    for number, line in iter_lines(path):
        fields = line.split("\t", 2 if tabs_in_values else -1)
        if len(fields) not in (2, 3) or not fields[0] or not fields[1]:
            raise DataFormatError(
                path,
                number,
                "expected 'entity<TAB>attribute[<TAB>value]', "
                f"got {len(fields)} fields",
            )
        rows[0].append(entities.add(fields[0]))
        rows[1].append(attributes.add(fields[1]))
        rows[2].append(values.add(fields[2] if len(fields) == 3 else ""))
    facts = unique_columns(to_index_tensor(rows))
    parsed = torch.tensor([literal_value(text) for text in values.tokens])
    return facts[:2], parsed[facts[2]]


def is_image_url(reference: str) -> bool:
    """Whether an image reference is a remote URL (else it is a local path)."""
    return urlsplit(reference).scheme.lower() in IMAGE_URL_SCHEMES


def read_images(path: PathLike, ids: Sequence[str]) -> dict[str, str]:
    """Entity id -> image reference of an ``entity<TAB>path-or-URL`` file.

    An ``http(s)`` URL is kept as it is; a path is made absolute against the
    file's folder, so the references hold wherever the KG is read from. Lines of
    entities not in ``ids`` are ignored with a warning, as feature rows are.

    Raises:
        DataFormatError: a malformed line, an empty reference, or an entity
            given a second image.
    """
    path = require_file(path)
    folder = path.parent.absolute()
    known = set(ids)
    images: dict[str, str] = {}
    unknown = 0
    for number, (entity, reference) in iter_tab_fields(path, "entity<TAB>path-or-URL"):
        reference = reference.strip()
        if not entity or not reference:
            raise DataFormatError(path, number, "empty entity or image reference")
        if entity in images:
            raise DataFormatError(path, number, f"a second image for {entity!r}")
        if entity not in known:
            unknown += 1
            continue
        images[entity] = (
            reference if is_image_url(reference) else str(folder / reference)
        )
    if unknown:
        logger.warning(
            "%s: %d of %d images name no entity of the KG and are ignored",
            path,
            unknown,
            unknown + len(images),
        )
    return images


def _read_ids(path: Path) -> list[str]:
    ids: dict[str, None] = {}
    for number, line in iter_lines(path):
        token = line.strip()
        if token in ids:
            raise DataFormatError(path, number, f"duplicate id {token!r}")
        ids[token] = None
    return list(ids)


def _load_matrix(path: Path) -> Any:
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if path.suffix == ".pt":
        return torch.load(path, weights_only=True)
    raise ValueError(f"{path}: expected a .npy or .pt feature file")


def load_features(source: FeatureSource) -> tuple[list[str], Tensor]:
    """``(ids, matrix)`` of a feature file (see the module docstring).

    Raises:
        DataFormatError: wrong content, duplicate ids, ids and rows that do not
            match, or non-finite values.
    """
    if isinstance(source, tuple):
        matrix_path, ids_path = require_file(source[0]), require_file(source[1])
        matrix = _load_matrix(matrix_path)
        ids = _read_ids(ids_path)
    else:
        matrix_path = ids_path = require_file(source)
        content = _load_matrix(matrix_path)
        if not isinstance(content, Mapping) or not {"ids", "x"} <= set(content):
            raise DataFormatError(
                matrix_path,
                None,
                "expected a dict {'ids': [...], 'x': matrix} (or pass a tuple "
                "(matrix file, ids file))",
            )
        ids, matrix = [str(token) for token in content["ids"]], content["x"]
        if len(set(ids)) != len(ids):
            raise DataFormatError(matrix_path, None, "duplicate ids")
    try:
        matrix = torch.as_tensor(np.asarray(matrix), dtype=torch.float)
    except (TypeError, ValueError) as error:
        raise DataFormatError(
            matrix_path, None, f"not a numeric matrix ({error})"
        ) from None
    if matrix.dim() != 2:
        raise DataFormatError(
            matrix_path, None, f"expected a 2-D matrix, got shape {tuple(matrix.shape)}"
        )
    if matrix.size(0) != len(ids):
        raise DataFormatError(
            ids_path, None, f"{len(ids)} ids for {matrix.size(0)} matrix rows"
        )
    bad = (~torch.isfinite(matrix)).any(dim=1).nonzero().view(-1)
    if bad.numel():
        raise DataFormatError(
            matrix_path, None, f"non-finite value in the row of id {ids[int(bad[0])]!r}"
        )
    return ids, matrix


def read_triples_kg(
    triples_path: PathLike,
    attributes_path: PathLike | None = None,
    *,
    tabs_in_values: bool = False,
) -> HeteroData:
    """One KG from a triples file and an optional attributes file (no features).

    Entities are those of the triples, then those only in attribute facts, in
    order of first appearance. ``tabs_in_values``: see :func:`read_attributes`.
    """
    entities, relations, attributes = Vocabulary(), Vocabulary(), Vocabulary()
    triples = read_triples(require_file(triples_path), entities, relations)
    facts = values = None
    if attributes_path is not None:
        facts, values = read_attributes(
            require_file(attributes_path),
            entities,
            attributes,
            tabs_in_values=tabs_in_values,
        )
    return make_kg(
        entities.tokens,
        triples,
        relations.tokens,
        attribute_facts=facts,
        attribute_values=values,
        attribute_names=attributes.tokens if facts is not None else None,
    )


def read_tsv_kg(
    triples_path: PathLike,
    *,
    attributes_path: PathLike | None = None,
    features: Mapping[str, FeatureSource] | None = None,
    normalize_features: bool = True,
    images_path: PathLike | None = None,
) -> HeteroData:
    """Read one KG from TSV files (layouts in the module docstring).

    Args:
        triples_path (str or os.PathLike): ``head<TAB>relation<TAB>tail`` lines.
        attributes_path (str or os.PathLike, optional):
            ``entity<TAB>attribute[<TAB>value]`` lines.
        features (dict, optional): Modality name -> feature file (a ``.pt``
            dict) or ``(matrix file, ids file)``. Rows of unknown ids are skipped
            with a warning.
        normalize_features (bool, optional): L2-normalise feature rows.
            (default: ``True``)
        images_path (str or os.PathLike, optional): ``entity<TAB>path-or-URL``
            lines, read by :func:`read_images` into ``kg["entity"].images``.
    """
    kg = read_triples_kg(triples_path, attributes_path)
    if images_path is not None:
        kg[ENTITY].images = read_images(images_path, kg[ENTITY].ids)
    for name, source in (features or {}).items():
        ids, matrix = load_features(source)
        attach_features(
            kg, name, ids, matrix, normalize=normalize_features, source=str(source)
        )
    return kg


def _directory_kwargs(directory: Path) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"triples_path": directory / TRIPLES_FILE}
    if (directory / ATTRIBUTES_FILE).is_file():
        kwargs["attributes_path"] = directory / ATTRIBUTES_FILE
    if (directory / IMAGES_FILE).is_file():
        kwargs["images_path"] = directory / IMAGES_FILE
    features: dict[str, FeatureSource] = {}
    for path in sorted((directory / FEATURES_DIR).glob("*")):
        if path.suffix not in (".pt", ".npy"):
            continue
        ids_path = path.with_suffix(IDS_SUFFIX)
        features[path.stem] = (path, ids_path) if ids_path.is_file() else path
    if features:
        kwargs["features"] = features
    return kwargs


def _as_kg(source: KGSource) -> HeteroData:
    if isinstance(source, HeteroData):
        return source
    if isinstance(source, Mapping):
        kwargs = dict(source)
        return read_tsv_kg(kwargs.pop("triples_path"), **kwargs)
    directory = Path(source)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such directory")
    return read_tsv_kg(**_directory_kwargs(directory))


def read_tsv_links(path: PathLike, source: HeteroData, target: HeteroData) -> Tensor:
    """Unique links of a ``source_id<TAB>target_id`` file, ``(2, L)``.

    Raises:
        DataFormatError: a malformed line, or an id that is no entity of its KG.
    """
    path = require_file(path)
    lookups = [
        {token: i for i, token in enumerate(kg[ENTITY].ids)} for kg in (source, target)
    ]
    rows: tuple[list[int], list[int]] = ([], [])
    for number, fields in iter_tab_fields(path, "source_id<TAB>target_id"):
        for side, token, lookup, row in zip(
            ("source", "target"), fields, lookups, rows
        ):
            index = lookup.get(token)
            if index is None:
                raise DataFormatError(
                    path, number, f"unknown {side} entity id {token!r}"
                )
            row.append(index)
    if not rows[0]:
        raise DataFormatError(path, None, "no links in file")
    return unique_columns(to_index_tensor(rows))


def read_tsv_pair(
    source: KGSource,
    target: KGSource,
    links_path: PathLike,
    *,
    name: str = "TSVPair",
) -> MMKGPair:
    """Read two KGs and their links into an unsplit :class:`MMKGPair`.

    Args:
        source: The source KG: a directory in the layout of the module
            docstring, a dict of :func:`read_tsv_kg` keyword arguments
            (``triples_path`` required), or an already read
            :class:`HeteroData`.
        target: The target KG, likewise.
        links_path (str or os.PathLike): ``source_id<TAB>target_id`` lines.
        name (str, optional): Pair name. (default: ``"TSVPair"``)
    """
    source_kg, target_kg = _as_kg(source), _as_kg(target)
    links = read_tsv_links(links_path, source_kg, target_kg)
    return MMKGPair(source_kg, target_kg, links, name=name)
