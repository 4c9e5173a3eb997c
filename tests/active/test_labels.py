import csv
import logging

import pytest
import torch

from almea_pyg.active import read_labels, write_label_request
from almea_pyg.active.labels import display_name, unanswered_pairs
from almea_pyg.data import DataFormatError, make_synthetic_pair


@pytest.fixture(scope="module")
def pair():
    return make_synthetic_pair(num_entities=60, seed=0)


def request(pair, tmp_path, n=4):
    pairs = pair.links[:, :n]
    path = write_label_request(tmp_path / "r.csv", pair, pairs, torch.rand(n), round=1)
    return path, pairs


def fill(path, labels, edit=None, *, encoding="utf-8", delimiter=","):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row, label in zip(rows, labels):
        row["label"] = label
    if edit is not None:
        edit(rows)
    with open(path, "w", newline="", encoding=encoding) as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)


def test_round_trip(pair, tmp_path):
    path, pairs = request(pair, tmp_path)
    with open(path) as f:
        header = f.readline().strip().split(",")
    assert header[:3] == ["round", "source_id", "target_id"] and header[-1] == "label"
    fill(path, ["yes", "No", "no", " YES "])
    answer = read_labels(path, pair, asked=pairs)
    assert answer.accepted.tolist() == pairs[:, [0, 3]].tolist()
    assert answer.rejected.tolist() == pairs[:, [1, 2]].tolist()
    assert not list(tmp_path.glob("*.tmp"))


def set_row(index, key, value):
    def edit(rows):
        rows[index][key] = value

    return edit


def duplicate_row(rows):
    rows.append(dict(rows[0]))


def second_partner(rows):
    rows[1]["source_id"] = rows[0]["source_id"]


@pytest.mark.parametrize(
    "labels, edit, line, message",
    [
        (["yes", "maybe", "no", "no"], None, 3, "label must be yes or no"),
        (["yes", "TRUE", "no", "no"], None, 3, "label must be yes or no"),
        (["yes", "1", "no", "no"], None, 3, "label must be yes or no"),
        (["no"] * 4, set_row(2, "source_id", "s:nope"), 4, "unknown source id"),
        (["no"] * 4, set_row(0, "target_id", "t:nope"), 2, "unknown target id"),
        (["no"] * 4, duplicate_row, 6, "duplicate of the pair on line 2"),
        (["yes", "yes", "no", "no"], second_partner, 3, "at most one partner"),
    ],
)
def test_malformed_files_name_the_row(pair, tmp_path, labels, edit, line, message):
    path, pairs = request(pair, tmp_path)
    fill(path, labels, edit)
    with pytest.raises(DataFormatError, match=message) as info:
        read_labels(path, pair, asked=None if edit is second_partner else pairs)
    assert info.value.line == line and info.value.path == path


def test_pairs_not_asked_are_rejected(pair, tmp_path):
    path, pairs = request(pair, tmp_path)
    fill(path, ["no"] * 4)
    with pytest.raises(DataFormatError, match="not asked"):
        read_labels(path, pair, asked=pairs[:, :2])


def test_missing_column(pair, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("source_id,target_id\n")
    with pytest.raises(DataFormatError, match="missing column"):
        read_labels(path, pair)


def test_display_name():
    assert (
        display_name("<http://dbpedia.org/resource/Andy_Griffith>") == "Andy Griffith"
    )
    assert display_name("/m/01m4kpp") == ""


def drop_round(rows):
    for row in rows:
        del row["round"]


@pytest.mark.parametrize(
    "encoding, delimiter",
    [("utf-8-sig", ","), ("utf-8", ";"), ("utf-8-sig", ";"), ("utf-8", "\t")],
)
def test_spreadsheet_csv_dialects(pair, tmp_path, encoding, delimiter):
    # the unused round column deleted: the BOM then lands on source_id
    path, pairs = request(pair, tmp_path)
    fill(
        path,
        ["Yes", "no", " NO ", "yes"],
        drop_round,
        encoding=encoding,
        delimiter=delimiter,
    )
    answer = read_labels(path, pair, asked=pairs)
    assert answer.accepted.tolist() == pairs[:, [0, 3]].tolist()
    assert answer.rejected.tolist() == pairs[:, [1, 2]].tolist()


def test_unknown_header_names_what_was_found(pair, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("round|source_id|target_id|label\n1|a|b|yes\n")
    with pytest.raises(DataFormatError, match="missing column") as info:
        read_labels(path, pair)
    message = str(info.value)
    assert "round|source_id|target_id|label" in message
    assert "semicolons" in message and "source_id" in message
    assert info.value.line == 1


def delete_row(index):
    def edit(rows):
        del rows[index]

    return edit


def add_blank_row(rows):
    rows.append({key: "" for key in rows[0]})


@pytest.mark.parametrize(
    "labels, edit, missing",
    [
        (["yes", "", "no", ""], None, [1, 3]),
        (["yes", "no", "no", "no"], delete_row(3), [3]),
        (["yes", "", "no", "no"], delete_row(3), [1, 3]),
        (["yes", "", "no", "no"], add_blank_row, [1]),
    ],
)
def test_blank_or_deleted_rows_are_unanswered(
    pair, tmp_path, caplog, labels, edit, missing
):
    path, pairs = request(pair, tmp_path)
    fill(path, labels, edit)
    with caplog.at_level(logging.WARNING, logger="almea_pyg.active.labels"):
        answer = read_labels(path, pair, asked=pairs)
    assert answer.accepted.tolist() == pairs[:, [0]].tolist()
    assert unanswered_pairs(answer, pairs).tolist() == pairs[:, missing].tolist()
    assert f"{len(missing)} of 4 asked pairs have no answer" in caplog.text


def test_blank_labels_without_asked_are_logged(pair, tmp_path, caplog):
    path, _ = request(pair, tmp_path)
    fill(path, ["yes", "", "no", ""])
    with caplog.at_level(logging.WARNING, logger="almea_pyg.active.labels"):
        answer = read_labels(path, pair)
    assert answer.accepted.size(1) + answer.rejected.size(1) == 2
    assert "2 rows have no answer" in caplog.text


def test_blank_label_still_validates_the_row(pair, tmp_path):
    path, pairs = request(pair, tmp_path)
    fill(path, ["yes", "", "no", "no"], set_row(1, "source_id", "s:nope"))
    with pytest.raises(DataFormatError, match="unknown source id") as info:
        read_labels(path, pair, asked=pairs)
    assert info.value.line == 3


def test_a_file_with_no_answer_is_rejected(pair, tmp_path):
    path, pairs = request(pair, tmp_path)
    with pytest.raises(DataFormatError, match="no pair is answered"):
        read_labels(path, pair, asked=pairs)


def test_formula_like_cells_are_quoted_and_round_trip(tmp_path):
    pair = make_synthetic_pair(num_entities=60, seed=0)
    ids = [f"s{i}" for i in range(pair.num_entities[0])]
    names = ["" for _ in ids]
    s, t = pair.links[:, 0].tolist()
    ids[s], names[s] = '=HYPERLINK("http://x","y")', "+1"
    tgt_ids = [f"t{i}" for i in range(pair.num_entities[1])]
    tgt_ids[t] = "'=already quoted"
    pair.source["entity"].ids, pair.source["entity"].names = ids, names
    pair.target["entity"].ids = tgt_ids
    path, pairs = request(pair, tmp_path, n=1)
    with open(path, newline="", encoding="utf-8") as f:
        row = next(csv.DictReader(f))
    assert row["source_id"] == '\'=HYPERLINK("http://x","y")'
    assert row["source_name"] == "'+1"
    assert row["target_id"] == "''=already quoted"
    fill(path, ["yes"])
    assert read_labels(path, pair, asked=pairs).accepted.tolist() == pairs.tolist()


def test_unquoted_formula_like_ids_are_read_as_is(tmp_path):
    # a spreadsheet drops the quote prefix when it saves the cell as text
    pair = make_synthetic_pair(num_entities=60, seed=0)
    ids = [f"s{i}" for i in range(pair.num_entities[0])]
    s = int(pair.links[0, 0])
    ids[s] = "-x"
    pair.source["entity"].ids = ids
    path, pairs = request(pair, tmp_path, n=1)
    fill(path, ["yes"], set_row(0, "source_id", "-x"))
    assert read_labels(path, pair, asked=pairs).accepted.tolist() == pairs.tolist()


def test_non_utf8_file_names_the_line(pair, tmp_path):
    path, pairs = request(pair, tmp_path)
    fill(
        path,
        ["yes", "no", "no", "no"],
        set_row(2, "source_name", "Zoé"),
        encoding="cp1252",
    )
    with pytest.raises(DataFormatError, match="UTF-8") as info:
        read_labels(path, pair, asked=pairs)
    assert info.value.line == 4 and info.value.path == path


def test_entity_answers_name_another_target_or_none(pair, tmp_path):
    links = pair.links[:, :5]
    asked = torch.stack([links[0, :4], links[1, 1:5]])  # every asked target wrong
    path = write_label_request(tmp_path / "r.csv", pair, asked, torch.rand(4), 1)
    targets = pair.target["entity"].ids

    def edit(rows):
        rows[0]["target_id"] = targets[links[1, 0]]  # the counterpart, in its row
        rows.append(dict(rows[1], target_id=targets[links[1, 1]], label="yes"))

    fill(path, ["yes", "no", "no", ""], edit)
    answer = read_labels(path, pair, asked=asked, question="entity")
    assert answer.accepted.tolist() == links[:, :2].tolist()
    rejected = sorted(map(tuple, answer.rejected.t().tolist()))
    assert rejected == sorted(map(tuple, asked[:, :3].t().tolist()))
    assert unanswered_pairs(answer, asked).tolist() == asked[:, 3:].tolist()
    with pytest.raises(DataFormatError, match="this pair was not asked"):
        read_labels(path, pair, asked=asked)  # a pair question names no other
    fill(path, ["no"], set_row(0, "source_id", pair.source["entity"].ids[links[0, 4]]))
    with pytest.raises(DataFormatError, match="this source was not asked") as info:
        read_labels(path, pair, asked=asked, question="entity")
    assert info.value.line == 2
    with pytest.raises(ValueError, match="against the asked"):
        read_labels(path, pair, question="entity")
