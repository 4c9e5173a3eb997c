"""Label files for a person answering an active-learning round (CSV round trip).

A request lists the round's pairs with both sides' original identifiers, a
readable name where one is known, and the model's score; the person fills the
``label`` column with ``yes`` or ``no``. Reading it back validates everything
before anything is used, so a malformed file never costs labels already given.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from almea_pyg.active.oracles import OracleAnswer
from almea_pyg.data.errors import DataFormatError
from almea_pyg.data.pair import MMKGPair, link_keys
from almea_pyg.io import atomic_write_text
from almea_pyg.typing import ENTITY

FIELDS = [
    "round",
    "source_id",
    "target_id",
    "source_name",
    "target_name",
    "score",
    "label",
]
ANSWERS = {"yes": True, "no": False}


def entity_ids(kg: HeteroData) -> list[str]:
    """Original identifiers of ``kg``'s entities (their indices when none are kept)."""
    ids = kg[ENTITY].get("ids")
    return (
        list(ids) if ids is not None else [str(i) for i in range(kg[ENTITY].num_nodes)]
    )


def display_name(entity_id: str) -> str:
    """A readable name from an identifier: the last segment of a URI, else ``""``."""
    text = entity_id.strip("<>")
    if "://" not in text:
        return ""
    return text.rstrip("/").rsplit("/", 1)[-1].replace("_", " ")


def entity_names(kg: HeteroData) -> list[str]:
    names = kg[ENTITY].get("names")
    return (
        list(names) if names is not None else [display_name(i) for i in entity_ids(kg)]
    )


def write_label_request(
    path: str | os.PathLike, pair: MMKGPair, pairs: Tensor, scores: Tensor, round: int
) -> Path:
    """Write the pairs ``(2, n)`` to a CSV for a person to label (atomically)."""
    path = Path(path)
    src_ids, tgt_ids = entity_ids(pair.source), entity_ids(pair.target)
    src_names, tgt_names = entity_names(pair.source), entity_names(pair.target)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(FIELDS)
    for (s, t), score in zip(pairs.t().tolist(), scores.tolist()):
        writer.writerow(
            [
                round,
                src_ids[s],
                tgt_ids[t],
                src_names[s],
                tgt_names[t],
                f"{score:.4f}",
                "",
            ]
        )
    return atomic_write_text(buffer.getvalue(), path)


def read_labels(
    path: str | os.PathLike, pair: MMKGPair, *, asked: Tensor | None = None
) -> OracleAnswer:
    """Validate a filled label file and return the accepted and rejected pairs.

    Raises :class:`~almea_pyg.data.errors.DataFormatError` naming the row for:
    a missing column, an unknown source or target id, a duplicate pair, a value
    other than yes/no, a pair that was not asked (when ``asked`` is given), and a
    source (or target) given two different "yes" partners.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    src_index = {e: i for i, e in enumerate(entity_ids(pair.source))}
    tgt_index = {e: i for i, e in enumerate(entity_ids(pair.target))}
    num_targets = pair.num_entities[1]
    asked_keys = (
        set(link_keys(asked, num_targets).tolist()) if asked is not None else None
    )
    seen: dict[tuple[int, int], int] = {}
    yes_source: dict[int, int] = {}
    yes_target: dict[int, int] = {}
    rows: list[tuple[int, int, bool]] = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"source_id", "target_id", "label"} - set(reader.fieldnames or [])
        if missing:
            raise DataFormatError(path, 1, f"missing column(s) {sorted(missing)}")
        for row in reader:
            line = reader.line_num
            s = src_index.get(row["source_id"])
            t = tgt_index.get(row["target_id"])
            if s is None:
                raise DataFormatError(
                    path, line, f"unknown source id {row['source_id']!r}"
                )
            if t is None:
                raise DataFormatError(
                    path, line, f"unknown target id {row['target_id']!r}"
                )
            value = (row["label"] or "").strip().lower()
            if value not in ANSWERS:
                raise DataFormatError(
                    path, line, f"label must be yes or no, got {row['label']!r}"
                )
            if (s, t) in seen:
                raise DataFormatError(
                    path, line, f"duplicate of the pair on line {seen[s, t]}"
                )
            seen[s, t] = line
            if asked_keys is not None and s * num_targets + t not in asked_keys:
                raise DataFormatError(
                    path, line, "this pair was not asked in the round"
                )
            if ANSWERS[value]:
                for side, index, used in (
                    ("source", s, yes_source),
                    ("target", t, yes_target),
                ):
                    if index in used:
                        raise DataFormatError(
                            path,
                            line,
                            f"{side} {row[side + '_id']!r} already matched on line "
                            f"{used[index]}: a {side} has at most one partner",
                        )
                    used[index] = line
            rows.append((s, t, ANSWERS[value]))
    pairs = (
        torch.tensor([[s, t] for s, t, _ in rows], dtype=torch.long).reshape(-1, 2).t()
    )
    yes = torch.tensor([answer for _, _, answer in rows], dtype=torch.bool)
    return OracleAnswer(pairs[:, yes], pairs[:, ~yes])
