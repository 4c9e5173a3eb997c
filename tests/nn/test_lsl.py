import pytest
import torch
from torch import nn

from almea_pyg.nn.lsl import LatentSemanticLearning, LSLOutput, ModalityVAE

MODALITIES = ["g", "rel", "img"]
DIM = 6


def _batch(num: int, *, seed: int = 0, present_rate: float = 0.7):
    gen = torch.Generator().manual_seed(seed)
    h = {m: torch.randn(num, DIM, generator=gen) for m in MODALITIES}
    present = {m: torch.rand(num, generator=gen) < present_rate for m in MODALITIES}
    return h, present


def _lsl(p_mask: float = 0.45) -> LatentSemanticLearning:
    torch.manual_seed(0)
    return LatentSemanticLearning(MODALITIES, DIM, p_mask=p_mask)


# --- ModalityVAE ------------------------------------------------------------------


def test_vae_layers_and_shapes() -> None:
    vae = ModalityVAE(DIM, num_layers=3)
    assert sum(isinstance(m, nn.Linear) for m in vae.encoder) == 3
    assert sum(isinstance(m, nn.Linear) for m in vae.decoder.modules()) == 3
    assert isinstance(vae.decoder[-1], nn.Linear)  # the decoder ends linear
    z, mu, logvar = vae.encode(torch.randn(4, DIM))
    assert z.shape == mu.shape == logvar.shape == (4, DIM)
    assert vae.decode(z).shape == (4, DIM)


def test_vae_reparameterisation_in_training() -> None:
    torch.manual_seed(0)
    vae = ModalityVAE(DIM).train()
    h = torch.randn(5, DIM)
    torch.manual_seed(1)
    z, mu, logvar = vae.encode(h)
    torch.manual_seed(1)
    eps = torch.randn(5, DIM)
    torch.testing.assert_close(z, mu + eps * (0.5 * logvar).exp())
    z_again, mu_again, _ = vae.encode(h)  # a fresh draw
    torch.testing.assert_close(mu_again, mu)
    assert not torch.allclose(z_again, z)


def test_vae_eval_returns_mu() -> None:
    vae = ModalityVAE(DIM).eval()
    h = torch.randn(5, DIM)
    z, mu, _ = vae.encode(h)
    torch.testing.assert_close(z, mu)
    torch.testing.assert_close(vae.encode(h)[0], z)


def test_vae_logvar_clamped() -> None:
    vae = ModalityVAE(DIM)
    with torch.no_grad():
        vae.logvar.bias.fill_(1e3)
    _, _, logvar = vae.encode(torch.randn(3, DIM))
    assert torch.equal(logvar, torch.full_like(logvar, 10.0))


# --- LatentSemanticLearning -------------------------------------------------------


def test_lsl_repr() -> None:
    lsl = LatentSemanticLearning(["g", "rel", "attr", "img"], 300, p_mask=0.45)
    assert repr(lsl) == "LatentSemanticLearning(4 modalities, dim=300, p_mask=0.45)"


@pytest.mark.parametrize("p_mask", [-0.1, 1.0, 1.5])
def test_lsl_bad_p_mask(p_mask: float) -> None:
    with pytest.raises(ValueError, match="p_mask"):
        LatentSemanticLearning(MODALITIES, DIM, p_mask=p_mask)


def test_lsl_output_shapes() -> None:
    h, present = _batch(7)
    out = _lsl()(h, present)
    assert isinstance(out, LSLOutput)
    for m in MODALITIES:
        for field in ("z_masked", "mu_masked", "logvar_masked", "z", "mu", "logvar"):
            assert getattr(out, field)[m].shape == (7, DIM)
        assert out.dropped[m].shape == (7,) and out.dropped[m].dtype == torch.bool


@pytest.mark.parametrize("p_mask", [0.3, 0.45, 0.5])
def test_lsl_masking_rate(p_mask: float) -> None:
    h, present = _batch(10_000, seed=1)
    torch.manual_seed(2)
    out = _lsl(p_mask).train()(h, present)
    num_present = sum(int(present[m].sum()) for m in MODALITIES)
    num_dropped = sum(int(out.dropped[m].sum()) for m in MODALITIES)
    # ~21k present vectors: the binomial standard deviation of the share is ~0.0035.
    assert num_dropped / num_present == pytest.approx(p_mask, abs=0.015)
    for m in MODALITIES:
        share = out.dropped[m].sum() / present[m].sum()
        assert share.item() == pytest.approx(p_mask, abs=0.03)
    # Modalities are masked independently of each other.
    both = (out.dropped["g"] & out.dropped["rel"]).sum() / (
        present["g"] & present["rel"]
    ).sum()
    assert both.item() == pytest.approx(p_mask**2, abs=0.03)


def test_lsl_never_drops_absent_modality() -> None:
    h, present = _batch(2_000, seed=3, present_rate=0.5)
    lsl = _lsl(0.9).train()
    for seed in range(3):
        torch.manual_seed(seed)
        out = lsl(h, present)
        for m in MODALITIES:
            assert not bool((out.dropped[m] & ~present[m]).any())
            assert bool(out.dropped[m].any())


def test_lsl_zero_p_mask_drops_nothing() -> None:
    h, present = _batch(500)
    out = _lsl(0.0).train()(h, present)
    assert not any(bool(out.dropped[m].any()) for m in MODALITIES)


def test_lsl_eval_drops_nothing() -> None:
    h, present = _batch(500)
    out = _lsl(0.5).eval()(h, present)
    for m in MODALITIES:
        assert not bool(out.dropped[m].any())
        torch.testing.assert_close(out.z_masked[m], out.z[m])
        torch.testing.assert_close(out.z[m], out.mu[m])


def test_lsl_dropped_and_absent_rows_are_zero_input() -> None:
    h, present = _batch(300, seed=4)
    lsl = _lsl(0.5).train()
    for vae in lsl.vaes.values():  # masking on, sampling off: latents are the means
        vae.eval()
    torch.manual_seed(5)
    out = lsl(h, present)
    for m in MODALITIES:
        zero_code = lsl.vaes[m].encode(torch.zeros(1, DIM))[0]
        dropped, absent = out.dropped[m], ~present[m]
        kept = present[m] & ~dropped
        assert dropped.any() and absent.any() and kept.any()
        # Dropped rows: the masked pass saw zeros, the unmasked one the input.
        torch.testing.assert_close(
            out.z_masked[m][dropped], zero_code.expand(int(dropped.sum()), -1)
        )
        torch.testing.assert_close(
            out.z[m][dropped], lsl.vaes[m].encode(h[m][dropped])[0]
        )
        # Absent rows: zeros in both passes.
        for z in (out.z[m], out.z_masked[m]):
            torch.testing.assert_close(
                z[absent], zero_code.expand(int(absent.sum()), -1)
            )
        # Kept rows: both passes see the input.
        torch.testing.assert_close(out.z_masked[m][kept], out.z[m][kept])
        torch.testing.assert_close(out.z[m][kept], lsl.vaes[m].encode(h[m][kept])[0])


def test_lsl_dropped_rows_mu_is_zero_encoding_in_training() -> None:
    # With sampling on too, the means still show the masked input was zero.
    h, present = _batch(300, seed=6)
    lsl = _lsl(0.5).train()
    torch.manual_seed(7)
    out = lsl(h, present)
    lsl.eval()
    for m in MODALITIES:
        dropped = out.dropped[m]
        zero_mu = lsl.vaes[m].encode(torch.zeros(1, DIM))[1]
        torch.testing.assert_close(
            out.mu_masked[m][dropped], zero_mu.expand(int(dropped.sum()), -1)
        )


def test_lsl_decode_shape_and_gradients() -> None:
    h, present = _batch(8)
    lsl = _lsl()
    out = lsl(h, present)
    recon = lsl.decode("rel", out.z_masked["rel"])
    assert recon.shape == (8, DIM)
    recon.sum().backward()
    assert lsl.vaes["rel"].mu.weight.grad is not None
    assert lsl.vaes["g"].mu.weight.grad is None


def test_lsl_given_noise_is_used_and_rows_are_independent() -> None:
    # Pre-drawn noise makes a pass deterministic, and any subset of rows run with
    # its slice of the noise gives those rows' latents (what chunked training uses).
    lsl = _lsl(0.5).train()
    h, present = _batch(10, seed=3)
    noise = lsl.draw(present)
    assert all(noise.eps[m].shape == (10, 2, DIM) for m in MODALITIES)
    assert all(
        torch.equal(noise.dropped[m] & ~present[m], torch.zeros(10, dtype=torch.bool))
        for m in MODALITIES
    )
    full = lsl(h, present, noise)
    again = lsl(h, present, noise)
    rows = torch.tensor([7, 2, 5])
    part = lsl(
        {m: x[rows] for m, x in h.items()},
        {m: x[rows] for m, x in present.items()},
        type(noise)(*({m: x[rows] for m, x in d.items()} for d in noise)),
    )
    for m in MODALITIES:
        assert torch.equal(full.z[m], again.z[m])
        assert torch.equal(full.dropped[m], noise.dropped[m])
        assert torch.allclose(part.z[m], full.z[m][rows], atol=1e-6)
        assert torch.allclose(part.z_masked[m], full.z_masked[m][rows], atol=1e-6)
    expected = full.mu["g"] + noise.eps["g"][:, 0] * (0.5 * full.logvar["g"]).exp()
    assert torch.allclose(full.z["g"], expected, atol=1e-6)
