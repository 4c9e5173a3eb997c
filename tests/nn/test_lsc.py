import pytest
import torch

from almea_pyg.nn.lsc import LatentSemanticCalibration

MODALITIES = ["g", "rel", "img"]
DIM = 5
# Rows: all present, img missing, only g, none.
PRESENT = {
    "g": torch.tensor([True, True, True, False]),
    "rel": torch.tensor([True, True, False, False]),
    "img": torch.tensor([True, False, False, False]),
}


def _latents(num: int = 4) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {m: torch.randn(num, DIM, generator=gen) for m in MODALITIES}


def _lsc(calibrate: bool = True) -> LatentSemanticCalibration:
    torch.manual_seed(0)
    return LatentSemanticCalibration(MODALITIES, DIM, calibrate=calibrate)


def test_lsc_shapes() -> None:
    calibrated, weights, fused = _lsc()(_latents(), PRESENT)
    assert set(calibrated) == set(MODALITIES)
    assert all(calibrated[m].shape == (4, DIM) for m in MODALITIES)
    assert weights.shape == (4, 3)
    assert fused.shape == (4, DIM)


def test_lsc_calibration_is_tanh_linear() -> None:
    lsc, z = _lsc(), _latents()
    calibrated, _, _ = lsc(z, PRESENT)
    for m in MODALITIES:
        weight, bias = lsc.calibration[m].weight, lsc.calibration[m].bias
        torch.testing.assert_close(calibrated[m], torch.tanh(z[m] @ weight.t() + bias))
        assert calibrated[m].abs().max() < 1


def test_lsc_weights_over_present_modalities() -> None:
    _, weights, _ = _lsc()(_latents(), PRESENT)
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones(4))
    mask = torch.stack([PRESENT[m] for m in MODALITIES], dim=-1)
    has_any = mask.any(dim=-1)
    assert (weights[has_any][~mask[has_any]] == 0).all()
    assert (weights[mask] > 0).all()
    assert weights[2].tolist() == [1.0, 0.0, 0.0]  # only g


def test_lsc_uniform_weights_without_modalities() -> None:
    _, weights, _ = _lsc()(_latents(), PRESENT)
    torch.testing.assert_close(weights[3], torch.full((3,), 1 / 3))


def test_lsc_weights_are_softmax_of_scores() -> None:
    lsc, z = _lsc(), _latents()
    calibrated, weights, _ = lsc(z, PRESENT)
    scores = torch.cat([lsc.scorers[m](calibrated[m]) for m in MODALITIES], dim=-1)
    torch.testing.assert_close(weights[0], scores[0].softmax(dim=0))
    torch.testing.assert_close(weights[1, :2], scores[1, :2].softmax(dim=0))


def test_lsc_fused_by_hand() -> None:
    lsc = _lsc()
    calibrated, weights, fused = lsc(_latents(), PRESENT)
    expected = sum(weights[:, [i]] * calibrated[m] for i, m in enumerate(MODALITIES))
    torch.testing.assert_close(fused, expected)
    # An entity with only g is its calibrated g latent.
    torch.testing.assert_close(fused[2], calibrated["g"][2])


def test_lsc_without_calibration_passes_latents_through() -> None:
    lsc, z = _lsc(calibrate=False), _latents()
    calibrated, weights, fused = lsc(z, PRESENT)
    for m in MODALITIES:
        assert torch.equal(calibrated[m], z[m])
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones(4))
    expected = sum(weights[:, [i]] * z[m] for i, m in enumerate(MODALITIES))
    torch.testing.assert_close(fused, expected)


def test_lsc_gradients_finite_with_missing_modalities() -> None:
    lsc = _lsc()
    z = {m: t.requires_grad_() for m, t in _latents().items()}
    _, _, fused = lsc(z, PRESENT)
    fused.sum().backward()
    for m in MODALITIES:
        assert torch.isfinite(z[m].grad).all()
    # img is absent from rows 1 and 2: its latent there has no influence.
    assert (z["img"].grad[[1, 2]] == 0).all()
    for param in lsc.parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all()


@pytest.mark.parametrize("calibrate", [True, False])
def test_lsc_repr(calibrate: bool) -> None:
    lsc = LatentSemanticCalibration(["g", "rel"], 300, calibrate=calibrate)
    assert repr(lsc) == (
        f"LatentSemanticCalibration(2 modalities, dim=300, calibrate={calibrate})"
    )
