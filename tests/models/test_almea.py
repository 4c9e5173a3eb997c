import pytest
import torch

from almea_pyg.data.synthetic import make_synthetic_pair
from almea_pyg.metrics import evaluate_alignment
from almea_pyg.models import ALMEA

LATENT_TERMS = ("scl", "dml", "url", "jal")


@pytest.fixture(scope="module")
def pair():
    return make_synthetic_pair(num_entities=300, seed=1).split(0.3, seed=0)


def small_model(pair, **kwargs):
    torch.manual_seed(0)
    return ALMEA.from_pair(pair, dim=16, **kwargs)


def test_repr_and_modalities(pair):
    model = small_model(pair)
    assert model.modalities == ["graph", "attr", "img", "rel"]
    assert repr(model) == (
        "ALMEA(modalities=['graph', 'attr', 'img', 'rel'], dim=16, lsl=True, lsc=True)"
    )
    assert "lsl=False" in repr(small_model(pair, use_lsl=False))


def test_forward_losses_and_gradients(pair):
    model = small_model(pair)
    losses = model(pair, pair.train_links[:, :64])
    assert set(losses) == {"joint", "modal", "base", "loss", *LATENT_TERMS}
    assert all(torch.isfinite(v) for v in losses.values())
    expected = losses["base"] + sum(losses[k] for k in LATENT_TERMS)
    assert torch.allclose(losses["loss"], expected)
    losses["loss"].backward()
    for name in ("structure", "encoders", "fusion", "lsl", "lsc"):
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name


def _losses_and_grads(model, pair, links):
    losses = model(pair, links)
    model.zero_grad()
    losses["loss"].backward()
    grads = {
        n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None
    }
    return {k: v.detach() for k, v in losses.items()}, grads


def test_latent_chunks_equal_one_chunk_without_randomness(pair):
    # Eval mode: no masking, no sampling, so chunking must not change a thing.
    links = pair.train_links[:, :70]
    whole = small_model(pair, latent_chunk_size=None).eval()
    chunked = small_model(pair, latent_chunk_size=16).eval()
    losses_w, grads_w = _losses_and_grads(whole, pair, links)
    losses_c, grads_c = _losses_and_grads(chunked, pair, links)
    for key in LATENT_TERMS + ("loss",):
        assert torch.allclose(losses_c[key], losses_w[key], rtol=1e-5), key
    assert grads_c.keys() == grads_w.keys()
    for name, grad in grads_w.items():
        assert torch.allclose(grads_c[name], grad, rtol=1e-4, atol=1e-6), name


@pytest.mark.parametrize("recompute", [True, False])
def test_latent_chunks_see_the_draws_of_one_pass(pair, monkeypatch, recompute):
    # Training mode: masks and noise are drawn for the whole batch, so chunked
    # (recomputed or kept) and unchunked passes give the same losses and gradients.
    links = pair.train_links[:, :70]
    whole = small_model(pair, latent_chunk_size=None).train()
    chunked = small_model(pair, latent_chunk_size=16).train()
    if not recompute:
        monkeypatch.setattr(
            "almea_pyg.models.almea.checkpoint", lambda fn, *args, **_: fn(*args)
        )
    torch.manual_seed(5)
    losses_w, grads_w = _losses_and_grads(whole, pair, links)
    torch.manual_seed(5)
    losses_c, grads_c = _losses_and_grads(chunked, pair, links)
    for key in LATENT_TERMS + ("loss",):
        assert torch.allclose(losses_c[key], losses_w[key], rtol=1e-5), key
    for name, grad in grads_w.items():
        assert torch.allclose(grads_c[name], grad, rtol=1e-4, atol=1e-6), name


def test_latent_chunk_size_must_be_positive(pair):
    with pytest.raises(ValueError, match="latent_chunk_size"):
        small_model(pair, latent_chunk_size=0)


def test_loss_switches(pair):
    torch.manual_seed(3)
    off = small_model(pair, lambda_scl=0.0, lambda_url=0.0)
    losses = off(pair, pair.train_links[:, :64])
    expected = losses["base"] + losses["dml"] + losses["jal"]
    assert torch.allclose(losses["loss"], expected)
    base = small_model(pair, use_lsl=False)
    losses = base(pair, pair.train_links[:, :64])
    assert not set(LATENT_TERMS) & set(losses)
    assert torch.allclose(losses["loss"], losses["base"])


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
    present = model.presence(inputs)
    complete = torch.stack([present[m] for m in model.modalities]).all(dim=0)
    changed = ~torch.isclose(torch.cat([emb_s, emb_t]), torch.cat([imp_s, imp_t])).all(
        1
    )
    assert changed.any()
    assert not (changed & complete).any()
    assert model.training


def test_latent_diagnostics_of_a_collapsed_and_a_mean_decoder(pair):
    model = small_model(pair)
    inputs = model.inputs(pair)
    h, present = model.encode(inputs), model.presence(inputs)
    with torch.no_grad():
        for vae in model.lsl.vaes.values():
            # Posterior N(0.5, 1) for every entity: a collapse, KL 0.5 * 0.5^2 per dim
            vae.mu.weight.zero_(), vae.mu.bias.fill_(0.5)
            vae.logvar.weight.zero_(), vae.logvar.bias.zero_()
        # The attribute decoder always outputs the mean of h^attr (R^2 = 0), the
        # relation decoder the mean plus one (R^2 = -n d / total sum of squares).
        rows = {m: h[m][present[m]].detach() for m in ("attr", "rel")}
        last = {m: model.lsl.vaes[m].decoder[-1] for m in rows}
        for m, shift in (("attr", 0.0), ("rel", 1.0)):
            last[m].weight.zero_(), last[m].bias.copy_(rows[m].mean(0) + shift)
    stats = model.latent_diagnostics(pair)
    assert set(stats) == set(model.modalities)
    for m, row in stats.items():
        assert row["entities"] == int(present[m].sum())
        assert row["active_units"] == 0
        assert row["kl_per_dim"] == pytest.approx(0.125, rel=1e-5)
    for key in ("reconstruction_r2", "imputation_r2"):
        assert stats["attr"][key] == pytest.approx(0.0, abs=1e-5)
        rel = rows["rel"]
        expected = -rel.numel() / (rel - rel.mean(0)).pow(2).sum().item()
        assert stats["rel"][key] == pytest.approx(expected, rel=1e-4)
    assert model.training


def test_latent_diagnostics_count_units_that_vary(pair):
    model = small_model(pair)
    with torch.no_grad():
        for vae in model.lsl.vaes.values():
            vae.mu.weight.mul_(1e4)  # posterior means spread far across entities
        model.lsl.vaes["rel"].mu.weight[:3] = 0  # except 3 constant dimensions
    stats = model.latent_diagnostics(pair)
    assert stats["rel"]["active_units"] == 13
    assert all(stats[m]["active_units"] == 16 for m in ("graph", "attr", "img"))
    # Running sums over chunks of 7 entities give what one chunk gives.
    chunked = model.latent_diagnostics(pair, chunk_size=7)
    for m, row in stats.items():
        assert chunked[m] == pytest.approx(row, rel=1e-4)
    with pytest.raises(RuntimeError, match="LSL"):
        small_model(pair, use_lsl=False).latent_diagnostics(pair)


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
    losses = model(one_sided, one_sided.train_links[:, :64])
    assert torch.isfinite(losses["loss"])
    emb_s, emb_t = model.embed(one_sided)
    assert torch.isfinite(emb_t).all()


def test_candidates(pair):
    model = small_model(pair)
    sources = pair.test_links[0, :4]
    out = model.candidates(pair, k=5, sources=sources, metric="cosine")
    assert out.target_index.shape == out.score.shape == (4, 5)
    assert (out.score[:, :-1] >= out.score[:, 1:]).all()
    assert out.source_ids == [pair.source["entity"].ids[i] for i in sources.tolist()]
    assert out.target_ids[0][0] == pair.target["entity"].ids[out.target_index[0, 0]]


def train_full_batch(model, pair, steps=30):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = model(pair, pair.train_links)["loss"]
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
