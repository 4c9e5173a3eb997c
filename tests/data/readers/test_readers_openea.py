import logging
import math

import pytest

from almea_pyg.data.errors import DataFormatError
from almea_pyg.data.readers.openea import fold_files, read_openea_pair
from almea_pyg.typing import ATTRIBUTE, ATTRIBUTE_EDGE, ENTITY, RELATION_EDGE


def test_read_pair(openea_dir):
    pair = read_openea_pair(openea_dir)
    assert pair.name == "D_W_15K_V1"
    source, target = pair.source, pair.target
    # Entities of the triples first, then those only in attribute facts.
    assert source[ENTITY].ids == ["db:A", "db:B", "db:C", "db:D"]
    assert target[ENTITY].ids == ["wd:Q1", "wd:Q2", "wd:Q3"]
    assert source[RELATION_EDGE].edge_index.tolist() == [[0, 1], [1, 2]]
    assert source[RELATION_EDGE].relation_names == ["db:r1", "db:r2"]
    assert source[ATTRIBUTE].names == ["db:birthDate", "db:motto", "db:height"]
    assert source[ATTRIBUTE_EDGE].edge_index.tolist() == [[0, 1, 3], [0, 1, 2]]
    value = source[ATTRIBUTE_EDGE].value
    assert value[0].item() == pytest.approx(1982 + 4 / 12 + 2 / 372)
    assert math.isnan(value[1])  # text holding a TAB: one fact, no number
    assert value[2].item() == pytest.approx(1.85)  # typed literal
    assert target[ATTRIBUTE_EDGE].value.tolist() == [1982.0]
    assert pair.links.tolist() == [[0, 1, 2], [0, 1, 2]]
    assert pair.train_links.size(1) == 0 and pair.test_links.size(1) == 3


@pytest.mark.parametrize(("fold", "split"), [(1, [0, 1, 2]), (2, [2, 0, 1])])
def test_fold(openea_dir, fold, split):
    pair = read_openea_pair(openea_dir, fold=fold)
    assert pair.links.size(1) == 3
    parts = (pair.train_links, pair.valid_links, pair.test_links)
    assert [part.tolist() for part in parts] == [[[i], [i]] for i in split]


def test_missing_fold_lists_the_folds(openea_dir):
    with pytest.raises(FileNotFoundError, match=r"721_5fold/3: .*folds here: 1, 2"):
        read_openea_pair(openea_dir, fold=3)


def test_fold_links_must_be_links(openea_dir, write):
    write(openea_dir, {"721_5fold/1/test_links": "db:C\twd:Q3\ndb:C\twd:Q1\n"})
    with pytest.raises(DataFormatError, match="1 links are not in ent_links") as info:
        read_openea_pair(openea_dir, fold=1)
    assert info.value.path.name == "test_links"


def test_attributes_are_optional(openea_dir, caplog):
    (openea_dir / "attr_triples_2").unlink()
    with caplog.at_level(logging.WARNING):
        pair = read_openea_pair(openea_dir)
    assert ATTRIBUTE in pair.source.node_types
    assert ATTRIBUTE not in pair.target.node_types
    assert "KG 2 has no attributes" in caplog.text


BROKEN = [
    ("rel_triples_1", "db:A\tdb:r1\tdb:B\ndb:B\tdb:r2\n", 2, "got 2 fields"),
    ("attr_triples_2", "wd:Q1\twd:P569\t1982\nwd:Q2\n", 2, "got 1 fields"),
    ("ent_links", "db:A\twd:Q1\ndb:Z\twd:Q2\n", 2, "unknown source entity id 'db:Z'"),
    ("ent_links", "", None, "no links"),
]


@pytest.mark.parametrize(("name", "text", "line", "reason"), BROKEN)
def test_malformed_input(openea_dir, write, name, text, line, reason):
    write(openea_dir, {name: text})
    with pytest.raises(DataFormatError, match=reason) as info:
        read_openea_pair(openea_dir)
    assert (info.value.path.name, info.value.line) == (name, line)


def test_missing_directory_and_file(tmp_path, openea_dir):
    with pytest.raises(FileNotFoundError, match="nope"):
        read_openea_pair(tmp_path / "nope")
    (openea_dir / "ent_links").unlink()
    with pytest.raises(FileNotFoundError, match="ent_links"):
        read_openea_pair(openea_dir)


def test_fold_files():
    assert fold_files(4) == [
        "721_5fold/4/train_links",
        "721_5fold/4/valid_links",
        "721_5fold/4/test_links",
    ]
