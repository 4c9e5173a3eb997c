"""Label files for a person answering an active-learning round (CSV round trip).

A request lists the round's pairs with both sides' original identifiers, a
readable name where one is known, and the model's score; the person fills the
``label`` column with ``yes`` or ``no``, or leaves it empty for no answer.
Reading it back validates everything before anything is used, so a malformed
file never costs labels already given. Files saved by a spreadsheet are read
as they come: UTF-8 with or without a byte-order mark, separated by commas,
semicolons or tabs. Identifiers and names that a spreadsheet would run as a
formula are written behind a ``'`` (OWASP's CSV-injection advice).

An entity question (what is a's counterpart, or none?) is answered in the same
file: ``yes`` on the asked row, or another target's id in the row (or a row
added for it) with ``yes``, or ``no`` for none.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from almea_pyg.active.oracles import OracleAnswer, QuestionKind
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
REQUIRED = {"source_id", "target_id", "label"}
DELIMITERS = (",", ";", "\t")
ANSWERS = {"yes": True, "no": False}
#: First characters that make a spreadsheet read a cell as a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

log = logging.getLogger(__name__)


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


def escape_cell(text: str) -> str:
    """Put a ``'`` before ``text`` if a spreadsheet would run it as a formula.

    Text already quoted that way gets one more ``'``, so that
    :func:`unescape_cell` gives every text back unchanged.
    """
    return "'" + text if text.lstrip("'").startswith(FORMULA_START) else text


def unescape_cell(text: str) -> str:
    """Undo :func:`escape_cell`; a cell the spreadsheet saved unquoted is kept."""
    if text.startswith("'") and text.lstrip("'").startswith(FORMULA_START):
        return text[1:]
    return text


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
                escape_cell(src_ids[s]),
                escape_cell(tgt_ids[t]),
                escape_cell(src_names[s]),
                escape_cell(tgt_names[t]),
                f"{score:.4f}",
                "",
            ]
        )
    return atomic_write_text(buffer.getvalue(), path)


def _read_text(path: Path) -> str:
    """The file as UTF-8 text (a byte-order mark dropped), else a clear error."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        byte = data[error.start : error.start + 1].hex()
        raise DataFormatError(
            path,
            line,
            f"not UTF-8 text (byte 0x{byte}); save the file as UTF-8 "
            f"(in Excel: 'CSV UTF-8')",
        ) from None


def _label_reader(path: Path, text: str) -> csv.DictReader:
    """A reader over ``text`` split by the delimiter that yields the columns."""
    header = text.splitlines()[0] if text else ""
    for delimiter in DELIMITERS:
        names = next(csv.reader([header], delimiter=delimiter))
        names = [name.strip() for name in names]
        if REQUIRED <= set(names):
            reader = csv.DictReader(
                io.StringIO(text, newline=""), names, delimiter=delimiter
            )
            next(reader)  # the header line
            return reader
    found = next(csv.reader([header]), [])
    raise DataFormatError(
        path,
        1,
        f"missing column(s) {sorted(REQUIRED - set(found))} in the header "
        f"{header!r}; expected {','.join(FIELDS)!r}, separated by commas, "
        f"semicolons or tabs",
    )


def _is_blank(row: dict) -> bool:
    return not any(isinstance(value, str) and value.strip() for value in row.values())


def unanswered_pairs(answer: OracleAnswer, asked: Tensor) -> Tensor:
    """The pairs of ``asked`` ``(2, n)`` that ``answer`` neither accepts nor rejects."""
    answered = torch.cat([answer.accepted, answer.rejected], dim=1)
    targets = torch.cat([asked[1], answered[1]])
    num_targets = int(targets.max()) + 1 if targets.numel() else 1
    keys = link_keys(answered, num_targets)
    return asked[:, ~torch.isin(link_keys(asked, num_targets), keys)]


def _warn_unanswered(
    path: Path, answer: OracleAnswer, asked: Tensor | None, blank: int
) -> None:
    if asked is not None:
        missing = unanswered_pairs(answer, asked).size(1)
        if missing:
            log.warning(
                "%s: %d of %d asked pairs have no answer (rows deleted or label "
                "empty); they stay unlabelled",
                path.name,
                missing,
                asked.size(1),
            )
    elif blank:
        log.warning(
            "%s: %d rows have no answer (label empty); they stay unlabelled",
            path.name,
            blank,
        )


def read_labels(
    path: str | os.PathLike,
    pair: MMKGPair,
    *,
    asked: Tensor | None = None,
    question: QuestionKind = "pair",
) -> OracleAnswer:
    """Validate a filled label file and return the accepted and rejected pairs.

    For an entity ``question`` (``asked`` needed) a row may name another target
    for an asked source: a ``yes`` there is the source's counterpart, and the
    asked pair is then rejected; a source with only ``no`` has no counterpart.

    A row whose label is empty, or a row deleted, leaves its pair unanswered: it
    is in neither part of the answer, and a warning counts such pairs (see
    :func:`unanswered_pairs`). Raises
    :class:`~almea_pyg.data.errors.DataFormatError` naming the row for: text
    that is not UTF-8, a missing column, an unknown source or target id, a
    duplicate pair, a value other than yes/no, a pair that was not asked (when
    ``asked`` is given; for an entity question, a source that was not asked), and
    a source (or target) given two different "yes" partners; and naming the file
    when no pair is answered at all.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if question == "entity" and asked is None:
        raise ValueError("an entity question's answers are read against the asked")
    src_index = {e: i for i, e in enumerate(entity_ids(pair.source))}
    tgt_index = {e: i for i, e in enumerate(entity_ids(pair.target))}
    num_targets = pair.num_entities[1]
    asked_keys = (
        set(link_keys(asked, num_targets).tolist()) if asked is not None else None
    )
    asked_sources = set(asked[0].tolist()) if question == "entity" else None
    seen: dict[tuple[int, int], int] = {}
    yes_source: dict[int, int] = {}
    yes_target: dict[int, int] = {}
    rows: list[tuple[int, int, bool]] = []
    blank = 0
    reader = _label_reader(path, _read_text(path))
    try:
        for row in reader:
            line = reader.line_num
            if _is_blank(row):
                continue
            source_id = unescape_cell(row["source_id"] or "")
            target_id = unescape_cell(row["target_id"] or "")
            s = src_index.get(source_id)
            t = tgt_index.get(target_id)
            if s is None:
                raise DataFormatError(path, line, f"unknown source id {source_id!r}")
            if t is None:
                raise DataFormatError(path, line, f"unknown target id {target_id!r}")
            value = (row["label"] or "").strip().lower()
            if value and value not in ANSWERS:
                raise DataFormatError(
                    path,
                    line,
                    f"label must be yes or no (or empty for no answer), "
                    f"got {row['label']!r}",
                )
            if (s, t) in seen:
                raise DataFormatError(
                    path, line, f"duplicate of the pair on line {seen[s, t]}"
                )
            seen[s, t] = line
            if asked_sources is not None:
                if s not in asked_sources:
                    raise DataFormatError(
                        path, line, "this source was not asked in the round"
                    )
            elif asked_keys is not None and s * num_targets + t not in asked_keys:
                raise DataFormatError(
                    path, line, "this pair was not asked in the round"
                )
            if not value:
                blank += 1
                continue
            if ANSWERS[value]:
                for side, index, used, name in (
                    ("source", s, yes_source, source_id),
                    ("target", t, yes_target, target_id),
                ):
                    if index in used:
                        raise DataFormatError(
                            path,
                            line,
                            f"{side} {name!r} already matched on line "
                            f"{used[index]}: a {side} has at most one partner",
                        )
                    used[index] = line
            rows.append((s, t, ANSWERS[value]))
    except csv.Error as error:
        raise DataFormatError(path, reader.line_num, str(error)) from None
    if not rows:
        raise DataFormatError(
            path, None, "no pair is answered: fill the label column with yes or no"
        )
    pairs = (
        torch.tensor([[s, t] for s, t, _ in rows], dtype=torch.long).reshape(-1, 2).t()
    )
    yes = torch.tensor([answer for _, _, answer in rows], dtype=torch.bool)
    answer = OracleAnswer(pairs[:, yes], pairs[:, ~yes])
    if question == "entity":
        answer = _reject_replaced(answer, asked.cpu(), num_targets)
    _warn_unanswered(path, answer, asked, blank)
    return answer


def _reject_replaced(
    answer: OracleAnswer, asked: Tensor, num_targets: int
) -> OracleAnswer:
    """``answer`` with the asked pairs whose source got another target as "no"."""
    asked_keys = link_keys(asked, num_targets)
    replaced = torch.isin(asked[0], answer.accepted[0])
    replaced &= ~torch.isin(asked_keys, link_keys(answer.accepted, num_targets))
    replaced &= ~torch.isin(asked_keys, link_keys(answer.rejected, num_targets))
    return OracleAnswer(
        answer.accepted, torch.cat([answer.rejected, asked[:, replaced]], dim=1)
    )
