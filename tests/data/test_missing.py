import pytest
import torch
from torch_geometric.data import HeteroData

from almea_pyg.data.missing import DropModality, FillMissing, propagate_features
from almea_pyg.data.pair import modality_mask
from almea_pyg.data.synthetic import make_synthetic_pair
from almea_pyg.typing import ENTITY, RELATION_EDGE


@pytest.fixture
def pair():
    return make_synthetic_pair(num_entities=80, seed=1)


def test_drop_removes_the_drawn_share_on_both_sides(pair):
    before = [modality_mask(kg, "img").clone() for kg in (pair.source, pair.target)]
    x_before = pair.source[ENTITY].x_img.clone()
    transform = DropModality("img", 0.4, seed=3)
    out = transform(pair)
    for side, (kg, mask) in enumerate(zip((out.source, out.target), before)):
        n = kg[ENTITY].num_nodes
        dropped = transform.dropped(n, side)
        assert dropped.numel() == round(0.4 * n)
        after = modality_mask(kg, "img")
        assert not after[dropped].any()
        assert (kg[ENTITY].x_img[dropped] == 0).all()
        kept = torch.ones(n, dtype=torch.bool)
        kept[dropped] = False
        assert torch.equal(after[kept], mask[kept])
    # the input is left as it was; the draw is the seed's, and differs per side
    assert torch.equal(pair.source[ENTITY].x_img, x_before)
    assert torch.equal(modality_mask(pair.source, "img"), before[0])
    assert torch.equal(
        DropModality("img", 0.4, seed=3).dropped(80), transform.dropped(80)
    )
    assert not torch.equal(transform.dropped(80, 0), transform.dropped(80, 1))
    assert out.links is pair.links


def test_drop_rejects_unknown_modality_and_bad_fraction(pair):
    with pytest.raises(ValueError, match="no modality 'text'"):
        DropModality("text", 0.2)(pair)
    with pytest.raises(ValueError, match="fraction"):
        DropModality("img", 1.5)


def test_mean_fill_uses_the_observed_rows_and_marks_present(pair):
    dropped = DropModality("attr", 0.5, seed=0)(pair)
    out = FillMissing("mean", modalities=["attr"])(dropped)
    for kg, filled in ((dropped.source, out.source), (dropped.target, out.target)):
        present = modality_mask(kg, "attr")
        x = kg[ENTITY].x_attr
        assert torch.allclose(
            filled[ENTITY].x_attr[~present],
            x[present].mean(dim=0).expand(int((~present).sum()), -1),
        )
        assert torch.equal(filled[ENTITY].x_attr[present], x[present])
        assert modality_mask(filled, "attr").all()
        # modalities not named are left alone
        assert torch.equal(filled[ENTITY].x_img_mask, kg[ENTITY].x_img_mask)


def test_zero_fill_leaves_rows_and_masks_as_they_are(pair):
    out = FillMissing("zero")(pair)
    for kg, same in ((pair.source, out.source), (pair.target, out.target)):
        for key in ("x_attr", "x_attr_mask", "x_img", "x_img_mask"):
            assert torch.equal(kg[ENTITY][key], same[ENTITY][key])


def test_propagation_averages_observed_neighbours():
    # path 0 - 1 - 2 - 3, node 4 isolated; rows 1 and 4 missing
    x = torch.tensor([[2.0], [0.0], [4.0], [8.0], [0.0]])
    present = torch.tensor([True, False, True, True, False])
    edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
    out = propagate_features(x, present, edge_index, num_iterations=5)
    assert out[1].item() == pytest.approx(3.0)  # mean of nodes 0 and 2
    assert out[4].item() == pytest.approx(14.0 / 3)  # no neighbour: the mean row
    assert torch.equal(out[present], x[present])


def test_propagation_reaches_missing_rows_through_missing_ones():
    # 0 observed, 1 and 2 missing in a chain: 2 learns from 0 through 1
    x = torch.tensor([[6.0], [0.0], [0.0], [0.0]])
    present = torch.tensor([True, False, False, True])
    edge_index = torch.tensor([[0, 1], [1, 2]])
    out = propagate_features(x, present, edge_index, num_iterations=50)
    assert out[1].item() == pytest.approx(6.0, abs=1e-4)
    assert out[2].item() == pytest.approx(6.0, abs=1e-4)


def test_propagate_fill_on_one_kg():
    kg = HeteroData()
    kg[ENTITY].num_nodes = 3
    kg[ENTITY].x_attr = torch.tensor([[1.0, 0.0], [0.0, 0.0], [3.0, 2.0]])
    kg[ENTITY].x_attr_mask = torch.tensor([True, False, True])
    kg[RELATION_EDGE].edge_index = torch.tensor([[1, 1], [0, 2]])
    out = FillMissing("propagate")(kg)
    assert torch.allclose(out[ENTITY].x_attr[1], torch.tensor([2.0, 1.0]))
    assert out[ENTITY].x_attr_mask.all()
    assert not kg[ENTITY].x_attr_mask[1]
