import logging
import pickle
import time

import numpy as np
import pytest
import torch

from almea_pyg.data.errors import DataFormatError
from almea_pyg.data.readers.mmea import read_id_table, read_mmea_pair
from almea_pyg.typing import ATTRIBUTE, ATTRIBUTE_EDGE, ENTITY, RELATION_EDGE


def test_read_pair(mmea_dir, caplog):
    with caplog.at_level(logging.INFO, logger="almea_pyg.data.readers.mmea"):
        pair = read_mmea_pair(mmea_dir)
    assert pair.name == "FB_DB"
    source, target = pair.source, pair.target
    assert source[ENTITY].ids == ["/m/a", "/m/b", "/m/c"]
    assert target[ENTITY].ids == ["<A>", "<B>", "<C>"]
    # Global ids 3..5 become local 0..2; relations are ranked by global id.
    assert source[RELATION_EDGE].edge_index.tolist() == [[0, 1], [1, 2]]
    assert source[RELATION_EDGE].edge_type.tolist() == [0, 1]
    assert source[RELATION_EDGE].relation_names == ["0", "1"]
    assert target[RELATION_EDGE].edge_index.tolist() == [[0, 1], [1, 2]]
    assert target[RELATION_EDGE].edge_type.tolist() == [1, 0]
    assert target[RELATION_EDGE].relation_names == ["5", "7"]
    assert pair.links.tolist() == [[0, 1], [0, 1]]
    # training_attrs: names, no values; the /m/zzz line is skipped.
    assert source[ATTRIBUTE].names == ["attrX", "attrY"]
    assert source[ATTRIBUTE_EDGE].edge_index.tolist() == [[0, 0, 2], [0, 1, 0]]
    assert torch.isnan(source[ATTRIBUTE_EDGE].value).all()
    assert target[ATTRIBUTE_EDGE].edge_index.tolist() == [[1], [0]]
    assert "1 lines name unknown entities" in caplog.text
    assert pair.modalities == []


def test_image_pickle(mmea_dir):
    vectors = {0: np.array([3.0, 4.0]), 2: np.array([1.0, 0.0]), "4": [0.0, 5.0]}
    vectors[99] = np.array([1.0, 1.0])  # names no entity: ignored
    with open(mmea_dir / "FB_DB_id_img_feature_dict.pkl", "wb") as handle:
        pickle.dump(vectors, handle)
    pair = read_mmea_pair(mmea_dir, allow_pickle=True)
    source, target = pair.source[ENTITY], pair.target[ENTITY]
    assert source.x_img_mask.tolist() == [True, False, True]
    assert torch.allclose(source.x_img[0], torch.tensor([0.6, 0.8]))
    assert source.x_img[1].abs().sum() == 0
    assert target.x_img_mask.tolist() == [False, True, False]
    assert torch.allclose(target.x_img[1], torch.tensor([0.0, 1.0]))


def test_training_attrs_are_optional(mmea_dir):
    (mmea_dir / "training_attrs_2").unlink()
    pair = read_mmea_pair(mmea_dir)
    assert ATTRIBUTE in pair.source.node_types
    assert ATTRIBUTE not in pair.target.node_types


def test_missing_directory_and_file(tmp_path, mmea_dir):
    with pytest.raises(FileNotFoundError, match="nope"):
        read_mmea_pair(tmp_path / "nope")
    (mmea_dir / "ill_ent_ids").unlink()
    with pytest.raises(FileNotFoundError, match="ill_ent_ids: .*nor ref_ent_ids"):
        read_mmea_pair(mmea_dir)


def test_ref_ent_ids_when_no_ill_ent_ids(mmea_dir, write):
    """DBP15K as GCN-Align, JAPE and RDGCN ship it names the links ref_ent_ids."""
    (mmea_dir / "ill_ent_ids").rename(mmea_dir / "ref_ent_ids")
    assert read_mmea_pair(mmea_dir).links.tolist() == [[0, 1], [0, 1]]
    # ill_ent_ids comes first when both are there.
    write(mmea_dir, {"ill_ent_ids": "2\t5\n"})
    assert read_mmea_pair(mmea_dir).links.tolist() == [[2], [2]]


BROKEN = [
    ("ent_ids_1", "0\t/m/a\nx\t/m/b\n", 2, "integer"),
    ("ent_ids_1", "0\t/m/a\n0\t/m/b\n", 2, "duplicate entity id 0"),
    ("ent_ids_1", "0\t/m/a\n1\t/m/a\n", 2, "duplicate entity name"),
    ("ent_ids_1", "0\t/m/a\t?\n", 1, "got 3 fields"),
    ("ent_ids_2", "3\t<A>\n1\t<B>\n", 2, "duplicate entity id 1"),
    ("triples_1", "0\t0\t1\n\n1\t1\n", 3, "got 2 fields"),
    ("triples_1", "0\t0\t1\n1\tr\t2\n", 2, "integer"),
    ("triples_1", "0\t0\t1\n1\t0\t-2\n", 2, "negative"),
    ("triples_1", "0\t0\t1\n\n1\t0\t4\n", 3, "unknown entity id 4"),
    ("triples_2", "3\t7\t4\n4\t5\t99\n", 2, "unknown entity id 99"),
    ("triples_2", "", None, "no data"),
    ("ill_ent_ids", "0\t3\n3\t4\n", 2, "unknown entity id 3 \\(not in ent_ids_1\\)"),
    ("ill_ent_ids", "0\t3\n1\n", 2, "got 1 fields"),
]


@pytest.mark.parametrize(("name", "text", "line", "reason"), BROKEN)
def test_malformed_input(mmea_dir, write, name, text, line, reason):
    write(mmea_dir, {name: text})
    with pytest.raises(DataFormatError, match=reason) as info:
        read_mmea_pair(mmea_dir)
    assert info.value.path.name == name
    assert info.value.line == line


def test_bad_image_pickle(mmea_dir):
    with open(mmea_dir / "x_id_img_feature_dict.pkl", "wb") as handle:
        pickle.dump([1, 2], handle)
    with pytest.raises(DataFormatError, match="pickled dict"):
        read_mmea_pair(mmea_dir, allow_pickle=True)


def test_image_pickle_is_not_read_without_opt_in(mmea_dir, payload, marker, caplog):
    path = mmea_dir / "FB_DB_id_img_feature_dict.pkl"
    with open(path, "wb") as handle:
        pickle.dump({0: payload}, handle)
    with caplog.at_level(logging.WARNING):
        pair = read_mmea_pair(mmea_dir)
    assert not marker.exists()
    assert pair.modalities == []
    assert "pass allow_pickle=True if you trust the file" in caplog.text
    with pytest.raises(ValueError, match="allow_pickle=True"):
        read_mmea_pair(mmea_dir, image_path=path)
    assert not marker.exists()


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
        ]
    return content


@pytest.mark.parametrize(
    "name", ["ent_ids_1", "ent_ids_2", "triples_1", "ill_ent_ids", "training_attrs_1"]
)
def test_byte_order_mark_is_ignored(mmea_dir, name):
    expected = _pair_content(read_mmea_pair(mmea_dir))
    path = mmea_dir / name
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert _pair_content(read_mmea_pair(mmea_dir)) == expected


@pytest.mark.parametrize("name", ["ent_ids_1", "triples_1"])
def test_not_utf8_names_file_and_line(mmea_dir, name):
    path = mmea_dir / name
    path.write_bytes(path.read_bytes() + "\n7\tcaf\xe9\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match="not UTF-8 text") as info:
        read_mmea_pair(mmea_dir)
    assert (info.value.path.name, info.value.line) == (name, 5)


def test_links_to_isolated_entities(mmea_dir, write, caplog):
    # Entities 6 and 7 are listed in ent_ids_2 but in no triple or attribute fact.
    write(mmea_dir, {"ent_ids_2": "3\t<A>\n4\t<B>\n5\t<C>\n6\t<D>\n7\t<E>\n"})
    write(mmea_dir, {"ill_ent_ids": "0\t3\n1\t6\n2\t4\n"})
    with caplog.at_level(logging.WARNING):
        assert read_mmea_pair(mmea_dir).links.size(1) == 3
    assert (
        "ill_ent_ids: 1 of 3 links point at an entity in no triple or attribute "
        "fact of KG 2, e.g. '<D>'"
    ) in caplog.text
    write(mmea_dir, {"ill_ent_ids": "0\t6\n1\t7\n2\t4\n"})
    with pytest.raises(DataFormatError, match="2 of 3 links .* KG 2, e.g. '<D>'"):
        read_mmea_pair(mmea_dir)


def test_read_id_table(tmp_path):
    path = tmp_path / "t"
    path.write_text("1\t2\n\n3\t4\n")
    assert read_id_table(path, "a<TAB>b").tolist() == [[1, 2], [3, 4]]


@pytest.mark.real_data
def test_real_fb15k_db15k(mmkg_dir):
    start = time.perf_counter()
    pair = read_mmea_pair(mmkg_dir / "processed" / "FB15K_DB15K")
    elapsed = time.perf_counter() - start
    assert pair.num_entities == (14787, 12842)
    assert pair.links.size(1) == 12768
    assert pair.source[RELATION_EDGE].edge_index.size(1) == 381186
    assert len(pair.source[RELATION_EDGE].relation_names) == 1056
    assert pair.target[RELATION_EDGE].relation_names[0] == "1056"
    assert pair.target[RELATION_EDGE].edge_index.size(1) == 89197
    assert pair.source[ATTRIBUTE].num_nodes == 116
    assert pair.source[ATTRIBUTE_EDGE].edge_index.size(1) == 29358
    assert pair.target[ATTRIBUTE_EDGE].edge_index.size(1) == 47246
    assert elapsed < 60, f"took {elapsed:.1f} s"
