import copy

import pytest
import torch
from torch_geometric.data import HeteroData

from almea_pyg.data.features import (
    BuildModalityFeatures,
    bag_of_attributes,
    bag_of_relations,
    build_features,
    feature_matrix,
    top_k_columns,
)
from almea_pyg.data.pair import MMKGPair
from almea_pyg.typing import ATTRIBUTE, ATTRIBUTE_EDGE, ENTITY, RELATION_EDGE

# Triples (h, r, t): r1 twice, r0 and r2 once each (tie: r0 ranks before r2),
# r3 never; (0, r2, 0) is a self-loop.
EDGE_INDEX = torch.tensor([[0, 1, 2, 0], [1, 2, 0, 0]])
EDGE_TYPE = torch.tensor([1, 1, 0, 2])
# Columns by frequency: [r1, r0, r2, r3].
EXPECTED_RELATIONS = torch.tensor(
    [
        [1.0, 1.0, 2.0, 0.0],
        [2.0, 0.0, 0.0, 0.0],
        [1.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0],
    ]
)


def make_kg() -> HeteroData:
    kg = HeteroData()
    kg[ENTITY].num_nodes = 4
    kg[RELATION_EDGE].edge_index = EDGE_INDEX
    kg[RELATION_EDGE].edge_type = EDGE_TYPE
    kg[RELATION_EDGE].relation_names = ["r0", "r1", "r2", "r3"]
    kg[ATTRIBUTE].num_nodes = 3
    kg[ATTRIBUTE].names = ["a0", "a1", "a2"]
    kg[ATTRIBUTE_EDGE].edge_index = torch.tensor([[0, 0, 0, 2], [1, 1, 0, 1]])
    kg[ATTRIBUTE_EDGE].value = torch.tensor([1.0, 2.0, float("nan"), 3.0])
    return kg


def test_top_k_columns_orders_by_frequency_then_id():
    ids = torch.tensor([2, 2, 0, 3, 3, 1])
    assert top_k_columns(ids, 5, 10).tolist() == [2, 3, 0, 1, 4]
    assert top_k_columns(ids, 5, 2).tolist() == [-1, -1, 0, 1, -1]
    with pytest.raises(ValueError, match="top_k"):
        top_k_columns(ids, 5, 0)


def test_bag_of_relations_counts_both_directions():
    x = bag_of_relations(EDGE_INDEX, EDGE_TYPE, 4, num_relations=4)
    assert x.dtype == torch.float32
    assert torch.equal(x, EXPECTED_RELATIONS)
    # Every triple contributes twice.
    assert x.sum() == 2 * EDGE_TYPE.numel()


@pytest.mark.parametrize("top_k", [1, 2, 3])
def test_bag_of_relations_top_k_keeps_most_frequent(top_k):
    x = bag_of_relations(EDGE_INDEX, EDGE_TYPE, 4, num_relations=4, top_k=top_k)
    assert torch.equal(x, EXPECTED_RELATIONS[:, :top_k])


def test_bag_of_relations_infers_num_relations_and_checks_input():
    assert bag_of_relations(EDGE_INDEX, EDGE_TYPE, 4).shape == (4, 3)
    empty = bag_of_relations(
        torch.empty(2, 0, dtype=torch.long), torch.empty(0).long(), 3
    )
    assert empty.shape == (3, 0)
    with pytest.raises(ValueError, match="edge_index"):
        bag_of_relations(EDGE_INDEX, EDGE_TYPE, 2)
    with pytest.raises(ValueError, match="edge_type"):
        bag_of_relations(EDGE_INDEX, EDGE_TYPE, 4, num_relations=2)
    with pytest.raises(ValueError, match="one relation id per edge"):
        bag_of_relations(EDGE_INDEX, EDGE_TYPE[:2], 4)


def test_bag_of_attributes_multi_hot_and_mask():
    edge_index = torch.tensor([[0, 0, 0, 2], [1, 1, 0, 1]])
    x, mask = bag_of_attributes(edge_index, 4, 3)
    # Columns by frequency: [a1, a0, a2].
    assert torch.equal(x, torch.tensor([[1.0, 1, 0], [0, 0, 0], [1, 0, 0], [0, 0, 0]]))
    assert mask.tolist() == [True, False, True, False]
    counts, _ = bag_of_attributes(edge_index, 4, 3, binary=False)
    assert counts[0].tolist() == [2.0, 1.0, 0.0]
    # Truncated to a1 only: entity 0 and 2 keep it.
    x1, mask1 = bag_of_attributes(torch.tensor([[0, 1, 1], [1, 0, 0]]), 3, 2, top_k=1)
    assert x1.shape == (3, 1)
    assert x1.squeeze(1).tolist() == [0.0, 1.0, 0.0]
    assert mask1.tolist() == [False, True, False]
    with pytest.raises(ValueError, match="attribute ids"):
        bag_of_attributes(edge_index, 4, 1)


@pytest.mark.parametrize("normalize", [True, False])
def test_feature_matrix_scatters_rows(normalize):
    features = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    x, mask = feature_matrix(torch.tensor([2, 0]), features, 4, normalize=normalize)
    assert mask.tolist() == [True, False, True, False]
    expected = features / features.norm(dim=1, keepdim=True) if normalize else features
    assert torch.allclose(x[[2, 0]], expected)
    assert torch.equal(x[~mask], torch.zeros(2, 2))


@pytest.mark.parametrize(
    "index, features, match",
    [
        (torch.tensor([0, 0]), torch.ones(2, 3), "duplicate"),
        (torch.tensor([0, 5]), torch.ones(2, 3), r"\[0, 4\)"),
        (torch.tensor([-1, 1]), torch.ones(2, 3), r"\[0, 4\)"),
        (torch.tensor([0, 1]), torch.ones(3, 3), "expected index"),
        (torch.tensor([0, 1]), torch.tensor([[1.0], [float("nan")]]), "NaN"),
    ],
)
def test_feature_matrix_errors(index, features, match):
    with pytest.raises(ValueError, match=match):
        feature_matrix(index, features, 4)


def test_build_features_adds_modalities():
    kg = build_features(make_kg())
    store = kg[ENTITY]
    # relation_names gives 4 relations, r3 never used (last column).
    assert torch.equal(store.x_rel, EXPECTED_RELATIONS)
    assert store.x_rel_mask.tolist() == [True, True, True, False]
    assert store.x_attr.shape == (4, 3)
    assert store.x_attr_mask.tolist() == [True, False, True, False]


def test_build_features_without_attributes():
    kg = make_kg()
    del kg[ATTRIBUTE_EDGE]
    kg = build_features(kg, top_k=2)
    assert kg[ENTITY].x_rel.shape == (4, 2)
    assert "x_attr" not in kg[ENTITY]


def test_transform_on_hetero_data_leaves_input_untouched():
    kg = make_kg()
    transform = BuildModalityFeatures(top_k=2)
    assert repr(transform) == "BuildModalityFeatures(top_k=2)"
    out = transform(kg)
    assert "x_rel" not in kg[ENTITY]
    assert out[ENTITY].x_rel.shape == (4, 2)
    assert out[ENTITY].x_attr.shape == (4, 2)
    assert out[RELATION_EDGE].edge_index is kg[RELATION_EDGE].edge_index


def test_transform_on_pair_uses_per_kg_top_k():
    source = make_kg()
    target = copy.deepcopy(source)
    # Rename relations on the target: the frequency order stays the same.
    target[RELATION_EDGE].edge_type = torch.tensor([3, 3, 0, 1])
    pair = MMKGPair(source, target, torch.tensor([[0, 1], [0, 1]]), name="toy")
    out = BuildModalityFeatures()(pair)
    assert isinstance(out, MMKGPair) and out.name == "toy"
    assert "x_rel" not in pair.source[ENTITY]
    assert torch.equal(out.source[ENTITY].x_rel, EXPECTED_RELATIONS)
    assert torch.equal(out.target[ENTITY].x_rel, out.source[ENTITY].x_rel)
    assert out.modalities == ["attr", "rel"]
    with pytest.raises(TypeError):
        BuildModalityFeatures()(torch.zeros(2))
