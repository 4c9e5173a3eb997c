import pickle

import pytest
import torch

from almea_pyg.data.errors import DataFormatError
from almea_pyg.data.readers._utils import (
    Vocabulary,
    iter_lines,
    make_kg,
    unique_columns,
)
from almea_pyg.typing import ATTRIBUTE, ENTITY, RELATION_EDGE


def test_unique_columns_keeps_first_occurrences_in_order():
    index = torch.tensor([[3, 1, 3, 0, 1, 3], [0, 2, 0, 0, 2, 1]])
    assert unique_columns(index).tolist() == [[3, 1, 0, 3], [0, 2, 0, 1]]
    assert unique_columns(index[:, :0]).shape == (2, 0)


def test_unique_columns_with_huge_ids():
    big = 2**40
    index = torch.tensor([[big, 0, big], [0, big, 0], [big, big, big]])
    assert unique_columns(index).tolist() == [[big, 0], [0, big], [big, big]]


def test_vocabulary():
    vocab = Vocabulary(["b", "a"])
    assert vocab.add("a") == 1 and vocab.add("c") == 2
    assert vocab.tokens == ["b", "a", "c"] and len(vocab) == 3 and "c" in vocab


def test_iter_lines_numbers_skip_blanks_and_crlf(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"a b\r\n\r\n  \nc\td\n")
    assert list(iter_lines(path)) == [(1, "a b"), (4, "c\td")]


def test_iter_lines_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.txt"):
        list(iter_lines(tmp_path / "absent.txt"))
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"caf\xe9\n")
    with pytest.raises(DataFormatError, match="latin1.txt:1: not UTF-8"):
        list(iter_lines(path))


def test_iter_lines_names_the_line_that_is_not_utf8(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"a b c\n" * 5000 + b"ok\nd \xc3( e\n")
    with pytest.raises(DataFormatError) as info:
        list(iter_lines(path))
    assert info.value.line == 5002
    assert "byte 0xc3 at byte 3 of the line" in info.value.reason


def test_iter_lines_drops_a_byte_order_mark(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"\xef\xbb\xbfa b\r\nc \xef\xbb\xbf\n")
    assert list(iter_lines(path)) == [(1, "a b"), (2, "c \ufeff")]


def test_make_kg_layout():
    kg = make_kg(
        ["x", "y"],
        torch.tensor([[0], [0], [1]]),
        ["r"],
        attribute_facts=torch.tensor([[1], [0]]),
        attribute_names=["p"],
    )
    assert kg[ENTITY].num_nodes == 2 and kg[ENTITY].ids == ["x", "y"]
    assert kg[RELATION_EDGE].edge_index.tolist() == [[0], [1]]
    assert kg[ATTRIBUTE].num_nodes == 1
    assert torch.isnan(kg[ENTITY, "has_attribute", ATTRIBUTE].value).all()


def test_data_format_error():
    error = DataFormatError("/some/dir/FB15K_EntityTriples.txt", 17, "bad")
    assert isinstance(error, ValueError)
    assert str(error) == "FB15K_EntityTriples.txt:17: bad"
    assert error.path.parent.name == "dir" and error.line == 17
    assert str(DataFormatError("f.tsv", None, "empty")) == "f.tsv: empty"
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.line) == (str(error), 17)
