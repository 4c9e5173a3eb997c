import pytest

from almea_pyg.data import MMKGPair, read_pair
from almea_pyg.data.errors import DataFormatError
from almea_pyg.data.readers.detect import LAYOUTS, detect_layout
from almea_pyg.typing import ENTITY

# (files, layout, pair name, entities, links, modalities)
CASES = {
    "mmkb": ("mmkb", "mmkb", "FB15K_DB15K", (5, 3), 3, ["attr", "rel"]),
    "mmea": ("mmea", "mmea", "pair", (3, 3), 2, ["attr", "rel"]),
    "gcn_align": ("gcn_align", "mmea", "pair", (3, 3), 2, ["rel"]),
    "openea": ("openea", "openea", "pair", (4, 3), 3, ["attr", "rel"]),
    "tsv": ("tsv", "tsv", "pair", (3, 3), 2, ["attr", "rel"]),
}


@pytest.fixture
def layout_files(fixture_files):
    """The fixture files by layout, plus DBP15K's GCN-Align variant of mmea
    (``ref_ent_ids`` for the links, no attributes)."""
    gcn_align = {
        ("ref_ent_ids" if name == "ill_ent_ids" else name): text
        for name, text in fixture_files["mmea"].items()
        if not name.startswith("training_attrs")
    }
    return {**fixture_files, "gcn_align": gcn_align}


@pytest.mark.parametrize("case", CASES)
def test_each_layout(tmp_path, write, layout_files, case):
    files, layout, name, entities, links, modalities = CASES[case]
    directory = write(tmp_path / "pair", layout_files[files])
    assert detect_layout(directory) == layout
    pair = read_pair(directory, top_k=2)
    assert isinstance(pair, MMKGPair)
    assert pair.name == name
    assert pair.num_entities == entities
    assert pair.links.size(1) == links
    assert pair.train_links.size(1) == 0  # unsplit
    assert pair.modalities == modalities  # features built
    assert pair.source[ENTITY].x_rel.size(1) <= 2  # top_k passed on


def test_mmkb_target_is_the_kg_with_links(tmp_path, write, fixture_files):
    files = {
        name.replace("DB15K", "YAGO15K"): text
        for name, text in fixture_files["mmkb"].items()
    }
    pair = read_pair(write(tmp_path, files))
    assert pair.name == "FB15K_YAGO15K"


def test_mmkb_with_three_kgs_needs_names(mmkb_root, write):
    write(mmkb_root, {"YAGO15K/YAGO15K_EntityTriples.txt": "<a> <r> <b> .\n"})
    write(mmkb_root, {"YAGO15K/YAGO15K_SameAsLink.txt": "/m/a <SameAs> <a> .\n"})
    with pytest.raises(DataFormatError, match="pass source= and target=") as info:
        read_pair(mmkb_root)
    assert "['DB15K', 'FB15K', 'YAGO15K']" in str(info.value)
    assert read_pair(mmkb_root, target="YAGO15K").name == "FB15K_YAGO15K"
    assert read_pair(mmkb_root, source="FB15K", target="DB15K").links.size(1) == 3


def test_kwargs_reach_the_reader(openea_dir):
    pair = read_pair(openea_dir, fold=1, name="dw")
    assert pair.name == "dw"
    assert pair.train_links.size(1) == 1 and pair.test_links.size(1) == 1


@pytest.mark.parametrize(
    "files", [{}, {"notes.txt": "hello\n"}, {"ent_ids_1": "0\ta\n", "links.tsv": ""}]
)
def test_no_layout_fits(tmp_path, write, files):
    directory = tmp_path / "pair"
    directory.mkdir()
    write(directory, files)
    with pytest.raises(DataFormatError, match="no supported KG-pair layout") as info:
        read_pair(directory)
    message = str(info.value)
    for layout, needs in LAYOUTS.items():
        assert f"{layout}: {needs}" in message
    for name in ("_EntityTriples.txt", "ref_ent_ids", "rel_triples_1", "links.tsv"):
        assert name in message


def test_not_a_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        read_pair(tmp_path / "absent")


def test_several_layouts_fit(tmp_path, write, fixture_files):
    files = {**fixture_files["mmea"], **fixture_files["openea"]}
    directory = write(tmp_path / "pair", files)
    with pytest.raises(DataFormatError, match=r"several layouts \(mmea, openea\)"):
        read_pair(directory)
    assert read_pair(directory, layout="openea").num_entities == (4, 3)
    with pytest.raises(ValueError, match="layout must be one of"):
        read_pair(directory, layout="dbp")
