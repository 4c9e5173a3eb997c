"""Reader of the processed MMEA layout read by the MCLEA, MEAformer and ALMEA code.

The same layout, with ``ref_ent_ids`` for the links, is that of DBP15K as the
GCN-Align, JAPE and RDGCN code distribute it. A directory such as
``FB15K_DB15K/`` (or ``zh_en/``) holds

* ``ent_ids_1``, ``ent_ids_2``: ``id<TAB>name``, global ids (the second KG's ids
  usually continue after the first's);
* ``triples_1``, ``triples_2``: ``h<TAB>r<TAB>t`` in global entity and relation ids;
* ``ill_ent_ids`` (or, when it is absent, ``ref_ent_ids``): ``id1<TAB>id2``, the
  alignment links (first KG first);
* ``training_attrs_1``, ``training_attrs_2`` (optional): an entity name, then the
  names of its attributes, TAB-separated (no values: ``value`` is NaN);
* ``*_id_img_feature_dict.pkl`` (optional): a pickled ``{global id: vector}``,
  attached L2-normalised as ``x_img`` with mask ``x_img_mask``. Unpickling a
  file can run any code it holds, so it is read only with ``allow_pickle=True``.

Global ids become per-KG local indices in the order of ``ent_ids_*``; relation
``i`` of a KG is its ``i``-th smallest global relation id, named by that id.
"""

from __future__ import annotations

import logging
import pickle
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from almea_pyg.data.errors import DataFormatError
from almea_pyg.data.pair import MMKGPair
from almea_pyg.data.readers._utils import (
    TEXT_ENCODING,
    PathLike,
    Vocabulary,
    attach_features,
    check_link_ends,
    iter_lines,
    iter_tab_fields,
    make_kg,
    require_file,
    tab_columns,
    unique_columns,
)

logger = logging.getLogger(__name__)

IMAGE_PATTERN = "*_id_img_feature_dict.pkl"

#: The links file names, in the order they are looked for.
LINK_FILES = ("ill_ent_ids", "ref_ent_ids")


def _parse_ints(path: Path, number: int, fields: list[str], layout: str) -> list[int]:
    try:
        values = [int(field) for field in fields]
    except ValueError:
        raise DataFormatError(
            path, number, f"expected integer ids '{layout}', got {fields!r}"
        ) from None
    if min(values) < 0:
        raise DataFormatError(path, number, f"negative id in {fields!r}")
    return values


def _row_line(path: Path, row: int) -> int:
    """1-based line number of the ``row``-th non-blank line of ``path``."""
    for index, (number, _) in enumerate(iter_lines(path)):
        if index == row:
            return number
    raise IndexError(row)


def read_id_table(path: PathLike, layout: str) -> Tensor:
    """A TAB-separated table of non-negative integer ids, ``(rows, columns)``.

    Parsed by :func:`numpy.loadtxt` (fast); on failure the file is scanned line
    by line to name the first bad line.

    Args:
        path (str or os.PathLike): The file.
        layout (str): Its line layout, e.g. ``"h<TAB>r<TAB>t"``; the number of
            fields is the number of ``<TAB>`` plus one.
    """
    path = require_file(path)
    columns = tab_columns(layout)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            table = np.loadtxt(
                path,
                dtype=np.int64,
                delimiter="\t",
                ndmin=2,
                comments=None,
                encoding=TEXT_ENCODING,
            )
        valid = table.size == 0 or (table.shape[1] == columns and table.min() >= 0)
    except ValueError:
        valid = False
    if not valid:
        for number, fields in iter_tab_fields(path, layout):
            _parse_ints(path, number, fields, layout)
        raise DataFormatError(path, None, f"expected lines '{layout}'")
    if table.size == 0:
        raise DataFormatError(path, None, "no data in file")
    return torch.from_numpy(table)


def read_ent_ids(
    path: PathLike, taken: set[int] = frozenset()
) -> tuple[list[int], list[str]]:
    """Global ids and names of an ``id<TAB>name`` file, in file order.

    Args:
        path (str or os.PathLike): The ``ent_ids_*`` file.
        taken (set[int], optional): Ids already used by the other KG.
    """
    path = require_file(path)
    ids: list[int] = []
    names: list[str] = []
    seen_ids: set[int] = set()
    seen_names: set[str] = set()
    for number, fields in iter_tab_fields(path, "id<TAB>name"):
        (global_id,) = _parse_ints(path, number, fields[:1], "id<TAB>name")
        name = fields[1]
        if global_id in seen_ids or global_id in taken:
            raise DataFormatError(path, number, f"duplicate entity id {global_id}")
        if name in seen_names:
            raise DataFormatError(path, number, f"duplicate entity name {name!r}")
        seen_ids.add(global_id)
        seen_names.add(name)
        ids.append(global_id)
        names.append(name)
    if not ids:
        raise DataFormatError(path, None, "no entities in file")
    return ids, names


def _lookup_table(global_ids: list[int]) -> Tensor:
    """``table[global id] = local index`` (-1 elsewhere)."""
    ids = torch.tensor(global_ids, dtype=torch.long)
    table = torch.full((int(ids.max()) + 1,), -1, dtype=torch.long)
    table[ids] = torch.arange(ids.numel())
    return table


def _to_local(table: Tensor, ids: Tensor, path: Path, what: str) -> Tensor:
    """Map global ids to local indices; a :class:`DataFormatError` on unknown ids."""
    inside = ids < table.numel()
    local = torch.where(inside, table[ids.clamp(max=table.numel() - 1)], -1)
    bad = (local < 0).nonzero().view(-1)
    if bad.numel():
        row = int(bad[0])
        raise DataFormatError(
            path,
            _row_line(path, row),
            f"unknown entity id {int(ids[row])} (not in {what})",
        )
    return local


def read_id_triples(path: PathLike, table: Tensor, what: str) -> tuple[Tensor, Tensor]:
    """Unique ``(head, relation, tail)`` triples in local indices.

    Heads and tails are mapped by ``table`` (global id -> local index); relation
    ``i`` is the ``i``-th smallest global relation id.

    Returns:
        ``(triples (3, E), global relation ids (R,))``.
    """
    path = Path(path)
    triples = read_id_table(path, "h<TAB>r<TAB>t").t()
    heads = _to_local(table, triples[0], path, what)
    tails = _to_local(table, triples[2], path, what)
    relation_ids, relations = np.unique(triples[1].numpy(), return_inverse=True)
    triples = torch.stack([heads, torch.from_numpy(relations).view(-1), tails])
    return unique_columns(triples), torch.from_numpy(relation_ids)


def read_ill_links(path: PathLike, tables: tuple[Tensor, Tensor]) -> Tensor:
    """Links of an ``id1<TAB>id2`` file as local indices, ``(2, L)``, unique."""
    path = Path(path)
    links = read_id_table(path, "id1<TAB>id2").t()
    return unique_columns(
        torch.stack(
            [
                _to_local(tables[0], links[0], path, "ent_ids_1"),
                _to_local(tables[1], links[1], path, "ent_ids_2"),
            ]
        )
    )


def read_training_attrs(
    path: PathLike, names: dict[str, int]
) -> tuple[Tensor, list[str]]:
    """Unique ``(entity, attribute)`` facts of a ``training_attrs_*`` file.

    Lines naming an entity absent from ``names`` are skipped (as the MCLEA
    loader does); how many is logged.
    """
    attributes = Vocabulary()
    rows: tuple[list[int], list[int]] = ([], [])
    skipped = 0
    for _, line in iter_lines(path):
        fields = line.split("\t")
        entity = names.get(fields[0])
        if entity is None:
            skipped += 1
            continue
        for attribute in fields[1:]:
            if attribute:
                rows[0].append(entity)
                rows[1].append(attributes.add(attribute))
    if skipped:
        logger.info(
            "%s: %d lines name unknown entities, skipped", Path(path).name, skipped
        )
    return unique_columns(torch.tensor(rows, dtype=torch.long)), attributes.tokens


def _read_side(
    directory: Path, side: int, ids: list[int], names: list[str]
) -> HeteroData:
    table = _lookup_table(ids)
    triples, relation_ids = read_id_triples(
        directory / f"triples_{side}", table, f"ent_ids_{side}"
    )
    attrs_path = directory / f"training_attrs_{side}"
    facts = attribute_names = None
    if attrs_path.is_file():
        facts, attribute_names = read_training_attrs(
            attrs_path, {name: i for i, name in enumerate(names)}
        )
    return make_kg(
        names,
        triples,
        [str(r) for r in relation_ids.tolist()],
        attribute_facts=facts,
        attribute_names=attribute_names,
    )


def _image_path(
    directory: Path, image_path: PathLike | None, allow_pickle: bool
) -> Path | None:
    """The image pickle to read: ``image_path`` or the one found in ``directory``.

    ``None`` without one, or when one is found but ``allow_pickle`` is off (a
    warning says how to opt in).
    """
    if image_path is not None:
        if not allow_pickle:
            raise ValueError(
                f"{image_path}: reading a pickle can run any code it holds; "
                "pass allow_pickle=True as well if you trust the file"
            )
        return require_file(image_path)
    found = sorted(directory.glob(IMAGE_PATTERN))
    if found and not allow_pickle:
        logger.warning(
            "%s: image features not read, since unpickling a file can run any "
            "code it holds; pass allow_pickle=True if you trust the file",
            ", ".join(str(path) for path in found),
        )
        return None
    if len(found) > 1:
        raise ValueError(
            f"{directory}: several image feature files {[p.name for p in found]}; "
            "pass image_path= to choose one"
        )
    return found[0] if found else None


def _load_image_dict(path: Path) -> dict[int, np.ndarray]:
    with path.open("rb") as handle:
        vectors = pickle.load(handle)
    if not isinstance(vectors, dict) or not vectors:
        raise DataFormatError(
            path, None, "expected a non-empty pickled dict id -> vector"
        )
    try:
        return {int(key): np.asarray(value) for key, value in vectors.items()}
    except (TypeError, ValueError) as error:
        raise DataFormatError(
            path, None, f"expected integer ids as keys ({error})"
        ) from None


def links_file(directory: Path) -> Path:
    """The first of :data:`LINK_FILES` in ``directory``."""
    for name in LINK_FILES:
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(
        f"{directory / LINK_FILES[0]}: no such file (nor {LINK_FILES[1]})"
    )


def read_mmea_pair(
    directory: PathLike,
    *,
    image_path: PathLike | None = None,
    allow_pickle: bool = False,
    name: str | None = None,
) -> MMKGPair:
    """Read a processed MMEA directory into an unsplit :class:`MMKGPair`.

    Args:
        directory (str or os.PathLike): The directory (e.g. ``.../FB15K_DB15K``).
        image_path (str or os.PathLike, optional): A pickled ``{global id:
            vector}``; by default the one ``*_id_img_feature_dict.pkl`` in
            ``directory``, if any. Needs ``allow_pickle=True``.
        allow_pickle (bool, optional): Read the image pickle. Unpickling runs
            any code the file holds: only for files you trust. Without it a
            found pickle is skipped with a warning (no ``x_img``), and passing
            ``image_path`` raises :class:`ValueError`. (default: ``False``)
        name (str, optional): Pair name. (default: the directory name)
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such directory")
    ids_1, names_1 = read_ent_ids(directory / "ent_ids_1")
    ids_2, names_2 = read_ent_ids(directory / "ent_ids_2", set(ids_1))
    source = _read_side(directory, 1, ids_1, names_1)
    target = _read_side(directory, 2, ids_2, names_2)
    links_path = links_file(directory)
    links = read_ill_links(links_path, (_lookup_table(ids_1), _lookup_table(ids_2)))
    check_link_ends(links_path, links, (("KG 1", source), ("KG 2", target)))

    path = _image_path(directory, image_path, allow_pickle)
    if path is not None:
        vectors = _load_image_dict(path)
        names_by_id = dict(zip(ids_1 + ids_2, names_1 + names_2))
        unknown = sum(key not in names_by_id for key in vectors)
        if unknown:
            logger.warning("%s: %d vectors name no entity", path.name, unknown)
        dim = len(next(iter(vectors.values())))
        for kg, side_ids in ((source, ids_1), (target, ids_2)):
            keys = [key for key in side_ids if key in vectors]
            rows = [vectors[key] for key in keys] or np.zeros((0, dim))
            attach_features(
                kg,
                "img",
                [names_by_id[key] for key in keys],
                np.stack(rows).astype(np.float32),
                source=path.name,
            )
    return MMKGPair(source, target, links, name=name or directory.name)
