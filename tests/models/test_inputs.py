import pytest
import torch
from torch_geometric.data import HeteroData

from almea_pyg.data.pair import MMKGPair
from almea_pyg.models.inputs import PairInputs
from almea_pyg.typing import ENTITY, RELATION_EDGE


def _kg(num: int, edges: list[tuple[int, int]] | None) -> HeteroData:
    kg = HeteroData()
    kg[ENTITY].num_nodes = num
    if edges is not None:
        kg[RELATION_EDGE].edge_index = torch.tensor(edges, dtype=torch.long).t()
        kg[RELATION_EDGE].edge_type = torch.zeros(len(edges), dtype=torch.long)
    return kg


def _pair() -> MMKGPair:
    """Source: 3 entities, rel (3 features) and img (4, with a mask); target:
    4 entities, rel (5 features, double), attr (2), no img."""
    source = _kg(3, [(0, 1), (1, 2)])
    source[ENTITY].x_rel = torch.rand(3, 3)
    source[ENTITY].x_img = torch.rand(3, 4)
    source[ENTITY].x_img_mask = torch.tensor([True, False, True])
    target = _kg(4, [(0, 3), (3, 0), (1, 1)])
    target[ENTITY].x_rel = torch.rand(4, 5, dtype=torch.double)
    target[ENTITY].x_attr = torch.rand(4, 2)
    target[ENTITY].x_attr_mask = torch.tensor([False, True, True, False])
    return MMKGPair(source, target, torch.tensor([[0, 1, 2], [0, 1, 3]]))


def test_union_graph_is_undirected_with_target_offset() -> None:
    inputs = PairInputs.from_pair(_pair())
    assert (inputs.num_source, inputs.num_target, inputs.num_entities) == (3, 4, 7)
    edges = {tuple(e) for e in inputs.edge_index.t().tolist()}
    assert edges == {(0, 1), (1, 0), (1, 2), (2, 1), (3, 6), (6, 3), (4, 4)}
    assert inputs.edge_index.size(1) == len(edges)  # no duplicates


def test_kg_without_relation_edges() -> None:
    source = _kg(2, None)
    source[ENTITY].x_rel = torch.rand(2, 3)
    target = _kg(3, [(2, 0)])
    target[ENTITY].x_rel = torch.rand(3, 3)
    inputs = PairInputs.from_pair(MMKGPair(source, target, torch.tensor([[0], [0]])))
    assert inputs.edge_index.tolist() == [[2, 4], [4, 2]]


def test_features_and_presence() -> None:
    pair = _pair()
    inputs = PairInputs.from_pair(pair)
    assert sorted(inputs.features) == sorted(inputs.present) == ["attr", "img", "rel"]
    xs, xt = inputs.features["rel"]
    assert torch.equal(xs, pair.source[ENTITY].x_rel)
    assert xt.dtype == torch.float32 and xt.shape == (4, 5)
    torch.testing.assert_close(xt, pair.target[ENTITY].x_rel.float())
    assert inputs.present["rel"].tolist() == [True] * 7
    for name, mask in inputs.present.items():
        assert mask.dtype == torch.bool and mask.shape == (7,), name


@pytest.mark.parametrize(
    ("name", "missing_side", "dim", "present"),
    [
        ("img", 1, 4, [True, False, True] + [False] * 4),
        ("attr", 0, 2, [False] * 3 + [False, True, True, False]),
    ],
)
def test_one_sided_modality_is_zero_and_absent(
    name: str, missing_side: int, dim: int, present: list[bool]
) -> None:
    pair = _pair()
    inputs = PairInputs.from_pair(pair)
    features = inputs.features[name]
    missing = features[missing_side]
    assert missing.shape == ((3, 4)[missing_side], dim)
    assert torch.equal(missing, torch.zeros_like(missing))
    kept = (pair.source, pair.target)[1 - missing_side][ENTITY][f"x_{name}"]
    assert torch.equal(features[1 - missing_side], kept)
    assert inputs.present[name].tolist() == present


def test_modalities_argument() -> None:
    inputs = PairInputs.from_pair(_pair(), modalities=["img"])
    assert list(inputs.features) == list(inputs.present) == ["img"]
    with pytest.raises(ValueError, match="text"):
        PairInputs.from_pair(_pair(), modalities=["text"])


def test_in_channels() -> None:
    inputs = PairInputs.from_pair(_pair())
    # rel: per-side vocabularies; img, attr: the zero side copies the other's size.
    assert inputs.in_channels() == {"attr": (2, 2), "img": 4, "rel": (3, 5)}
    assert inputs.in_channels(shared=("attr", "rel")) == {
        "attr": 2,
        "img": (4, 4),
        "rel": (3, 5),  # sizes differ: cannot share
    }
