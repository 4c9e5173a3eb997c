import pytest
import torch
import torch.nn.functional as F

from almea_pyg.nn.fusion import ModalityFusion

MODALITIES = ["g", "rel", "img"]


def _inputs(num: int = 4, dim: int = 5) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {m: 3 * torch.randn(num, dim, generator=gen) for m in MODALITIES}


def _fusion(mode: str = "weighted") -> ModalityFusion:
    fusion = ModalityFusion(MODALITIES, mode=mode)
    with torch.no_grad():
        fusion.logits.copy_(torch.tensor([0.5, -1.0, 2.0]))
    return fusion


def test_fusion_weights_start_uniform_and_sum_to_one() -> None:
    fusion = ModalityFusion(MODALITIES)
    torch.testing.assert_close(fusion.weights, torch.full((3,), 1 / 3))
    fusion = _fusion()
    assert fusion.weights.sum().item() == pytest.approx(1.0)
    assert (fusion.weights > 0).all()


def test_fusion_weighted_sum_by_hand() -> None:
    fusion, h = _fusion(), _inputs()
    pi = torch.softmax(torch.tensor([0.5, -1.0, 2.0]), dim=0)
    expected = sum(
        pi[i] * h[m] / h[m].norm(dim=-1, keepdim=True) for i, m in enumerate(MODALITIES)
    )
    out = fusion(h)
    assert out.shape == (4, 5)
    torch.testing.assert_close(out, expected)


def test_fusion_missing_entries_contribute_zero() -> None:
    fusion, h = _fusion(), _inputs()
    present = {"img": torch.tensor([True, False, True, False])}
    out = fusion(h, present)
    without_img = fusion.weights[0] * F.normalize(h["g"], dim=-1) + fusion.weights[
        1
    ] * F.normalize(h["rel"], dim=-1)
    torch.testing.assert_close(out[[1, 3]], without_img[[1, 3]])
    torch.testing.assert_close(out[[0, 2]], fusion(h)[[0, 2]])


def test_fusion_concat() -> None:
    fusion, h = _fusion("concat"), _inputs()
    present = {"rel": torch.tensor([True, True, False, True])}
    out = fusion(h, present)
    assert out.shape == (4, 15)
    for i, m in enumerate(MODALITIES):
        block = out[:, 5 * i : 5 * (i + 1)]
        expected = fusion.weights[i] * F.normalize(h[m], dim=-1)
        if m == "rel":
            expected[2] = 0.0
        torch.testing.assert_close(block, expected)


def test_fusion_gradient_reaches_logits() -> None:
    fusion, h = _fusion(), _inputs()
    fusion(h)[:, 0].sum().backward()
    assert fusion.logits.grad is not None and fusion.logits.grad.abs().sum() > 0


def test_fusion_bad_mode() -> None:
    with pytest.raises(ValueError, match="mode"):
        ModalityFusion(MODALITIES, mode="sum")


def test_fusion_repr() -> None:
    assert (
        repr(ModalityFusion(["g", "rel"]))
        == "ModalityFusion(['g', 'rel'], mode=weighted)"
    )
    assert (
        repr(ModalityFusion(["g"], mode="concat"))
        == "ModalityFusion(['g'], mode=concat)"
    )


def test_fusion_reset_parameters() -> None:
    fusion = _fusion()
    fusion.reset_parameters()
    torch.testing.assert_close(fusion.weights, torch.full((3,), 1 / 3))
