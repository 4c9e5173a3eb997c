import copy

import pytest
import torch
from torch import nn

from almea_pyg.train.optim import RowSparseAdam, make_adam


def _tables(num=60, dim=5, seed=0, dtype=torch.float32):
    """The same table twice: one with dense gradients, one with sparse ones."""
    torch.manual_seed(seed)
    dense = nn.Embedding(num, dim).to(dtype)
    sparse = copy.deepcopy(dense)
    sparse.sparse = True
    return dense, sparse


def _step(table, optimizer, rows, target, scale, densify=False):
    optimizer.zero_grad(set_to_none=True)
    loss = ((table(rows) - target[rows]) ** 2).sum() * scale
    loss.backward()
    if densify:
        table.weight.grad = table.weight.grad.to_dense()
    optimizer.step()


@pytest.mark.parametrize(
    "scale, dtype",
    [(1.0, torch.float32), (1e-5, torch.float64)],
    ids=["large-gradients", "near-eps"],
)
def test_lazy_rows_follow_dense_adam(scale, dtype):
    # rows drawn at random each step, many missing tens of steps; the learning
    # rate changes halfway; a read row is caught up first, as the trainer does.
    # Each row must equal dense Adam's when read and at the end. Measured at the
    # end: 1.2e-6 (float32 rounding) with large gradients; 2.7e-6 near eps
    # (sqrt(v) ~ 1e-7, where the missed steps' eps enters as a weighted mean;
    # float64, as float32 rounding is amplified there), against moves of 0.3
    dense, sparse = _tables(dtype=dtype)
    target = torch.randn(60, 5, dtype=dtype)
    reference = torch.optim.Adam(dense.parameters(), lr=1e-2)
    lazy = RowSparseAdam(sparse.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(1)
    for step in range(80):
        if step == 40:
            for optimizer in (reference, lazy):
                optimizer.param_groups[0]["lr"] = 3e-3
        rows = torch.randperm(60, generator=generator)[: 2 + step % 9]
        lazy.catch_up(rows)
        torch.testing.assert_close(
            sparse.weight[rows], dense.weight[rows], rtol=0, atol=1e-5
        )
        _step(dense, reference, rows, target, scale)
        _step(sparse, lazy, rows, target, scale)
    behind = int((lazy.state[sparse.weight]["row_step"] < 80).sum())
    assert behind > 20  # rows were left behind, so the catch-up was exercised
    lazy.catch_up()
    moved = (dense.weight - _tables(dtype=dtype)[0].weight).abs().max()
    assert moved > 0.2
    torch.testing.assert_close(sparse.weight, dense.weight, rtol=0, atol=1e-5)
    for key in ("exp_avg", "exp_avg_sq"):
        torch.testing.assert_close(
            lazy.state[sparse.weight][key], reference.state[dense.weight][key]
        )
    assert set(lazy.state[sparse.weight]) == set(reference.state[dense.weight])


def test_a_dense_gradient_catches_every_row_up_first():
    # sparse steps, then one whose gradient comes dense (as the distributed
    # trainer sums it): every row takes its missed steps, then Adam's
    dense, sparse = _tables()
    target = torch.randn(60, 5)
    reference = torch.optim.Adam(dense.parameters(), lr=1e-2)
    lazy = RowSparseAdam(sparse.parameters(), lr=1e-2)
    for rows in ([0, 1, 2], [3, 4], [0, 5], [6, 1]):
        rows = torch.tensor(rows)
        lazy.catch_up(rows)
        _step(dense, reference, rows, target, 1.0)
        _step(sparse, lazy, rows, target, 1.0, densify=rows[0] == 6)
    torch.testing.assert_close(sparse.weight, dense.weight)
    assert "row_step" not in lazy.state[sparse.weight]


def test_state_dict_mid_way_resumes_the_same_run():
    dense, sparse = _tables()
    target = torch.randn(60, 5)
    lazy = RowSparseAdam(sparse.parameters(), lr=1e-2)
    schedule = [torch.randperm(60)[:7] for _ in range(12)]
    for rows in schedule[:6]:
        lazy.catch_up(rows)
        _step(sparse, lazy, rows, target, 1.0)
    saved = copy.deepcopy((sparse.state_dict(), lazy.state_dict()))
    for rows in schedule[6:]:
        lazy.catch_up(rows)
        _step(sparse, lazy, rows, target, 1.0)
    lazy.catch_up()

    resumed_table = nn.Embedding(60, 5, sparse=True)
    resumed_table.load_state_dict(saved[0])
    resumed = RowSparseAdam(resumed_table.parameters(), lr=1e-2)
    resumed.load_state_dict(saved[1])
    assert resumed.state[resumed_table.weight]["row_step"].dtype == torch.long
    for rows in schedule[6:]:
        resumed.catch_up(rows)
        _step(resumed_table, resumed, rows, target, 1.0)
    resumed.catch_up()
    torch.testing.assert_close(resumed_table.weight, sparse.weight, rtol=0, atol=0)


def test_weight_decay_takes_the_dense_step():
    # an L2 term reaches every row each step: no lazy form, the exact dense step
    dense, sparse = _tables()
    target = torch.randn(60, 5)
    reference = torch.optim.Adam(dense.parameters(), lr=1e-2, weight_decay=0.1)
    optimizer = RowSparseAdam(sparse.parameters(), lr=1e-2, weight_decay=0.1)
    for _ in range(3):
        rows = torch.tensor([1, 7, 9])
        _step(dense, reference, rows, target, 1.0)
        _step(sparse, optimizer, rows, target, 1.0)
    torch.testing.assert_close(sparse.weight, dense.weight)
    assert "row_step" not in optimizer.state[sparse.weight]


def test_make_adam_takes_both_kinds_of_gradient():
    dense, sparse = _tables()
    optimizer = make_adam([*dense.parameters(), *sparse.parameters()], lr=1e-2)
    assert isinstance(optimizer, RowSparseAdam)
    rows = torch.tensor([3, 4])
    (dense(rows).sum() + sparse(rows).sum()).backward()
    optimizer.step()
    torch.testing.assert_close(sparse.weight, dense.weight)
