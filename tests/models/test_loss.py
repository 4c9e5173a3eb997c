import pytest
import torch

from almea_pyg.data.synthetic import make_synthetic_pair
from almea_pyg.models import ALMEA, ALMEALoss

LATENT_TERMS = ("scl", "dml", "url", "jal")


@pytest.fixture(scope="module")
def pair():
    return make_synthetic_pair(num_entities=300, seed=1).split(0.3, seed=0)


def small_model(pair, **kwargs):
    torch.manual_seed(0)
    return ALMEA.from_pair(pair, dim=16, **kwargs)


def losses_of(model, pair, links):
    inputs = model.inputs(pair)
    out = model(inputs.features, inputs.edge_index, inputs.present, *links)
    return model.criterion(out, model)


def test_repr():
    assert repr(ALMEALoss(lambda_dml=0.0, latent_chunk_size=None)) == (
        "ALMEALoss(scl=1.0, dml=0.0, url=1.0, jal=1.0, temperature=0.1, "
        "ial_temperature=4.0, latent_chunk_size=None)"
    )


def test_terms_and_total(pair):
    model = small_model(pair)
    losses = losses_of(model, pair, pair.train_links[:, :64])
    assert set(losses) == {"joint", "modal", "base", "loss", *LATENT_TERMS}
    assert all(torch.isfinite(v) for v in losses.values())
    assert torch.allclose(losses["base"], losses["joint"] + losses["modal"])
    expected = losses["base"] + sum(losses[k] for k in LATENT_TERMS)
    assert torch.allclose(losses["loss"], expected)


def test_loss_switches(pair):
    torch.manual_seed(3)
    off = small_model(pair, lambda_scl=0.0, lambda_url=0.0)
    losses = losses_of(off, pair, pair.train_links[:, :64])
    expected = losses["base"] + losses["dml"] + losses["jal"]
    assert torch.allclose(losses["loss"], expected)
    base = small_model(pair, use_lsl=False)
    losses = losses_of(base, pair, pair.train_links[:, :64])
    assert not set(LATENT_TERMS) & set(losses)
    assert torch.allclose(losses["loss"], losses["base"])


def test_needs_seed_pairs(pair):
    model = small_model(pair)
    inputs = model.inputs(pair)
    source, target = pair.train_links[0, :5], pair.train_links[1, :6]
    out = model(inputs.features, inputs.edge_index, inputs.present, source, target)
    with pytest.raises(ValueError, match="seed pairs"):
        model.loss(out)


def _losses_and_grads(model, pair, links):
    losses = losses_of(model, pair, links)
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
            "almea_pyg.models.loss.checkpoint", lambda fn, *args, **_: fn(*args)
        )
    torch.manual_seed(5)
    losses_w, grads_w = _losses_and_grads(whole, pair, links)
    torch.manual_seed(5)
    losses_c, grads_c = _losses_and_grads(chunked, pair, links)
    for key in LATENT_TERMS + ("loss",):
        assert torch.allclose(losses_c[key], losses_w[key], rtol=1e-5), key
    for name, grad in grads_w.items():
        assert torch.allclose(grads_c[name], grad, rtol=1e-4, atol=1e-6), name


def _share_losses_and_grads(model, inputs, links, pairs):
    out = model(inputs.features, inputs.edge_index, inputs.present, *links)
    losses = model.loss(out, pairs)
    model.zero_grad()
    losses["loss"].backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    return {k: v.detach() for k, v in losses.items()}, grads


@pytest.mark.parametrize("use_lsl", [True, False])
def test_shares_of_a_partition_sum_to_the_batch(pair, use_lsl):
    # What a batch split over processes relies on: with the same draws, the
    # shares' losses and gradients (an empty share's included) sum to the
    # batch's, to float64 rounding.
    links = pair.train_links[:, :45]
    model = small_model(pair, latent_chunk_size=8, use_lsl=use_lsl).double()
    inputs = model.inputs(pair)
    inputs.features = {
        m: (s.double(), t.double()) for m, (s, t) in inputs.features.items()
    }
    torch.manual_seed(5)
    whole, grads = _share_losses_and_grads(model, inputs, links, None)
    total, summed = {}, {}
    for share in [torch.arange(0, 20), torch.arange(20, 20), torch.arange(20, 45)]:
        torch.manual_seed(5)
        losses, share_grads = _share_losses_and_grads(model, inputs, links, share)
        for key, value in losses.items():
            total[key] = total.get(key, 0.0) + value
        for name, grad in share_grads.items():
            summed[name] = summed.get(name, 0.0) + grad
    assert total.keys() == whole.keys()
    for key, value in whole.items():
        assert torch.allclose(total[key], value, rtol=1e-12), key
    assert summed.keys() == grads.keys()
    for name, grad in grads.items():
        assert torch.allclose(summed[name], grad, rtol=1e-10, atol=1e-12), name
