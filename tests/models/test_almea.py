import pytest
import torch

from almea_pyg.data.synthetic import make_synthetic_pair
from almea_pyg.metrics import evaluate_alignment
from almea_pyg.models import ALMEA, PairInputs


@pytest.fixture(scope="module")
def pair():
    return make_synthetic_pair(num_entities=300, seed=1).split(0.3, seed=0)


def small_model(pair, **kwargs):
    torch.manual_seed(0)
    return ALMEA.from_pair(pair, dim=16, **kwargs)


def seed_losses(model, inputs, links):
    out = model(inputs.features, inputs.edge_index, inputs.present, *links)
    return model.loss(out)


def test_repr_and_modalities(pair):
    model = small_model(pair)
    assert model.modalities == ["graph", "attr", "img", "rel"]
    assert repr(model) == (
        "ALMEA(modalities=['graph', 'attr', 'img', 'rel'], dim=16, lsl=True, lsc=True)"
    )
    assert "lsl=False" in repr(small_model(pair, use_lsl=False))


def test_loss_settings_go_to_the_criterion(pair):
    model = small_model(pair, lambda_dml=0.0, temperature=0.2, latent_chunk_size=None)
    assert model.criterion.lambdas["dml"] == 0.0
    assert model.criterion.temperature == 0.2
    assert model.criterion.latent_chunk_size is None
    assert not list(model.criterion.parameters())
    with pytest.raises(ValueError, match="latent_chunk_size"):
        small_model(pair, latent_chunk_size=0)


def test_forward_shapes_on_rows(pair):
    model = small_model(pair)
    inputs = model.inputs(pair)
    source, target = pair.train_links[0, :5], pair.train_links[1, :7]
    out = model(inputs.features, inputs.edge_index, inputs.present, source, target)
    assert out.num_source == 5
    assert out.joint.shape == (12, 16)
    for m in model.modalities:
        assert out.h[m].shape == (12, 16)
        assert out.present[m].shape == (12,)
    index = torch.cat([source, target + pair.num_entities[0]])
    assert torch.equal(out.present["img"], inputs.present["img"][index])
    assert out.present["graph"].all()
    # One side given: all entities of the other.
    out = model(inputs.features, inputs.edge_index, inputs.present, source)
    assert out.joint.size(0) == 5 + pair.num_entities[1]


def test_forward_on_every_entity_equals_the_rows(pair):
    model = small_model(pair).eval()
    inputs = model.inputs(pair)
    whole = model(inputs.features, inputs.edge_index, inputs.present)
    assert whole.num_source == pair.num_entities[0]
    assert whole.joint.size(0) == sum(pair.num_entities)
    source, target = pair.test_links[0, :4], pair.test_links[1, :4]
    rows = model(inputs.features, inputs.edge_index, inputs.present, source, target)
    index = torch.cat([source, target + pair.num_entities[0]])
    torch.testing.assert_close(rows.joint, whole.joint[index])


def test_forward_without_masks_has_every_modality(pair):
    model = small_model(pair).eval()
    inputs = model.inputs(pair)
    out = model(inputs.features, inputs.edge_index)
    assert all(mask.all() for mask in out.present.values())
    masked = model(inputs.features, inputs.edge_index, inputs.present)
    complete = torch.stack([inputs.present[m] for m in inputs.present]).all(dim=0)
    torch.testing.assert_close(out.joint[complete], masked.joint[complete])


def test_forward_refuses_features_of_another_size(pair):
    model = small_model(pair)
    inputs = model.inputs(pair)
    xs, xt = inputs.features["img"]
    features = {**inputs.features, "img": (xs[:-1], xt)}
    with pytest.raises(ValueError, match="'img'"):
        model(features, inputs.edge_index, inputs.present)


def test_inputs_are_gathered_afresh(pair):
    model = small_model(pair)
    first, second = model.inputs(pair), model.inputs(pair)
    assert first is not second
    assert isinstance(first, PairInputs)
    assert sorted(first.features) == ["attr", "img", "rel"]
    other = make_synthetic_pair(num_entities=120, seed=1)
    with pytest.raises(ValueError, match="entities"):
        model.inputs(other)


def test_loss_and_gradients(pair):
    model = small_model(pair)
    losses = seed_losses(model, model.inputs(pair), pair.train_links[:, :64])
    losses["loss"].backward()
    for name in ("structure", "encoders", "fusion", "modality_weighting", "lsl", "lsc"):
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name


def test_modality_subset(pair):
    model = ALMEA.from_pair(pair, dim=8, modalities=["rel", "attr"])
    assert model.modalities == ["attr", "rel"] and model.structure is None
    with pytest.raises(ValueError, match="unknown modalities"):
        ALMEA.from_pair(pair, modalities=["text"])


def test_embed_and_imputation(pair):
    model = small_model(pair)
    emb_s, emb_t = model.embed(pair, impute_missing=False)
    assert emb_s.shape == (pair.num_entities[0], 16)
    assert emb_t.shape == (pair.num_entities[1], 16)
    assert not emb_s.requires_grad  # inference builds no autograd graph
    imp_s, imp_t = model.embed(pair, impute_missing=True)
    inputs = model.inputs(pair)
    complete = torch.stack(list(inputs.present.values())).all(dim=0)
    changed = ~torch.isclose(torch.cat([emb_s, emb_t]), torch.cat([imp_s, imp_t])).all(
        1
    )
    assert changed.any()
    assert not (changed & complete).any()
    assert model.training
    # The inputs give what the pair gives.
    torch.testing.assert_close(model.embed(inputs, impute_missing=True)[0], imp_s)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"fusion": "concat"},
        {"use_lsl": False},
        {"imputer": "linear"},
        {"use_lsl": False, "imputer": "linear"},
    ],
)
def test_embed_in_batches_is_embed_at_once(pair, options):
    # after the GAT (run once on the whole graph) everything works row by row:
    # batches, whether they split the sources, the targets or cross from one
    # to the other, give the embeddings of all rows at once
    model = small_model(pair, **options)
    num_s = pair.num_entities[0]
    for impute in (False, True):
        whole = torch.cat(model.embed(pair, impute_missing=impute, batch_size=None))
        for batch_size in (7, num_s - 1, num_s + 5):
            emb_s, emb_t = model.embed(
                pair, impute_missing=impute, batch_size=batch_size
            )
            assert emb_s.shape[0] == num_s
            torch.testing.assert_close(torch.cat([emb_s, emb_t]), whole)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        model.embed(pair, batch_size=0)


def test_linear_imputer(pair):
    # fitted on the model's embeddings whenever embed imputes; it imputes for
    # the base model too, where LSL's imputation does nothing
    with pytest.raises(ValueError, match="imputer must be one of"):
        small_model(pair, imputer="knn")
    for options in ({}, {"use_lsl": False}):
        model = small_model(pair, imputer="linear", **options)
        assert (
            model.can_impute
            and model.state_dict().keys()
            == small_model(pair, **options).state_dict().keys()
        )
        plain = torch.cat(model.embed(pair, impute_missing=False))
        imputed = torch.cat(model.embed(pair, impute_missing=True))
        present = model.inputs(pair).present
        complete = torch.stack(list(present.values())).all(dim=0)
        changed = ~torch.isclose(plain, imputed).all(dim=1)
        assert changed.any() and not (changed & complete).any()
    base = small_model(pair, use_lsl=False)
    assert not base.can_impute
    torch.testing.assert_close(
        torch.cat(base.embed(pair, impute_missing=True)),
        torch.cat(base.embed(pair, impute_missing=False)),
    )
    with pytest.raises(RuntimeError, match="LSL imputation needs use_lsl"):
        base.impute({}, {})


def test_modality_absent_from_one_kg(pair):
    target = pair.target.clone()
    del target["entity"].x_img
    del target["entity"].x_img_mask
    one_sided = type(pair)(
        pair.source,
        target,
        pair.links,
        train_links=pair.train_links,
        test_links=pair.test_links,
    )
    model = small_model(one_sided)
    assert model.in_channels["img"] == pair.source["entity"].x_img.size(1)
    inputs = model.inputs(one_sided)
    losses = seed_losses(model, inputs, one_sided.train_links[:, :64])
    assert torch.isfinite(losses["loss"])
    emb_s, emb_t = model.embed(one_sided)
    assert torch.isfinite(emb_t).all()


def train_full_batch(model, pair, steps=30):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    inputs = model.inputs(pair)
    for _ in range(steps):
        loss = seed_losses(model, inputs, pair.train_links)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return evaluate_alignment(*model.embed(pair), pair.test_links, metric="csls")


def test_training_beats_random_ranking(pair):
    metrics = train_full_batch(small_model(pair), pair)
    num_test = pair.test_links.size(1)
    random_mrr = 100 * sum(1 / r for r in range(1, num_test + 1)) / num_test
    assert metrics["mrr"] > 5 * random_mrr
    assert metrics["hits@1"] > 20


def test_structure_only_is_clearly_worse_on_the_synthetic_pair(pair):
    """SPEC §3: the synthetic pair must reward the other modalities."""

    def trained_mrr(modalities):
        return train_full_batch(small_model(pair, modalities=modalities), pair)["mrr"]

    assert trained_mrr(None) > trained_mrr(["graph"]) + 10
