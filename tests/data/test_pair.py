from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch_geometric.data import Data, HeteroData

from almea_pyg.data.pair import MMKGPair, feature_modalities, modality_mask
from almea_pyg.data.synthetic import make_synthetic_pair
from almea_pyg.typing import ATTRIBUTE, ATTRIBUTE_EDGE, ENTITY, RELATION_EDGE


def _kg(
    num: int, *, img_present: list[bool] | None = None, seed: int = 0
) -> HeteroData:
    """A ring of ``num`` entities with two relations, ``x_rel`` without a mask and,
    when ``img_present`` is given, ``x_img`` with that mask."""
    gen = torch.Generator().manual_seed(seed)
    kg = HeteroData()
    kg[ENTITY].num_nodes = num
    kg[ENTITY].ids = [f"e{i}" for i in range(num)]
    kg[ENTITY].x_rel = torch.rand(num, 3, generator=gen)
    if img_present is not None:
        kg[ENTITY].x_img = torch.rand(num, 4, generator=gen)
        kg[ENTITY].x_img_mask = torch.tensor(img_present)
    index = torch.arange(num)
    kg[RELATION_EDGE].edge_index = torch.stack([index, (index + 1) % num])
    kg[RELATION_EDGE].edge_type = index % 2
    kg[RELATION_EDGE].relation_names = ["r0", "r1"]
    kg[ATTRIBUTE].num_nodes = 2
    kg[ATTRIBUTE].names = ["a0", "a1"]
    kg[ATTRIBUTE_EDGE].edge_index = torch.tensor([[0, 1], [0, 1]])
    kg[ATTRIBUTE_EDGE].value = torch.tensor([1.5, float("nan")])
    return kg


def _pair(num_links: int = 20) -> MMKGPair:
    source = _kg(num_links, img_present=[i % 2 == 0 for i in range(num_links)])
    target = _kg(num_links + 5, seed=1)
    index = torch.arange(num_links)
    return MMKGPair(source, target, torch.stack([index, index + 5]), name="Toy")


def _columns(links: torch.Tensor) -> set[tuple[int, int]]:
    return {tuple(col) for col in links.t().tolist()}


# --- construction -----------------------------------------------------------------


def test_pair_defaults() -> None:
    pair = _pair()
    assert pair.num_entities == (20, 25)
    assert pair.train_links.shape == (2, 0)
    assert pair.valid_links.shape == (2, 0)
    assert torch.equal(pair.test_links, pair.links)
    assert pair.links.dtype == torch.long


def test_pair_accepts_lists() -> None:
    pair = MMKGPair(_kg(3), _kg(3), [[0, 1], [2, 0]])
    assert pair.links.tolist() == [[0, 1], [2, 0]]
    assert pair.links.dtype == torch.long


@pytest.mark.parametrize("shape", [(3, 2), (6,), (2, 3, 1)])
def test_pair_bad_link_shape(shape: tuple[int, ...]) -> None:
    links = torch.zeros(shape, dtype=torch.long)
    with pytest.raises(ValueError, match=r"shape \(2, L\)"):
        MMKGPair(_kg(4), _kg(4), links)


@pytest.mark.parametrize(
    ("links", "side"),
    [
        ([[0, 4], [0, 1]], "source"),
        ([[0, -1], [0, 1]], "source"),
        ([[0, 1], [0, 6]], "target"),
        ([[0, 1], [-2, 1]], "target"),
    ],
)
def test_pair_out_of_range_links(links: list, side: str) -> None:
    with pytest.raises(ValueError, match=side):
        MMKGPair(_kg(4), _kg(6), torch.tensor(links))


def test_pair_empty_links() -> None:
    pair = MMKGPair(_kg(3), _kg(3), torch.empty(2, 0, dtype=torch.long))
    assert pair.links.shape == (2, 0)


# --- modalities -------------------------------------------------------------------


def test_feature_modalities_and_pair_modalities() -> None:
    pair = _pair()
    assert feature_modalities(pair.source) == ["img", "rel"]
    assert feature_modalities(pair.target) == ["rel"]
    assert pair.modalities == ["img", "rel"]


def test_modality_mask() -> None:
    pair = _pair(6)
    explicit = modality_mask(pair.source, "img")
    assert explicit.dtype == torch.bool
    assert explicit.tolist() == [True, False] * 3
    implicit = modality_mask(pair.source, "rel")  # feature without an explicit mask
    assert implicit.dtype == torch.bool and implicit.shape == (6,)
    assert bool(implicit.all())
    absent = modality_mask(pair.target, "img")  # modality the KG lacks
    assert absent.dtype == torch.bool and absent.shape == (11,)
    assert not bool(absent.any())


# --- split ------------------------------------------------------------------------


@pytest.mark.parametrize(("ratio", "num_train"), [(0.2, 4), (0.5, 10), (0.8, 16)])
def test_pair_split_ratio(ratio: float, num_train: int) -> None:
    pair = _pair().split(ratio, seed=0)
    assert pair.train_links.size(1) == num_train
    assert pair.test_links.size(1) == 20 - num_train
    assert pair.valid_links.size(1) == 0


def test_pair_split_disjoint_and_covering() -> None:
    pair = _pair()
    split = pair.split(0.3, seed=1, valid_ratio=0.2)
    train, valid, test = (
        _columns(split.train_links),
        _columns(split.valid_links),
        _columns(split.test_links),
    )
    assert (len(train), len(valid), len(test)) == (6, 4, 10)
    assert not (train & test or train & valid or valid & test)
    assert train | valid | test == _columns(pair.links)
    # The split is a new pair over the same KGs and links; the original is untouched.
    assert split.source is pair.source and torch.equal(split.links, pair.links)
    assert pair.train_links.size(1) == 0


def test_pair_split_seeded() -> None:
    pair = _pair()
    first, again, other = (pair.split(0.5, seed=s) for s in (3, 3, 4))
    assert torch.equal(first.train_links, again.train_links)
    assert torch.equal(first.test_links, again.test_links)
    assert _columns(first.train_links) != _columns(other.train_links)


def test_pair_split_bad_ratio() -> None:
    with pytest.raises(ValueError):
        _pair().split(1.0)


# --- persistence and conversion ---------------------------------------------------


def _assert_same_kg(a: HeteroData, b: HeteroData) -> None:
    assert a.node_types == b.node_types and a.edge_types == b.edge_types
    assert a[ENTITY].num_nodes == b[ENTITY].num_nodes
    assert a[ENTITY].ids == b[ENTITY].ids
    assert feature_modalities(a) == feature_modalities(b)
    for name in feature_modalities(a):
        assert torch.equal(a[ENTITY][f"x_{name}"], b[ENTITY][f"x_{name}"])
        assert torch.equal(modality_mask(a, name), modality_mask(b, name))
    assert torch.equal(a[RELATION_EDGE].edge_index, b[RELATION_EDGE].edge_index)
    assert torch.equal(a[RELATION_EDGE].edge_type, b[RELATION_EDGE].edge_type)
    assert a[RELATION_EDGE].relation_names == b[RELATION_EDGE].relation_names
    assert a[ATTRIBUTE].names == b[ATTRIBUTE].names
    assert torch.allclose(
        a[ATTRIBUTE_EDGE].value, b[ATTRIBUTE_EDGE].value, equal_nan=True
    )


def test_pair_save_load(tmp_path) -> None:
    pair = _pair().split(0.3, seed=2, valid_ratio=0.2)
    path = tmp_path / "pair.pt"
    pair.save(path)
    loaded = MMKGPair.load(path)
    assert loaded.name == "Toy"
    for key in ("links", "train_links", "valid_links", "test_links"):
        assert torch.equal(getattr(loaded, key), getattr(pair, key))
    _assert_same_kg(loaded.source, pair.source)
    _assert_same_kg(loaded.target, pair.target)
    assert repr(loaded) == repr(pair)


def test_pair_to_cpu() -> None:
    pair = _pair().split(0.5, seed=0)
    moved = pair.to("cpu")
    assert isinstance(moved, MMKGPair) and moved.name == pair.name
    assert moved.links.device.type == "cpu"
    assert moved.source[ENTITY].x_img.device.type == "cpu"
    assert torch.equal(moved.train_links, pair.train_links)
    assert torch.equal(moved.test_links, pair.test_links)
    _assert_same_kg(moved.target, pair.target)


def test_pair_pyg_round_trip() -> None:
    pair = _pair().split(0.4, seed=0)
    data = pair.to_pyg_pair("rel")
    assert isinstance(data, Data)
    assert torch.equal(data.x1, pair.source[ENTITY].x_rel)
    assert torch.equal(data.x2, pair.target[ENTITY].x_rel)
    assert torch.equal(data.edge_index1, pair.source[RELATION_EDGE].edge_index)
    assert torch.equal(data.edge_index2, pair.target[RELATION_EDGE].edge_index)
    assert torch.equal(data.train_y, pair.train_links)
    assert torch.equal(data.test_y, pair.test_links)

    back = MMKGPair.from_pyg_pair(data, modality="rel", name="Back")
    assert back.name == "Back" and back.modalities == ["rel"]
    assert back.num_entities == pair.num_entities
    assert torch.equal(back.train_links, pair.train_links)
    assert torch.equal(back.test_links, pair.test_links)
    assert _columns(back.links) == _columns(pair.links)
    again = back.to_pyg_pair("rel")
    for key in ("x1", "x2", "edge_index1", "edge_index2", "train_y", "test_y"):
        assert torch.equal(again[key], data[key])


def test_pair_repr_has_statistics() -> None:
    pair = _pair().split(0.2, seed=0, valid_ratio=0.1)
    text = repr(pair)
    assert text.startswith("Toy(")
    assert "source: entities=20, triples=20, relations=2, attributes=2" in text
    assert "img=4d/50%" in text and "rel=3d/100%" in text
    assert (
        "target: entities=25, triples=25, relations=2, attributes=2, rel=3d/100%"
        in text
    )
    assert "links=20, train=4, valid=2, test=14" in text


def test_pair_file_loads_without_unpickling_code(tmp_path) -> None:
    path = tmp_path / "pair.pt"
    pair = make_synthetic_pair().split(0.3, seed=0)
    pair.save(path)
    assert torch.load(path, weights_only=True)["source"]["entity"]["ids"]
    loaded = MMKGPair.load(path)
    _assert_same_kg(loaded.source, pair.source)
    assert torch.equal(loaded.train_links, pair.train_links)


def test_pair_load_refuses_code(tmp_path, payload, marker) -> None:
    path = tmp_path / "evil.pt"
    torch.save({**_pair().to_dict(), "name": payload}, path)
    with pytest.raises(pickle.UnpicklingError):
        MMKGPair.load(path)
    assert not marker.exists()


def test_pair_save_refuses_what_load_cannot_read(tmp_path) -> None:
    pair = _pair()
    pair.source[ENTITY].score = np.float64(0.5)
    with pytest.raises(TypeError, match=r"\['entity'\]\['score'\] is a float64"):
        pair.save(tmp_path / "pair.pt")
    assert not (tmp_path / "pair.pt").exists()
