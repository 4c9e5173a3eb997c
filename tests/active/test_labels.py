import csv

import pytest
import torch

from almea_pyg.active import read_labels, write_label_request
from almea_pyg.active.labels import display_name
from almea_pyg.data import DataFormatError, make_synthetic_pair


@pytest.fixture(scope="module")
def pair():
    return make_synthetic_pair(num_entities=60, seed=0)


def request(pair, tmp_path, n=4):
    pairs = pair.links[:, :n]
    path = write_label_request(tmp_path / "r.csv", pair, pairs, torch.rand(n), round=1)
    return path, pairs


def fill(path, labels, edit=None):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row, label in zip(rows, labels):
        row["label"] = label
    if edit is not None:
        edit(rows)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
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
        (["yes", "", "no", "no"], None, 3, "label must be yes or no"),
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
