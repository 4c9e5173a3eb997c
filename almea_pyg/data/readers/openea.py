"""Reader of the OpenEA benchmark layout (Sun et al., 2020; nju-websoft/OpenEA).

A pair directory such as ``D_W_15K_V1/`` holds

* ``rel_triples_1``, ``rel_triples_2``: ``head<TAB>relation<TAB>tail`` (URIs);
* ``attr_triples_1``, ``attr_triples_2`` (optional): ``entity<TAB>attribute<TAB>value``,
  the value being the rest of the line (it may hold TABs), parsed as numbers,
  years or dates (:func:`~almea_pyg.data.readers.literals.literal_value`), NaN
  otherwise; entities only named here are added to the KG;
* ``ent_links``: ``entity_1<TAB>entity_2``, the alignment links;
* ``721_5fold/<k>/train_links``, ``valid_links``, ``test_links`` (optional): the
  benchmark's five splits of ``ent_links`` (20 % / 10 % / 70 %), ``k`` = 1..5.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from almea_pyg.data.errors import DataFormatError
from almea_pyg.data.pair import MMKGPair, link_keys
from almea_pyg.data.readers._utils import PathLike
from almea_pyg.data.readers.tsv import read_triples_kg, read_tsv_links
from almea_pyg.typing import ENTITY

logger = logging.getLogger(__name__)

#: The files a pair directory needs.
REQUIRED_FILES = ("rel_triples_1", "rel_triples_2", "ent_links")
#: The folder of the pre-computed splits, and the files of one split.
FOLDS_DIR = "721_5fold"
SPLIT_FILES = ("train_links", "valid_links", "test_links")


def fold_files(fold: int) -> list[str]:
    """The files of split ``fold``, relative to the pair directory."""
    return [f"{FOLDS_DIR}/{fold}/{name}" for name in SPLIT_FILES]


def _read_kg(directory: Path, side: int) -> HeteroData:
    attributes = directory / f"attr_triples_{side}"
    if not attributes.is_file():
        logger.warning("%s: not found, KG %d has no attributes", attributes, side)
    return read_triples_kg(
        directory / f"rel_triples_{side}",
        attributes if attributes.is_file() else None,
        tabs_in_values=True,
    )


def _read_split(
    directory: Path, fold: int, links: Tensor, source: HeteroData, target: HeteroData
) -> list[Tensor]:
    folder = directory / FOLDS_DIR / str(fold)
    if not folder.is_dir():
        found = sorted(p.name for p in (directory / FOLDS_DIR).glob("*") if p.is_dir())
        raise FileNotFoundError(
            f"{folder}: no such directory (folds here: {', '.join(found) or 'none'})"
        )
    num_targets = target[ENTITY].num_nodes
    known = link_keys(links, num_targets)
    split = []
    for name in SPLIT_FILES:
        part = read_tsv_links(folder / name, source, target)
        stray = ~torch.isin(link_keys(part, num_targets), known)
        if bool(stray.any()):
            raise DataFormatError(
                folder / name, None, f"{int(stray.sum())} links are not in ent_links"
            )
        split.append(part)
    return split


def read_openea_pair(
    directory: PathLike, *, fold: int | None = None, name: str | None = None
) -> MMKGPair:
    """Read an OpenEA pair directory into a :class:`MMKGPair`.

    Args:
        directory (str or os.PathLike): The pair directory (e.g. ``.../D_W_15K_V1``).
        fold (int, optional): Return the pair split into the train, valid and test
            links of ``721_5fold/<fold>/``; unsplit if ``None``. (default: ``None``)
        name (str, optional): Pair name. (default: the directory name)
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such directory")
    source, target = _read_kg(directory, 1), _read_kg(directory, 2)
    links = read_tsv_links(directory / "ent_links", source, target)
    name = name or directory.name
    if fold is None:
        return MMKGPair(source, target, links, name=name)
    train, valid, test = _read_split(directory, fold, links, source, target)
    return MMKGPair(
        source,
        target,
        links,
        train_links=train,
        valid_links=valid,
        test_links=test,
        name=name,
    )
