import math

import pytest
import torch
import torch.nn.functional as F

from almea_pyg.nn.losses import (
    UncertaintyWeighting,
    info_nce,
    inter_modal_alignment,
    joint_alignment_loss,
    kl_standard_normal,
    reconstruction_loss,
    semantic_calibration_loss,
)


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _cos(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


# --- info_nce -------------------------------------------------------------------


def test_info_nce_hand_value() -> None:
    # Orthonormal rows, T = 1: every row is softmax([1, 0]) with the diagonal right.
    eye = torch.eye(2)
    expected = math.log(1 + math.exp(-1))
    assert info_nce(eye, eye, temperature=1.0).item() == pytest.approx(expected)


def test_info_nce_matches_loop() -> None:
    x_src, x_tgt, temp = _rand(3, 4, seed=1), _rand(3, 4, seed=2), 0.5
    a, b = x_src.tolist(), x_tgt.tolist()
    sim = [[_cos(a[i], b[j]) / temp for j in range(3)] for i in range(3)]
    rows = [
        -sim[i][i] + math.log(sum(math.exp(sim[i][j]) for j in range(3)))
        for i in range(3)
    ]
    cols = [
        -sim[j][j] + math.log(sum(math.exp(sim[i][j]) for i in range(3)))
        for j in range(3)
    ]
    expected = 0.5 * (sum(rows) / 3 + sum(cols) / 3)
    out = info_nce(x_src, x_tgt, temperature=temp)
    assert out.item() == pytest.approx(expected, rel=1e-5)


def test_info_nce_symmetric_and_scale_invariant() -> None:
    x_src, x_tgt = _rand(5, 8, seed=3), _rand(5, 8, seed=4)
    loss = info_nce(x_src, x_tgt)
    assert torch.allclose(loss, info_nce(x_tgt, x_src))
    assert torch.allclose(loss, info_nce(3.0 * x_src, 0.5 * x_tgt))


def test_info_nce_prefers_aligned_pairs() -> None:
    x = _rand(6, 16, seed=5)
    aligned = info_nce(x, x + 0.01 * _rand(6, 16, seed=6))
    shuffled = info_nce(x, x.roll(1, dims=0))
    assert aligned < 0.1 < shuffled


def test_info_nce_gradients_reach_both_sides() -> None:
    x_src = _rand(4, 8, seed=7).requires_grad_()
    x_tgt = _rand(4, 8, seed=8).requires_grad_()
    info_nce(x_src, x_tgt).backward()
    assert x_src.grad.abs().sum() > 0 and x_tgt.grad.abs().sum() > 0


def test_info_nce_gradients_match_finite_differences() -> None:
    # The hand-written backward (gradient formed in the forward pass) is exact.
    x_src = _rand(5, 3, seed=20).double().requires_grad_()
    x_tgt = _rand(5, 3, seed=21).double().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, b: info_nce(a, b, temperature=0.3), (x_src, x_tgt)
    )


def test_info_nce_gradient_scales_with_upstream_gradient() -> None:
    x_src = _rand(4, 6, seed=22).requires_grad_()
    x_tgt = _rand(4, 6, seed=23)
    info_nce(x_src, x_tgt).backward()
    once = x_src.grad.clone()
    x_src.grad = None
    (3.0 * info_nce(x_src, x_tgt)).backward()
    assert torch.allclose(x_src.grad, 3.0 * once, atol=1e-6)
    assert torch.all(x_src.grad != 0)


@pytest.mark.parametrize("temperature", [0.0, -1.0])
def test_info_nce_rejects_bad_temperature(temperature: float) -> None:
    with pytest.raises(ValueError, match="temperature"):
        info_nce(torch.eye(2), torch.eye(2), temperature=temperature)


def test_info_nce_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="same shape"):
        info_nce(torch.ones(3, 4), torch.ones(2, 4))


# --- inter_modal_alignment ------------------------------------------------------


def test_inter_modal_alignment_hand_value() -> None:
    # Teacher logits [[1, 0], [0, 1]], student [[0, 1], [1, 0]] at T = 1:
    # KL = (a - b) log(a / b) with a = e / (e + 1), b = 1 / (e + 1), i.e. (e-1)/(e+1).
    eye = torch.eye(2)
    swap = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    out = inter_modal_alignment(eye, eye, eye, swap, temperature=1.0)
    assert out.item() == pytest.approx((math.e - 1) / (math.e + 1), rel=1e-6)


def test_inter_modal_alignment_matches_loop() -> None:
    j_s, j_t = _rand(3, 5, seed=10), _rand(3, 5, seed=11)
    m_s, m_t = _rand(3, 2, seed=12), _rand(3, 2, seed=13)
    temp = 0.7

    def sims(a: torch.Tensor, b: torch.Tensor) -> list[list[float]]:
        a, b = a.tolist(), b.tolist()
        return [[_cos(a[i], b[j]) / temp for j in range(3)] for i in range(3)]

    def kl(teacher: list[list[float]], student: list[list[float]]) -> float:
        total = 0.0
        for t_row, s_row in zip(teacher, student):
            t_z = sum(math.exp(v) for v in t_row)
            s_z = sum(math.exp(v) for v in s_row)
            for t, s in zip(t_row, s_row):
                p, q = math.exp(t) / t_z, math.exp(s) / s_z
                total += p * math.log(p / q)
        return total / len(teacher)

    teacher, student = sims(j_s, j_t), sims(m_s, m_t)

    def transpose(m: list[list[float]]) -> list[list[float]]:
        return [list(r) for r in zip(*m)]

    expected = 0.5 * (kl(teacher, student) + kl(transpose(teacher), transpose(student)))
    out = inter_modal_alignment(j_s, j_t, m_s, m_t, temperature=temp)
    assert out.item() == pytest.approx(expected, rel=1e-5)


def test_inter_modal_alignment_zero_when_modality_equals_joint() -> None:
    j_s, j_t = _rand(4, 6, seed=14), _rand(4, 6, seed=15)
    assert inter_modal_alignment(j_s, j_t, 2 * j_s, j_t).abs().item() < 1e-6
    assert inter_modal_alignment(j_s, j_t, j_s, j_s).item() > 1e-4


def test_inter_modal_alignment_joint_is_detached() -> None:
    j_s = _rand(4, 6, seed=16).requires_grad_()
    j_t = _rand(4, 6, seed=17).requires_grad_()
    m_s = _rand(4, 3, seed=18).requires_grad_()
    m_t = _rand(4, 3, seed=19).requires_grad_()
    inter_modal_alignment(j_s, j_t, m_s, m_t).backward()
    assert j_s.grad is None and j_t.grad is None
    assert m_s.grad.abs().sum() > 0 and m_t.grad.abs().sum() > 0


def test_inter_modal_alignment_gradients_match_finite_differences() -> None:
    j_s, j_t = _rand(4, 5, seed=24).double(), _rand(4, 5, seed=25).double()
    m_s = _rand(4, 3, seed=26).double().requires_grad_()
    m_t = _rand(4, 3, seed=27).double().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, b: inter_modal_alignment(j_s, j_t, a, b, temperature=0.8),
        (m_s, m_t),
    )


def test_inter_modal_alignment_rejects_batch_mismatch() -> None:
    with pytest.raises(ValueError, match="batch size"):
        inter_modal_alignment(
            torch.ones(3, 4), torch.ones(3, 4), *[torch.ones(2, 4)] * 2
        )


# --- shares of a batch (rows=) ----------------------------------------------------


def _ial(a, b, *, rows=None):
    j_s, j_t = _rand(7, 5, seed=21).double(), _rand(7, 5, seed=22).double()
    return inter_modal_alignment(j_s, j_t, a, b, temperature=0.8, rows=rows)


@pytest.mark.parametrize("loss", [info_nce, _ial], ids=["info_nce", "ial"])
def test_shares_of_a_partition_sum_to_the_loss(loss) -> None:
    x_src = _rand(7, 5, seed=23).double().requires_grad_()
    x_tgt = _rand(7, 5, seed=24).double().requires_grad_()
    whole = loss(x_src, x_tgt)
    grads = torch.autograd.grad(whole, (x_src, x_tgt))
    shares = [
        torch.tensor([4, 0]),
        torch.tensor([], dtype=torch.long),
        torch.arange(1, 4),
        torch.tensor([5, 6]),
    ]
    parts = [loss(x_src, x_tgt, rows=rows) for rows in shares]
    assert torch.allclose(sum(parts), whole, rtol=1e-12)
    summed = torch.autograd.grad(sum(parts), (x_src, x_tgt))
    for grad, share_grad in zip(grads, summed):
        assert torch.allclose(share_grad, grad, rtol=1e-10, atol=1e-14)


def test_share_gradients_match_finite_differences() -> None:
    rows = torch.tensor([0, 2])
    x_src = _rand(4, 3, seed=25).double().requires_grad_()
    x_tgt = _rand(4, 3, seed=26).double().requires_grad_()
    j_s, j_t = _rand(4, 3, seed=27).double(), _rand(4, 3, seed=28).double()
    assert torch.autograd.gradcheck(
        lambda a, b: info_nce(a, b, temperature=0.3, rows=rows), (x_src, x_tgt)
    )
    assert torch.autograd.gradcheck(
        lambda a, b: inter_modal_alignment(j_s, j_t, a, b, rows=rows), (x_src, x_tgt)
    )


def test_uncertainty_weighting_share_scales_the_regulariser() -> None:
    weighting = UncertaintyWeighting(2)
    with torch.no_grad():
        weighting.log_vars.copy_(torch.tensor([0.5, -1.0]))
    losses = torch.tensor([2.0, 3.0])
    halves = weighting(losses / 4, share=0.25) + weighting(3 * losses / 4, share=0.75)
    assert torch.allclose(halves, weighting(losses))


# --- UncertaintyWeighting -------------------------------------------------------


def test_uncertainty_weighting_initial_weights_are_one() -> None:
    weighting = UncertaintyWeighting(3)
    assert torch.equal(weighting.weights, torch.ones(3))
    losses = torch.tensor([2.0, 3.0, 0.5])
    assert weighting(losses).item() == pytest.approx(5.5)
    assert str(weighting) == "UncertaintyWeighting(3)"


def test_uncertainty_weighting_value_and_gradient() -> None:
    weighting = UncertaintyWeighting(2)
    with torch.no_grad():
        weighting.log_vars.copy_(torch.tensor([math.log(2.0), 0.0]))
    assert torch.allclose(weighting.weights, torch.tensor([0.5, 1.0]))
    loss_a = torch.tensor(2.0, requires_grad=True)
    loss_b = torch.tensor(3.0, requires_grad=True)
    total = weighting([loss_a, loss_b])
    assert total.item() == pytest.approx(0.5 * 2 + math.log(2) + 3)
    total.backward()
    # d/ds (exp(-s) L + s) = 1 - exp(-s) L: zero at s = log L.
    assert weighting.log_vars.grad.tolist() == pytest.approx([0.0, -2.0], abs=1e-6)
    assert loss_a.grad.item() == pytest.approx(0.5)
    assert loss_b.grad.item() == pytest.approx(1.0)


def test_uncertainty_weighting_reset_and_errors() -> None:
    weighting = UncertaintyWeighting(2)
    with torch.no_grad():
        weighting.log_vars.fill_(1.0)
    weighting.reset_parameters()
    assert torch.equal(weighting.log_vars.detach(), torch.zeros(2))
    with pytest.raises(ValueError, match="expected 2 losses"):
        weighting(torch.ones(3))
    with pytest.raises(ValueError, match="positive"):
        UncertaintyWeighting(0)


# --- kl_standard_normal (L_DML) -------------------------------------------------


def test_kl_standard_normal_zero_at_prior() -> None:
    zeros = torch.zeros(4, 3)
    assert kl_standard_normal(zeros, zeros).item() == 0.0


def test_kl_standard_normal_hand_value() -> None:
    mu = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)], [0.0, 0.0]])
    # Row 0: 0.5 * ((1 + 1 - 0 - 1) + (2 + 0 - log 2 - 1)) = 1 - log(2) / 2; row 1: 0.
    expected = (1 - math.log(2) / 2) / 2
    assert kl_standard_normal(mu, logvar).item() == pytest.approx(expected)


def test_kl_standard_normal_matches_torch_distributions() -> None:
    mu, logvar = _rand(5, 7, seed=20), _rand(5, 7, seed=21)
    posterior = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    prior = torch.distributions.Normal(torch.zeros(5, 7), torch.ones(5, 7))
    expected = torch.distributions.kl_divergence(posterior, prior).sum(-1).mean()
    assert torch.allclose(kl_standard_normal(mu, logvar), expected, atol=1e-5)


def test_kl_standard_normal_gradients() -> None:
    mu = _rand(3, 4, seed=22).requires_grad_()
    logvar = _rand(3, 4, seed=23).requires_grad_()
    kl_standard_normal(mu, logvar).backward()
    # d/dmu = mu / B, d/dlogvar = 0.5 (exp(logvar) - 1) / B
    assert torch.allclose(mu.grad, mu.detach() / 3)
    assert torch.allclose(logvar.grad, 0.5 * (logvar.detach().exp() - 1) / 3)


# --- reconstruction_loss (L_URL) ------------------------------------------------


def test_reconstruction_loss_value_and_detached_target() -> None:
    reconstruction = torch.tensor([[1.0, 2.0], [0.0, 0.0]], requires_grad=True)
    target = torch.tensor([[1.0, 0.0], [1.0, 1.0]], requires_grad=True)
    loss = reconstruction_loss(reconstruction, target)
    assert loss.item() == pytest.approx((0 + 4 + 1 + 1) / 4)
    loss.backward()
    assert target.grad is None
    assert reconstruction.grad.abs().sum() > 0


def test_reconstruction_loss_mask_and_sum() -> None:
    reconstruction = torch.tensor(
        [[1.0, 2.0], [0.0, 0.0], [3.0, 3.0]], requires_grad=True
    )
    target = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    mask = torch.tensor([True, False, True])
    # per-row MSE: 2, 1, 9; rows 0 and 2 scored
    mean = reconstruction_loss(reconstruction, target, mask)
    assert mean.item() == pytest.approx((2 + 9) / 2)
    total = reconstruction_loss(reconstruction, target, mask, reduction="sum")
    assert total.item() == pytest.approx(2 + 9)
    total.backward()
    assert reconstruction.grad[1].abs().sum() == 0
    assert reconstruction.grad[[0, 2]].abs().sum() > 0
    none = torch.zeros(3, dtype=torch.bool)
    assert reconstruction_loss(reconstruction, target, none, reduction="sum") == 0
    with pytest.raises(ValueError, match="reduction"):
        reconstruction_loss(reconstruction, target, reduction="none")


def test_reconstruction_loss_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="same shape"):
        reconstruction_loss(torch.ones(2, 3), torch.ones(3, 2))


# --- semantic_calibration_loss (L_SCL) ------------------------------------------


def test_semantic_calibration_loss_hand_value() -> None:
    # p_a = [1/2, 1/2, 0], p_b = [3/4, 1/4, 0]: KL(a||b) + KL(b||a) = log(3) / 4.
    z_a = torch.tensor([[1.0, 1.0, -2.0]])
    z_b = torch.tensor([[3.0, 1.0, -5.0]])
    out = semantic_calibration_loss(z_a, z_b)
    assert out.item() == pytest.approx(math.log(3) / 4, rel=1e-6)


def test_semantic_calibration_loss_matches_kl_div() -> None:
    z_a, z_b = _rand(6, 5, seed=30).abs() + 0.1, _rand(6, 5, seed=31).abs() + 0.1
    p_a, p_b = z_a / z_a.sum(-1, keepdim=True), z_b / z_b.sum(-1, keepdim=True)
    expected = F.kl_div(p_b.log(), p_a, reduction="batchmean") + F.kl_div(
        p_a.log(), p_b, reduction="batchmean"
    )
    assert torch.allclose(semantic_calibration_loss(z_a, z_b), expected, atol=1e-6)


def test_semantic_calibration_loss_symmetric_zero_and_scale_invariant() -> None:
    z_a, z_b = _rand(4, 8, seed=32), _rand(4, 8, seed=33)
    loss = semantic_calibration_loss(z_a, z_b)
    assert loss > 0
    assert torch.allclose(loss, semantic_calibration_loss(z_b, z_a))
    assert semantic_calibration_loss(z_a, z_a).item() == 0.0
    # Scale invariant where the ReLU keeps every entry (eps is negligible there).
    pos_a, pos_b = z_a.abs() + 0.1, z_b.abs() + 0.1
    expected = semantic_calibration_loss(pos_a, pos_b)
    assert torch.allclose(semantic_calibration_loss(2 * pos_a, pos_b), expected)


def test_semantic_calibration_loss_zero_rows_are_finite() -> None:
    z_a = torch.zeros(3, 4, requires_grad=True)
    z_b = torch.tensor([[-1.0, -2.0, -3.0, -4.0], [1.0, 0.0, 0.0, 0.0], [0.0] * 4])
    z_b.requires_grad_()
    loss = semantic_calibration_loss(z_a, z_b)
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(z_a.grad).all() and torch.isfinite(z_b.grad).all()
    # Zero and all-negative rows both become uniform: rows 0 and 2 contribute 0.
    row_1 = semantic_calibration_loss(z_a[1:2], z_b[1:2])
    assert loss.item() == pytest.approx(row_1.item() / 3, rel=1e-5)


# --- joint_alignment_loss (L_JAL) -----------------------------------------------


def test_joint_alignment_loss_value_and_gradients() -> None:
    x_src = torch.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    x_tgt = torch.tensor([[1.0, 0.0, 0.0]], requires_grad=True)
    loss = joint_alignment_loss(x_src, x_tgt)
    assert loss.item() == pytest.approx((0 + 4 + 9) / 3)
    loss.backward()
    assert torch.allclose(x_src.grad, -x_tgt.grad)
    assert torch.allclose(x_src.grad, torch.tensor([[0.0, 4.0, 6.0]]) / 3)
    assert joint_alignment_loss(x_src, x_src).item() == 0.0
