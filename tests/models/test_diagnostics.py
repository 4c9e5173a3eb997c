import pytest
import torch

from almea_pyg.data.synthetic import make_synthetic_pair
from almea_pyg.models import ALMEA, imputation_r2, latent_diagnostics


@pytest.fixture(scope="module")
def pair():
    return make_synthetic_pair(num_entities=300, seed=1).split(0.3, seed=0)


def small_model(pair, **kwargs):
    torch.manual_seed(0)
    return ALMEA.from_pair(pair, dim=16, **kwargs)


def test_a_collapsed_and_a_mean_decoder(pair):
    model = small_model(pair)
    inputs = model.inputs(pair)
    out = model(inputs.features, inputs.edge_index, inputs.present)
    h, present = out.h, out.present
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
    stats = latent_diagnostics(model, pair)
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
    assert latent_diagnostics(model, inputs) == stats


def test_count_units_that_vary(pair):
    model = small_model(pair)
    with torch.no_grad():
        for vae in model.lsl.vaes.values():
            vae.mu.weight.mul_(1e4)  # posterior means spread far across entities
        model.lsl.vaes["rel"].mu.weight[:3] = 0  # except 3 constant dimensions
    stats = latent_diagnostics(model, pair)
    assert stats["rel"]["active_units"] == 13
    assert all(stats[m]["active_units"] == 16 for m in ("graph", "attr", "img"))
    # Running sums over chunks of 7 entities give what one chunk gives.
    chunked = latent_diagnostics(model, pair, chunk_size=7)
    for m, row in stats.items():
        assert chunked[m] == pytest.approx(row, rel=1e-4)


def test_need_lsl(pair):
    with pytest.raises(RuntimeError, match="LSL"):
        latent_diagnostics(small_model(pair, use_lsl=False), pair)
    with pytest.raises(RuntimeError, match="LSL"):
        imputation_r2(small_model(pair, use_lsl=False), pair, "attr", torch.ones(1))


def test_imputation_r2_of_a_linear_imputer(pair):
    # the base model has no LSL but a linear imputer; fitted by least squares
    # on every entity having attr, its in-sample R^2 there is about >= 0
    model = small_model(pair, use_lsl=False, imputer="linear")
    rows = model.inputs(pair).present["attr"].nonzero().flatten()
    with pytest.raises(RuntimeError, match="not fitted"):
        imputation_r2(model, pair, "attr", rows)
    model.fit_imputer(pair)
    r2 = imputation_r2(model, pair, "attr", rows)
    assert 0.0 <= r2 < 1.0
    assert imputation_r2(model, pair, "attr", rows, chunk_size=7) == pytest.approx(r2)


def test_imputation_r2_of_rows_is_the_diagnostics_over_those_rows(pair):
    model = small_model(pair)
    inputs = model.inputs(pair)
    rows = inputs.present["attr"].nonzero().flatten()
    expected = latent_diagnostics(model, pair)["attr"]["imputation_r2"]
    assert imputation_r2(model, pair, "attr", rows) == pytest.approx(expected)
    assert imputation_r2(model, pair, "attr", rows, chunk_size=7) == pytest.approx(
        expected
    )
    # The target is h^m of the rows' features, whatever their mask says.
    inputs.present["attr"] = inputs.present["attr"].clone()
    inputs.present["attr"][rows[::2]] = False
    assert imputation_r2(model, inputs, "attr", rows) == pytest.approx(expected)
    assert imputation_r2(model, pair, "attr", rows[:0]) is None


def test_imputation_r2_is_around_the_mean_of_the_rows_given(pair):
    model = small_model(pair)
    inputs = model.inputs(pair)
    out = model(inputs.features, inputs.edge_index, inputs.present)
    rows = inputs.present["attr"].nonzero().flatten()[:40]
    with torch.no_grad():
        vae = model.lsl.vaes["attr"]
        last = vae.decoder[-1]
        # The attribute decoder outputs the mean of h^attr over these rows only.
        last.weight.zero_(), last.bias.copy_(out.h["attr"][rows].mean(0))
    assert imputation_r2(model, pair, "attr", rows) == pytest.approx(0.0, abs=1e-5)
    assert latent_diagnostics(model, pair)["attr"]["imputation_r2"] < -1e-3
