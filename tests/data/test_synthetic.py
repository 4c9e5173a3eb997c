import inspect

import pytest
import torch
import torch.nn.functional as F

from almea_pyg.data.features import BuildModalityFeatures
from almea_pyg.data.pair import MMKGPair
from almea_pyg.data.split import split_links
from almea_pyg.data.synthetic import SYNTHETIC_DEFAULTS, make_synthetic_pair
from almea_pyg.typing import ATTRIBUTE, ATTRIBUTE_EDGE, ENTITY, RELATION_EDGE

SMALL = dict(num_entities=400, num_relations=12, num_attributes=15, img_dim=16)


@pytest.fixture(scope="module")
def pair() -> MMKGPair:
    return make_synthetic_pair(**SYNTHETIC_DEFAULTS)


def kg_tensors(kg) -> dict:
    out = {}
    for store in kg.stores:
        for key, value in store.items():
            out[(store._key, key)] = value
    return out


def assert_pairs_equal(a: MMKGPair, b: MMKGPair) -> None:
    assert torch.equal(a.links, b.links)
    for kg_a, kg_b in ((a.source, b.source), (a.target, b.target)):
        ta, tb = kg_tensors(kg_a), kg_tensors(kg_b)
        assert ta.keys() == tb.keys()
        for key, value in ta.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value.nan_to_num(-1.0), tb[key].nan_to_num(-1.0)), (
                    key
                )
            else:
                assert value == tb[key], key


def nn_hits1(x_s, x_t, links, mask_s=None, mask_t=None) -> float:
    """Cosine nearest-neighbour Hits@1 over the links whose two ends have features."""
    src, tgt = links
    candidates = torch.arange(x_t.size(0))
    if mask_s is not None:
        keep = mask_s[src] & mask_t[tgt]
        src, tgt, candidates = src[keep], tgt[keep], mask_t.nonzero().view(-1)
    scores = F.normalize(x_s[src], dim=1) @ F.normalize(x_t[candidates], dim=1).T
    return (candidates[scores.argmax(dim=1)] == tgt).float().mean().item()


def seed_neighbour_profile(kg, seeds):
    """Structure-only features: which seed entities each entity is adjacent to."""
    num = kg[ENTITY].num_nodes
    seed_id = torch.full((num,), -1)
    seed_id[seeds] = torch.arange(seeds.numel())
    edge_index = kg[RELATION_EDGE].edge_index
    rows, cols = edge_index.flip(0).reshape(-1), seed_id[edge_index.reshape(-1)]
    x = torch.zeros(num, seeds.numel())
    x[rows[cols >= 0], cols[cols >= 0]] = 1.0
    return x


def test_defaults_match_signature():
    params = inspect.signature(make_synthetic_pair).parameters
    assert dict(SYNTHETIC_DEFAULTS) == {k: p.default for k, p in params.items()}


def test_deterministic_under_seed():
    a = make_synthetic_pair(**SMALL, seed=3)
    assert_pairs_equal(a, make_synthetic_pair(**SMALL, seed=3))
    b = make_synthetic_pair(**SMALL, seed=4)
    assert a.links.shape != b.links.shape or not torch.equal(a.links, b.links)
    assert not torch.equal(a.source[ENTITY].x_img[:5], b.source[ENTITY].x_img[:5])


def test_does_not_touch_global_rng():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    make_synthetic_pair(**SMALL)
    assert torch.equal(torch.rand(3), expected)


def test_shapes_names_and_features(pair):
    assert pair.name == "synthetic"
    assert pair.modalities == ["attr", "img", "rel"]
    num_relations = SYNTHETIC_DEFAULTS["num_relations"]
    merged = SYNTHETIC_DEFAULTS["merged_relations"]
    for prefix, kg, relations in (
        ("s", pair.source, num_relations),
        ("t", pair.target, num_relations - merged),
    ):
        store, num = kg[ENTITY], kg[ENTITY].num_nodes
        assert len(store.ids) == num and store.ids[0].startswith(f"{prefix}:e")
        assert store.x_img.shape == (num, SYNTHETIC_DEFAULTS["img_dim"])
        assert store.x_rel.shape == (num, num_relations)  # padded to a common width
        assert store.x_attr.shape == (num, SYNTHETIC_DEFAULTS["num_attributes"])
        for name in ("img", "rel", "attr"):
            assert store[f"x_{name}_mask"].dtype == torch.bool
            assert torch.isfinite(store[f"x_{name}"]).all()
        norms = store.x_img.norm(dim=1)
        assert torch.allclose(norms[store.x_img_mask], torch.ones(1))
        assert (norms[~store.x_img_mask] == 0).all()
        edges = kg[RELATION_EDGE]
        assert len(edges.relation_names) == relations
        assert edges.edge_type.unique().numel() == relations
        assert (edges.edge_index[0] != edges.edge_index[1]).all()
        assert len(kg[ATTRIBUTE].names) == kg[ATTRIBUTE].num_nodes
        value = kg[ATTRIBUTE_EDGE].value
        assert value.shape == (kg[ATTRIBUTE_EDGE].edge_index.size(1),)
        assert 0.0 < value.isnan().float().mean() < 0.5


def test_features_match_the_transform():
    pair = make_synthetic_pair(**SMALL)
    rebuilt = BuildModalityFeatures()(pair)
    for kg, other in ((pair.source, rebuilt.source), (pair.target, rebuilt.target)):
        for key in ("x_rel", "x_rel_mask", "x_attr", "x_attr_mask"):
            assert torch.equal(kg[ENTITY][key], other[ENTITY][key]), key


@pytest.mark.parametrize("side", [0, 1])
def test_missing_rates(pair, side):
    kg = (pair.source, pair.target)[side][ENTITY]
    missing_img = 1.0 - kg.x_img_mask.float().mean().item()
    assert missing_img == pytest.approx(
        SYNTHETIC_DEFAULTS["missing_img"][side], abs=0.01
    )
    # Attribute dropout leaves a few more entities without attributes.
    missing_attr = 1.0 - kg.x_attr_mask.float().mean().item()
    rate = SYNTHETIC_DEFAULTS["missing_attr"][side]
    assert rate - 0.01 <= missing_attr <= rate + 0.1


def test_links_valid_one_to_one_and_shuffled(pair):
    src, tgt = pair.links
    assert src.unique().numel() == tgt.unique().numel() == src.numel()
    num_s, num_t = pair.num_entities
    assert int(src.max()) < num_s and int(tgt.max()) < num_t
    # Entity dropout: some entities on each side have no counterpart.
    keep = (1.0 - SYNTHETIC_DEFAULTS["entity_dropout"]) ** 2
    assert src.numel() == pytest.approx(
        keep * SYNTHETIC_DEFAULTS["num_entities"], rel=0.05
    )
    assert src.numel() < min(num_s, num_t)
    assert (src != tgt).float().mean() > 0.9


def test_degree_distribution_is_heavy_tailed(pair):
    kg = pair.source
    degree = torch.bincount(
        kg[RELATION_EDGE].edge_index.reshape(-1), minlength=kg[ENTITY].num_nodes
    ).float()
    assert degree.max() > 10 * degree.mean()
    assert degree.median() < degree.mean()


def test_no_single_modality_solves_it(pair):
    source, target = pair.source[ENTITY], pair.target[ENTITY]
    hits = {
        name: nn_hits1(
            source[f"x_{name}"],
            target[f"x_{name}"],
            pair.links,
            source[f"x_{name}_mask"],
            target[f"x_{name}_mask"],
        )
        for name in ("img", "rel", "attr")
    }
    assert 0.05 < hits["img"] < 0.8
    assert hits["rel"] < 0.5 and hits["attr"] < 0.5

    # Structure alone (adjacency to 30 % seed links) is also far from solving it,
    # and all signals together beat every single one.
    train, _, test = split_links(pair.links, 0.3, seed=0)
    structure = [
        seed_neighbour_profile(kg, seeds)
        for kg, seeds in zip((pair.source, pair.target), train)
    ]
    hits["graph"] = nn_hits1(structure[0], structure[1], test)
    assert hits["graph"] < 0.8
    joint = [
        torch.cat(
            [F.normalize(store[f"x_{name}"], dim=1) for name in ("img", "rel", "attr")]
            + [F.normalize(x, dim=1)],
            dim=1,
        )
        for store, x in zip((source, target), structure)
    ]
    assert nn_hits1(joint[0], joint[1], test) > max(hits.values()) + 0.05


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(power_law_exponent=2.0), "power_law_exponent"),
        (dict(num_entities=1), "at least"),
        (dict(missing_img=(0.05, 1.0)), "missing rates"),
        (dict(edge_dropout=-0.1), "dropout"),
    ],
)
def test_invalid_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_synthetic_pair(**kwargs)
