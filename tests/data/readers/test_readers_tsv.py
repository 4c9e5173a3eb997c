import logging
import math

import numpy as np
import pytest
import torch

from almea_pyg.data import read_pair
from almea_pyg.data.errors import DataFormatError
from almea_pyg.data.pair import MMKGPair
from almea_pyg.data.readers.tsv import load_features, read_tsv_kg, read_tsv_pair
from almea_pyg.typing import ATTRIBUTE, ATTRIBUTE_EDGE, ENTITY, RELATION_EDGE

TRIPLES = "alice\tknows\tbob\nbob\tworks_at\tacme\nalice\tknows\tbob\n"
ATTRIBUTES = (
    "alice\tbirth\t1990-07-01\n"
    "alice\theight\t1.70\n"
    "bob\tnickname\tBobby\n"
    "acme\tverified\n"
    "carol\theight\t1.80\n"
)


@pytest.fixture
def kg_dir(tmp_path, write):
    return write(
        tmp_path / "kg_a",
        {"triples.tsv": TRIPLES, "attributes.tsv": ATTRIBUTES},
    )


def test_triples_and_attributes(kg_dir):
    kg = read_tsv_kg(kg_dir / "triples.tsv", attributes_path=kg_dir / "attributes.tsv")
    assert kg[ENTITY].ids == ["alice", "bob", "acme", "carol"]
    assert kg[RELATION_EDGE].edge_index.tolist() == [[0, 1], [1, 2]]
    assert kg[RELATION_EDGE].edge_type.tolist() == [0, 1]
    assert kg[RELATION_EDGE].relation_names == ["knows", "works_at"]
    assert kg[ATTRIBUTE].names == ["birth", "height", "nickname", "verified"]
    edge_index = kg[ATTRIBUTE_EDGE].edge_index
    assert edge_index.tolist() == [[0, 0, 1, 2, 3], [0, 1, 2, 3, 1]]
    value = kg[ATTRIBUTE_EDGE].value
    assert value.dtype == torch.float
    assert value[0].item() == pytest.approx(1990 + 6 / 12)
    assert value[1].item() == pytest.approx(1.70)
    assert math.isnan(value[2]) and math.isnan(value[3])  # text, no value
    assert value[4].item() == pytest.approx(1.80)


@pytest.mark.parametrize("kind", ["npy", "pt_tensor", "pt_dict"])
def test_features(kg_dir, kind, caplog):
    ids = ["bob", "alice", "ghost"]
    matrix = np.array([[0.0, 2.0], [3.0, 4.0], [1.0, 1.0]], dtype=np.float32)
    if kind == "npy":
        np.save(kg_dir / "img.npy", matrix)
        (kg_dir / "img.ids").write_text("\n".join(ids) + "\n")
        source = (kg_dir / "img.npy", kg_dir / "img.ids")
    elif kind == "pt_tensor":
        torch.save(torch.from_numpy(matrix), kg_dir / "img.pt")
        (kg_dir / "img.ids").write_text("\n".join(ids) + "\n")
        source = (kg_dir / "img.pt", kg_dir / "img.ids")
    else:
        torch.save({"ids": ids, "x": torch.from_numpy(matrix)}, kg_dir / "img.pt")
        source = kg_dir / "img.pt"
    with caplog.at_level(logging.WARNING):
        kg = read_tsv_kg(kg_dir / "triples.tsv", features={"img": source})
    store = kg[ENTITY]
    assert store.x_img.shape == (3, 2)
    assert store.x_img_mask.tolist() == [True, True, False]
    assert torch.allclose(store.x_img[0], torch.tensor([0.6, 0.8]))
    assert torch.allclose(store.x_img[1], torch.tensor([0.0, 1.0]))
    assert store.x_img[2].abs().sum() == 0
    assert "1 of 3 feature rows name no entity" in caplog.text


def test_features_without_normalisation(kg_dir):
    torch.save({"ids": ["bob"], "x": torch.tensor([[3.0, 4.0]])}, kg_dir / "t.pt")
    kg = read_tsv_kg(
        kg_dir / "triples.tsv",
        features={"text": kg_dir / "t.pt"},
        normalize_features=False,
    )
    assert kg[ENTITY].x_text[1].tolist() == [3.0, 4.0]


def test_pair_from_directories(tmp_path, write, kg_dir):
    other = write(tmp_path / "kg_b", {"triples.tsv": "A\tr\tB\nB\tr\tC\n"})
    (other / "features").mkdir()
    np.save(other / "features" / "img.npy", np.eye(2, dtype=np.float32))
    (other / "features" / "img.ids").write_text("C\nA\n")
    torch.save({"ids": ["B"], "x": torch.ones(1, 3)}, other / "features" / "txt.pt")
    links = tmp_path / "links.tsv"
    links.write_text("alice\tA\nbob\tB\nalice\tA\n")
    pair = read_tsv_pair(kg_dir, other, links, name="mine")
    assert pair.name == "mine"
    assert pair.links.tolist() == [[0, 1], [0, 1]]
    assert ATTRIBUTE in pair.source.node_types
    assert pair.target[ENTITY].x_img_mask.tolist() == [True, False, True]
    assert pair.target[ENTITY].x_txt_mask.tolist() == [False, True, False]
    assert pair.modalities == ["img", "txt"]


def test_images(kg_dir, write, caplog):
    images = (
        "alice\tpics/alice.png\n"
        "bob\thttps://example.org/bob.jpg\n"
        "acme\t/srv/img/acme.png\n"
        "ghost\tghost.png\n"
    )
    write(kg_dir, {"images.tsv": images})
    with caplog.at_level(logging.WARNING):
        kg = read_tsv_kg(kg_dir / "triples.tsv", images_path=kg_dir / "images.tsv")
    assert kg[ENTITY].images == {
        "alice": str(kg_dir.absolute() / "pics" / "alice.png"),
        "bob": "https://example.org/bob.jpg",
        "acme": "/srv/img/acme.png",
    }
    assert "1 of 4 images name no entity" in caplog.text


def test_images_of_a_pair_directory_are_kept_by_save_and_load(tsv_pair_dir, tmp_path):
    (tsv_pair_dir / "target" / "images.tsv").write_text("B\tb.png\n")
    pair = read_pair(tsv_pair_dir).split(0.5, seed=0)  # features built, then split
    assert "images" not in pair.source[ENTITY]
    expected = {"B": str(tsv_pair_dir.absolute() / "target" / "b.png")}
    assert pair.target[ENTITY].images == expected
    pair.save(tmp_path / "pair.pt")
    assert MMKGPair.load(tmp_path / "pair.pt").target[ENTITY].images == expected


def test_pair_from_kwargs_and_heterodata(tmp_path, kg_dir):
    source = read_tsv_kg(kg_dir / "triples.tsv")
    links = tmp_path / "links.tsv"
    links.write_text("acme\tbob\n")
    pair = read_tsv_pair(source, {"triples_path": kg_dir / "triples.tsv"}, links)
    assert pair.links.tolist() == [[2], [1]]


BROKEN = [
    ("triples.tsv", "a\tr\tb\n\na\tr\n", 3, "got 2 fields"),
    ("triples.tsv", "a r b\n", 1, "got 1 fields"),
    ("triples.tsv", "\n", None, "no triples"),
    ("attributes.tsv", "a\tp\t1\nb\tp\t1\t2\n", 2, "got 4 fields"),
    ("attributes.tsv", "a\n", 1, "got 1 fields"),
    ("images.tsv", "alice\ta.png\nalice\tb.png\n", 2, "a second image for 'alice'"),
    ("images.tsv", "alice\n", 1, "got 1 fields"),
    ("images.tsv", "alice\t \n", 1, "empty entity or image reference"),
    ("links.tsv", "alice\tA\nbob\n", 2, "got 1 fields"),
    ("links.tsv", "alice\tA\nA\talice\n", 2, "unknown source entity id 'A'"),
    ("links.tsv", "alice\tZ\n", 1, "unknown target entity id 'Z'"),
    ("links.tsv", "", None, "no links"),
]


@pytest.mark.parametrize(("name", "text", "line", "reason"), BROKEN)
def test_malformed_input(tmp_path, write, kg_dir, name, text, line, reason):
    write(tmp_path / "kg_b", {"triples.tsv": "A\tr\tB\n"})
    (tmp_path / "links.tsv").write_text("alice\tA\n")
    write(tmp_path / ("" if name == "links.tsv" else "kg_a"), {name: text})
    with pytest.raises(DataFormatError, match=reason) as info:
        read_tsv_pair(kg_dir, tmp_path / "kg_b", tmp_path / "links.tsv")
    assert info.value.path.name == name
    assert info.value.line == line


def test_bad_features(tmp_path):
    ids = tmp_path / "x.ids"
    ids.write_text("a\nb\na\n")
    np.save(tmp_path / "x.npy", np.zeros((3, 2)))
    with pytest.raises(DataFormatError, match="duplicate id 'a'") as info:
        load_features((tmp_path / "x.npy", ids))
    assert (info.value.path.name, info.value.line) == ("x.ids", 3)

    ids.write_text("a\nb\n")
    with pytest.raises(DataFormatError, match="2 ids for 3 matrix rows"):
        load_features((tmp_path / "x.npy", ids))

    np.save(tmp_path / "x.npy", np.array([[0.0, 1.0], [np.nan, 0.0]]))
    with pytest.raises(DataFormatError, match="non-finite value in the row of id 'b'"):
        load_features((tmp_path / "x.npy", ids))

    torch.save({"x": torch.zeros(2, 2)}, tmp_path / "d.pt")
    with pytest.raises(DataFormatError, match="expected a dict"):
        load_features(tmp_path / "d.pt")

    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_features(tmp_path / "missing.pt")


def _pair_content(pair):
    """Entities, edges, attribute facts and links of a pair, as plain lists."""
    content = [pair.links.tolist()]
    for kg in (pair.source, pair.target):
        content += [kg[ENTITY].ids, kg[RELATION_EDGE].edge_index.tolist()]
    return content + [pair.source[ATTRIBUTE_EDGE].edge_index.tolist()]


@pytest.mark.parametrize(
    "name", ["kg_a/triples.tsv", "kg_a/attributes.tsv", "kg_b/triples.tsv", "links.tsv"]
)
def test_byte_order_mark_is_ignored(tmp_path, write, kg_dir, name):
    write(tmp_path / "kg_b", {"triples.tsv": "A\tr\tB\nB\tr\tC\n"})
    (tmp_path / "links.tsv").write_text("alice\tA\nbob\tB\n")
    expected = _pair_content(
        read_tsv_pair(kg_dir, tmp_path / "kg_b", tmp_path / "links.tsv")
    )
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    pair = read_tsv_pair(kg_dir, tmp_path / "kg_b", tmp_path / "links.tsv")
    assert _pair_content(pair) == expected


@pytest.mark.parametrize(
    "name", ["kg_a/triples.tsv", "kg_a/attributes.tsv", "links.tsv"]
)
def test_not_utf8_names_file_and_line(tmp_path, write, kg_dir, name):
    write(tmp_path / "kg_b", {"triples.tsv": "A\tr\tB\n"})
    (tmp_path / "links.tsv").write_text("alice\tA\n")
    path = tmp_path / name
    path.write_bytes(path.read_bytes() + "\nacme\tcaf\xe9\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match="not UTF-8 text") as info:
        read_tsv_pair(kg_dir, tmp_path / "kg_b", tmp_path / "links.tsv")
    assert info.value.path.name == path.name
    assert info.value.line == path.read_bytes().count(b"\n")
