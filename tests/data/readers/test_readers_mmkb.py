import logging
import math
import time

import pytest
import torch

from almea_pyg.data.errors import DataFormatError
from almea_pyg.data.features import BuildModalityFeatures
from almea_pyg.data.pair import MMKGPair
from almea_pyg.data.readers.mmkb import read_mmkb_kg, read_mmkb_pair
from almea_pyg.typing import ATTRIBUTE, ATTRIBUTE_EDGE, ENTITY, RELATION_EDGE


def attribute_values(kg):
    """{(entity id, attribute name): value} of a KG."""
    names = kg[ATTRIBUTE].names
    ids = kg[ENTITY].ids
    edge_index = kg[ATTRIBUTE_EDGE].edge_index
    return {
        (ids[e], names[a]): v
        for e, a, v in zip(
            edge_index[0].tolist(),
            edge_index[1].tolist(),
            kg[ATTRIBUTE_EDGE].value.tolist(),
        )
    }


def test_read_kg_fb15k(mmkb_root):
    kg = read_mmkb_kg(mmkb_root, "FB15K")
    assert kg[ENTITY].num_nodes == 4  # a, b, c from triples, d from attributes
    assert kg[ENTITY].ids == ["/m/a", "/m/b", "/m/c", "/m/d"]
    store = kg[RELATION_EDGE]
    assert store.edge_index.tolist() == [[0, 1, 2], [1, 2, 0]]  # duplicate dropped
    assert store.edge_type.tolist() == [0, 1, 0]
    assert store.relation_names == ["/r/x", "/r/y"]
    assert kg[ATTRIBUTE].num_nodes == 2
    values = attribute_values(kg)
    assert len(values) == 3 and kg[ATTRIBUTE_EDGE].value.numel() == 3
    assert values[("/m/a", "<http://rdf.freebase.com/ns/p.height>")] == pytest.approx(
        1.85
    )
    assert values[("/m/b", "<http://rdf.freebase.com/ns/p.pop>")] == 2837021.0
    assert values[("/m/d", "<http://rdf.freebase.com/ns/p.height>")] == -3.5
    assert kg[ENTITY].has_image_index.tolist() == [True, False, False, False]


def test_read_kg_accepts_the_kg_directory(mmkb_root):
    kg = read_mmkb_kg(mmkb_root / "DB15K", "DB15K")
    assert kg[ENTITY].num_nodes == 3
    assert kg[RELATION_EDGE].edge_index.size(1) == 2


def test_read_kg_dbpedia_literals(mmkb_root):
    kg = read_mmkb_kg(mmkb_root, "DB15K")
    values = attribute_values(kg)
    assert len(values) == 4  # the repeated birthYear fact is kept once
    assert values[("<http://db/A>", "<http://db/birthYear>")] == 1982.0
    birth = values[("<http://db/A>", "<http://db/birthDate>")]
    assert birth == pytest.approx(1982 + 4 / 12 + 2 / 372)
    assert values[("<http://db/B>", "<http://db/area>")] == 1500.0
    assert math.isnan(values[("<http://db/C>", "<http://db/founded>")])
    assert kg[ENTITY].has_image_index.tolist() == [False, True, False]


def test_read_pair(mmkb_root, caplog):
    with caplog.at_level(logging.WARNING):
        pair = read_mmkb_pair(mmkb_root, "FB15K", "DB15K")
    assert pair.name == "FB15K_DB15K"
    # /m/e only occurs in the links: it is added to FB15K as an isolated entity.
    assert pair.source[ENTITY].ids == ["/m/a", "/m/b", "/m/c", "/m/d", "/m/e"]
    assert pair.links.tolist() == [[0, 1, 4], [0, 1, 2]]
    assert pair.train_links.size(1) == 0 and pair.test_links.size(1) == 3
    (record,) = caplog.records
    assert record.levelname == "WARNING"
    assert record.getMessage() == (
        "DB15K_SameAsLink.txt: 1 of 3 links point at an entity in no triple or "
        "attribute fact of FB15K, e.g. '/m/e' (isolated entities)"
    )


def test_link_to_an_entity_only_in_attributes_is_no_stray(mmkb_root, write, caplog):
    write(mmkb_root, {"DB15K/DB15K_SameAsLink.txt": "/m/d <SameAs> <http://db/A> .\n"})
    with caplog.at_level(logging.WARNING):
        pair = read_mmkb_pair(mmkb_root)
    assert pair.links.tolist() == [[3], [0]]
    assert not caplog.records


@pytest.mark.parametrize("swapped", [False, True])
def test_links_of_another_kg(mmkb_root, write, swapped):
    # YAGO15K's links put in as DB15K's: no DB15K end is a DB15K entity.
    links = [("/m/a", "<http://yago/A>"), ("/m/b", "<http://yago/B>")]
    if swapped:  # columns exchanged: no FB15K end is an FB15K entity either
        links = [(b, a) for a, b in links]
    text = "".join(f"{a} <SameAs> {b} .\n" for a, b in links)
    write(mmkb_root, {"DB15K/DB15K_SameAsLink.txt": text})
    side = "FB15K" if swapped else "DB15K"
    message = (
        f"2 of 2 links point at an entity in no triple or attribute fact of {side}"
    )
    with pytest.raises(DataFormatError, match=message) as info:
        read_mmkb_pair(mmkb_root)
    assert (info.value.path.name, info.value.line) == ("DB15K_SameAsLink.txt", None)
    assert repr(links[0][int(not swapped)]) in str(info.value)
    assert "may belong to another KG" in str(info.value)


def _pair_content(pair):
    """Entities, edges, attribute facts and links of a pair, as plain lists."""
    content = [pair.links.tolist()]
    for kg in (pair.source, pair.target):
        content += [
            kg[ENTITY].ids,
            kg[RELATION_EDGE].edge_index.tolist(),
            kg[RELATION_EDGE].relation_names,
            kg[ATTRIBUTE].names,
            kg[ATTRIBUTE_EDGE].edge_index.tolist(),
            kg[ENTITY].has_image_index.tolist(),
        ]
    return content


@pytest.mark.parametrize(
    "name",
    [
        "FB15K/FB15K_EntityTriples.txt",
        "FB15K/FB15K_NumericalTriples.txt",
        "DB15K/DB15K_EntityTriples.txt",
        "DB15K/DB15K_NumericalTriples.txt",
        "DB15K/DB15K_ImageIndex.txt",
        "DB15K/DB15K_SameAsLink.txt",
    ],
)
def test_byte_order_mark_is_ignored(mmkb_root, name):
    expected = _pair_content(read_mmkb_pair(mmkb_root))
    path = mmkb_root / name
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert _pair_content(read_mmkb_pair(mmkb_root)) == expected


@pytest.mark.parametrize(
    "name", ["FB15K/FB15K_EntityTriples.txt", "DB15K/DB15K_SameAsLink.txt"]
)
def test_not_utf8_names_file_and_line(mmkb_root, name):
    path = mmkb_root / name
    lines = path.read_bytes().splitlines(keepends=True)
    # 10 kB of valid lines first: the decoder fails a block ahead of the line.
    padding = lines[0] * (10_000 // len(lines[0]))
    path.write_bytes(padding + lines[1].replace(b"/m/b", b"/m/b\xe9") + lines[2])
    with pytest.raises(DataFormatError, match="not UTF-8 text") as info:
        read_mmkb_pair(mmkb_root)
    assert info.value.path.name == name.split("/")[1]
    assert info.value.line == padding.count(b"\n") + 1
    assert "byte 0xe9 at byte 5 of the line" in str(info.value)


def test_read_pair_reversed(mmkb_root):
    pair = read_mmkb_pair(mmkb_root, "DB15K", "FB15K")
    assert pair.name == "DB15K_FB15K"
    assert pair.source[ENTITY].ids[0] == "<http://db/A>"
    assert pair.links.tolist() == [[0, 1, 2], [0, 1, 4]]


def test_read_pair_needs_fb15k(mmkb_root):
    with pytest.raises(ValueError, match="FB15K"):
        read_mmkb_pair(mmkb_root, "DB15K", "YAGO15K")


def test_image_features(mmkb_root):
    features = {
        "FB15K": {"/m/a": [3.0, 4.0], "/m/c": [0.0, 2.0], "/m/unknown": [1.0, 1.0]},
        "DB15K": (["<http://db/C>"], torch.tensor([[1.0, 0.0]])),
    }
    pair = read_mmkb_pair(mmkb_root, image_features=features)
    source, target = pair.source[ENTITY], pair.target[ENTITY]
    assert source.x_img.shape == (5, 2)
    assert torch.allclose(source.x_img[0], torch.tensor([0.6, 0.8]))  # L2-normalised
    assert source.x_img_mask.tolist() == [True, False, True, False, False]
    assert target.x_img_mask.tolist() == [False, False, True]
    assert pair.modalities == ["img"]


def test_optional_files_may_be_absent(mmkb_root):
    (mmkb_root / "DB15K" / "DB15K_NumericalTriples.txt").unlink()
    (mmkb_root / "DB15K" / "DB15K_ImageIndex.txt").unlink()
    kg = read_mmkb_kg(mmkb_root, "DB15K")
    assert ATTRIBUTE not in kg.node_types
    assert "has_image_index" not in kg[ENTITY]


def test_missing_triples_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="FB15K_EntityTriples.txt"):
        read_mmkb_kg(tmp_path, "FB15K")


BROKEN = [
    ("FB15K/FB15K_EntityTriples.txt", "/m/a /r/x /m/b .\n\n/m/a /r/x\n", 3, "got 2"),
    ("FB15K/FB15K_EntityTriples.txt", "/m/a /r/x /m/b /m/c\n", 1, "got 4 fields"),
    ("FB15K/FB15K_EntityTriples.txt", "\n\n", None, "no triples"),
    ("FB15K/FB15K_NumericalTriples.txt", "/m/a\t<p>\n", 1, "entity attribute"),
    ("DB15K/DB15K_NumericalTriples.txt", '<A> <p> "1982 .\n', 1, "entity attribute"),
    ("DB15K/DB15K_NumericalTriples.txt", "<A> <p>\n", 1, "entity attribute"),
    ("FB15K/FB15K_ImageIndex.txt", "/m/a\tKEY\textra\n", 1, "got 3 fields"),
    ("DB15K/DB15K_SameAsLink.txt", "/m/a <sameAs> <A> .\n/m/b <B>\n", 2, "2 fields"),
    ("DB15K/DB15K_SameAsLink.txt", "/m/a <seeAlso> <A> .\n", 1, "SameAs"),
    ("DB15K/DB15K_SameAsLink.txt", "", None, "no links"),
]


@pytest.mark.parametrize(("name", "text", "line", "reason"), BROKEN)
def test_malformed_input(mmkb_root, write, name, text, line, reason):
    write(mmkb_root, {name: text})
    with pytest.raises(DataFormatError, match=reason) as info:
        read_mmkb_pair(mmkb_root, "FB15K", "DB15K")
    assert info.value.path.name == name.split("/")[1]
    assert info.value.line == line
    prefix = name.split("/")[1] + ("" if line is None else f":{line}")
    assert str(info.value).startswith(prefix + ": ")


@pytest.mark.real_data
def test_real_fb15k_db15k(mmkg_dir):
    start = time.perf_counter()
    pair = read_mmkb_pair(mmkg_dir, "FB15K", "DB15K")
    elapsed = time.perf_counter() - start
    counts = {
        "source": (14787, 1056, 381186, 29395, 116),
        "target": (12842, 279, 89197, 48044, 225),
    }
    for side, kg in (("source", pair.source), ("target", pair.target)):
        store = kg[RELATION_EDGE]
        in_triples = torch.unique(store.edge_index).numel()
        got = (
            in_triples,
            len(store.relation_names),
            store.edge_index.size(1),
            kg[ATTRIBUTE_EDGE].edge_index.size(1),
            kg[ATTRIBUTE].num_nodes,
        )
        assert got == counts[side], side
    assert pair.links.size(1) == 12846
    # Not quite one-to-one upstream: 4 DB15K entities have two FB15K partners.
    assert pair.links[0].unique().numel() == 12846
    assert pair.links[1].unique().numel() == 12842
    # 12,772 links have their FB15K end in the (partial) triples.
    in_triples = pair.source[RELATION_EDGE].edge_index.max() + 1
    assert int((pair.links[0] < in_triples).sum()) == 12772
    assert pair.source[ENTITY].ids[0] == "/m/027rn"
    assert elapsed < 60, f"reading FB15K-DB15K took {elapsed:.1f} s"


def test_saved_pair_loads_back(mmkb_root, tmp_path):
    pair = BuildModalityFeatures(top_k=2)(read_mmkb_pair(mmkb_root))
    pair.save(tmp_path / "pair.pt")
    state = torch.load(tmp_path / "pair.pt", weights_only=True)
    assert state["target"]["entity"]["ids"] == pair.target[ENTITY].ids
    loaded = MMKGPair.load(tmp_path / "pair.pt")
    assert _pair_content(loaded) == _pair_content(pair)
    assert torch.equal(loaded.source[ENTITY].x_rel, pair.source[ENTITY].x_rel)
    assert torch.equal(
        loaded.target[ATTRIBUTE_EDGE].value.isnan(),
        pair.target[ATTRIBUTE_EDGE].value.isnan(),
    )
