import math

import pytest
import torch
import torch.nn.functional as F

from almea_pyg.nn import LinearImputer

MODALITIES = ["graph", "img", "rel"]
DIM = 6


def linear_data(n=400, seed=0, noise=0.0):
    """``img`` an affine function of the normalised graph embedding (plus
    ``noise``); ``rel`` unrelated to anything."""
    gen = torch.Generator().manual_seed(seed)
    h = {m: torch.randn(n, DIM, generator=gen) for m in MODALITIES}
    weight = torch.randn(DIM, DIM, generator=gen)
    h["img"] = F.normalize(h["graph"], dim=-1) @ weight + 0.5
    h["img"] += noise * torch.randn(n, DIM, generator=gen)
    present = {m: torch.ones(n, dtype=torch.bool) for m in MODALITIES}
    present["rel"] = torch.rand(n, generator=gen) < 0.7
    return h, present


def test_recovers_a_linear_relation_and_leaves_present_rows():
    h, present = linear_data()
    imputer = LinearImputer(MODALITIES, DIM, ridges=[1e-6]).fit([(h, present)])
    assert imputer.r2[1] > 0.999
    lost = {**present, "img": torch.arange(400) % 3 == 0}
    out, after = imputer(h, lost)
    missing = ~lost["img"]
    torch.testing.assert_close(
        out["img"][missing], h["img"][missing], atol=1e-3, rtol=0
    )
    assert torch.equal(out["img"][lost["img"]], h["img"][lost["img"]])
    assert after["img"].all() and not lost["img"].all()
    assert torch.equal(out["graph"], h["graph"])
    assert out["img"] is not h["img"]
    # rel is unpredictable: held-out R^2 below min_r2, so it is not imputed and
    # its rows stay missing
    assert imputer.r2[2] < imputer.min_r2 and imputer.active.tolist() == [
        True,
        True,
        False,
    ]
    assert torch.equal(out["rel"], h["rel"])
    assert torch.equal(after["rel"], present["rel"])


def test_the_ridge_is_chosen_on_held_out_entities():
    # a few noisy rows and many inputs: the smallest ridge overfits
    h, present = linear_data(n=60, seed=2, noise=1.0)
    chosen = LinearImputer(MODALITIES, DIM).fit([(h, present)])
    for ridge in chosen.ridges:
        fixed = LinearImputer(MODALITIES, DIM, ridges=[ridge]).fit([(h, present)])
        assert fixed.r2[1] <= chosen.r2[1] + 1e-6
    assert chosen.ridge[1] > min(chosen.ridges)
    heavy = LinearImputer(MODALITIES, DIM, ridges=[1e4], min_r2=-math.inf)
    heavy.fit([(h, present)])
    lost = {**present, "img": torch.zeros(60, dtype=torch.bool)}
    spread = [
        float(imp(h, lost)[0]["img"].std(dim=0).mean()) for imp in (chosen, heavy)
    ]
    assert spread[1] < 0.1 * spread[0]  # a heavy ridge shrinks to the mean row


def test_fit_in_batches_is_fit_at_once():
    h, present = linear_data(n=100, seed=1)
    whole = LinearImputer(MODALITIES, DIM).fit([(h, present)])
    chunks = [
        ({m: x[rows] for m, x in h.items()}, {m: x[rows] for m, x in present.items()})
        for rows in torch.arange(100).split(33)
    ]
    batched = LinearImputer(MODALITIES, DIM).fit(chunks)
    torch.testing.assert_close(batched.weight, whole.weight)
    torch.testing.assert_close(batched.r2, whole.r2)


def test_unfitted_modalities_and_state():
    h, present = linear_data(n=50)
    present["rel"] = torch.zeros(50, dtype=torch.bool)  # no entity has it
    imputer = LinearImputer(MODALITIES, DIM)
    with pytest.raises(RuntimeError, match="not fitted"):
        imputer(h, present)
    imputer.fit([(h, present)])
    assert math.isnan(imputer.r2[2]) and not imputer.active[2]
    out, after = imputer(h, present)
    assert torch.equal(out["rel"], h["rel"]) and not after["rel"].any()
    assert imputer.state_dict() == {}  # refitted, never loaded
    imputer.reset_parameters()
    assert not imputer.is_fitted and not imputer.active.any()
    assert repr(imputer) == "LinearImputer(3 modalities, dim=6, min_r2=0.1)"
    with pytest.raises(ValueError, match="ridges"):
        LinearImputer(MODALITIES, DIM, ridges=[0.0])
    with pytest.raises(ValueError, match="holdout"):
        LinearImputer(MODALITIES, DIM, holdout=1)
