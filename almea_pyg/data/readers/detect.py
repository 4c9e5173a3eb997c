"""Read the KG pair of a directory in any supported layout: :func:`read_pair`.

The layout is told by the files present (:data:`LAYOUTS` lists what each needs),
then its reader is called and the relation and attribute features are built.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from almea_pyg.data.errors import DataFormatError
from almea_pyg.data.features import DEFAULT_TOP_K, BuildModalityFeatures
from almea_pyg.data.pair import MMKGPair
from almea_pyg.data.readers._utils import PathLike
from almea_pyg.data.readers.mmea import LINK_FILES, read_mmea_pair
from almea_pyg.data.readers.mmkb import mmkb_file, read_mmkb_pair
from almea_pyg.data.readers.openea import REQUIRED_FILES, read_openea_pair
from almea_pyg.data.readers.tsv import PAIR_FILES, TRIPLES_FILE, read_tsv_pair

logger = logging.getLogger(__name__)

Layout = Literal["mmkb", "mmea", "openea", "tsv"]

#: Every supported layout and the files it needs (as errors and docs show them).
LAYOUTS: dict[str, str] = {
    "mmkb": "two KG folders <KG>/<KG>_EntityTriples.txt (e.g. FB15K/, DB15K/), "
    "the target's with <KG>_SameAsLink.txt",
    "mmea": "ent_ids_1, ent_ids_2, triples_1, triples_2 and ill_ent_ids or "
    "ref_ent_ids (MCLEA/MEAformer; DBP15K of GCN-Align, JAPE, RDGCN)",
    "openea": "rel_triples_1, rel_triples_2, ent_links "
    "(attr_triples_1/2 and 721_5fold/<k>/ optional)",
    "tsv": "source/triples.tsv, target/triples.tsv, links.tsv",
}

MMEA_FILES = ("ent_ids_1", "ent_ids_2", "triples_1", "triples_2")
TSV_FILES = (f"{PAIR_FILES[0]}/{TRIPLES_FILE}", f"{PAIR_FILES[1]}/{TRIPLES_FILE}")


def mmkb_kgs(directory: Path) -> list[str]:
    """Names of the mmkb KG folders in ``directory`` (sorted)."""
    return sorted(
        folder.name
        for folder in directory.iterdir()
        if (folder / f"{folder.name}_EntityTriples.txt").is_file()
    )


def _has(directory: Path, *names: str) -> bool:
    return all((directory / name).is_file() for name in names)


FITS: dict[str, Callable[[Path], bool]] = {
    "mmkb": lambda d: len(mmkb_kgs(d)) >= 2,
    "mmea": lambda d: _has(d, *MMEA_FILES) and any(_has(d, n) for n in LINK_FILES),
    "openea": lambda d: _has(d, *REQUIRED_FILES),
    "tsv": lambda d: _has(d, *TSV_FILES, PAIR_FILES[2]),
}


def detect_layout(directory: PathLike) -> Layout:
    """The one layout of :data:`LAYOUTS` whose files ``directory`` holds.

    Raises:
        FileNotFoundError: ``directory`` is not a directory.
        DataFormatError: no layout fits (the message lists each layout and its
            files), or several do (pass ``layout=`` to :func:`read_pair`).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such directory")
    found = [layout for layout, fits in FITS.items() if fits(directory)]
    if not found:
        listing = "".join(f"\n  {name}: {files}" for name, files in LAYOUTS.items())
        raise DataFormatError(
            directory,
            None,
            f"no supported KG-pair layout found in {directory}; the layouts and "
            f"the files each needs:{listing}",
        )
    if len(found) > 1:
        raise DataFormatError(
            directory,
            None,
            f"the files fit several layouts ({', '.join(found)}); pass layout= "
            "to choose one",
        )
    return found[0]


def _read_mmkb(
    directory: Path,
    *,
    source: str | None = None,
    target: str | None = None,
    **kwargs: Any,
) -> MMKGPair:
    """:func:`read_mmkb_pair`; without ``source`` and ``target``, the two KG
    folders, the one with a ``SameAsLink`` file the target."""
    if source is not None or target is not None:
        names = {k: v for k, v in (("source", source), ("target", target)) if v}
        return read_mmkb_pair(directory, **names, **kwargs)
    kgs = mmkb_kgs(directory)
    linked = [kg for kg in kgs if mmkb_file(directory, kg, "SameAsLink").is_file()]
    if len(kgs) != 2 or len(linked) != 1:
        raise DataFormatError(
            directory,
            None,
            f"mmkb KGs {kgs}, {linked} with a SameAsLink file: which pair to read "
            "is ambiguous; pass source= and target=, e.g. "
            "read_pair(path, source='FB15K', target='DB15K')",
        )
    (other,) = set(kgs) - set(linked)
    return read_mmkb_pair(directory, other, linked[0], **kwargs)


def _read_tsv(directory: Path, *, name: str | None = None) -> MMKGPair:
    source, target, links = (directory / part for part in PAIR_FILES)
    return read_tsv_pair(source, target, links, name=name or directory.name)


READERS: dict[str, Callable[..., MMKGPair]] = {
    "mmkb": _read_mmkb,
    "mmea": read_mmea_pair,
    "openea": read_openea_pair,
    "tsv": _read_tsv,
}


def read_pair(
    path: PathLike,
    *,
    layout: Layout | None = None,
    top_k: int = DEFAULT_TOP_K,
    **kwargs: Any,
) -> MMKGPair:
    """Read the KG pair in directory ``path``, whatever its supported layout.

    The layout is detected from the files present (:func:`detect_layout`); the
    pair comes back with its relation and attribute features built
    (:class:`~almea_pyg.data.features.BuildModalityFeatures`), unsplit unless
    the reader splits it (OpenEA with ``fold=``).

    Args:
        path (str or os.PathLike): The pair directory.
        layout (str, optional): One of :data:`LAYOUTS`, to skip detection.
        top_k (int, optional): Relations and attributes kept as features.
            (default: ``1000``)
        **kwargs: Passed to the layout's reader: ``source=``, ``target=``,
            ``image_features=`` (mmkb), ``allow_pickle=``, ``image_path=``
            (mmea), ``fold=`` (openea), ``name=`` (all).

    Example:
        >>> pair = read_pair("data/zh_en").split(0.3, seed=0)
    """
    path = Path(path)
    if layout is None:
        layout = detect_layout(path)
    elif layout not in READERS:
        raise ValueError(f"layout must be one of {sorted(READERS)}, got {layout!r}")
    logger.info("%s: reading the %s layout", path, layout)
    pair = READERS[layout](path, **kwargs)
    return BuildModalityFeatures(top_k=top_k)(pair)
