import pytest
import torch

from almea_pyg.nn.conv.csr_spmm import attention_spmm, build_csr_graph


def _edges() -> torch.Tensor:
    # Node 5 is isolated, (1, 1) is a self-loop and (0, 2) is duplicated.
    return torch.tensor([[0, 0, 1, 3, 2, 4, 0], [2, 2, 1, 0, 4, 3, 1]])


@pytest.mark.parametrize("loops", [True, False])
def test_build_csr_graph_orders_edges(loops):
    edge_index = _edges()
    graph = build_csr_graph(edge_index, 6, add_self_loops=loops)
    if loops:
        expected = torch.cat(
            [edge_index[:, [0, 1, 3, 4, 5, 6]], torch.arange(6)[None].repeat(2, 1)], 1
        )
    else:
        expected = edge_index
    assert graph.num_edges == expected.size(1)
    # perm points from the CSR order back into GATConv's edge order.
    assert torch.equal(expected[0, graph.perm], graph.col)
    assert torch.equal(expected[1, graph.perm], graph.row)
    key = graph.row * 6 + graph.col
    assert bool((key[1:] >= key[:-1]).all())
    assert torch.equal(graph.ptr, torch.searchsorted(graph.row, torch.arange(7)))
    # The transpose lists the same edges sorted by source.
    assert torch.equal(graph.col[graph.perm_t], torch.sort(graph.col).values)
    assert torch.equal(graph.row[graph.perm_t], graph.col_t)
    assert torch.equal(
        graph.ptr_t, torch.searchsorted(graph.col[graph.perm_t], torch.arange(7))
    )


@pytest.mark.parametrize("heads", [1, 3])
def test_attention_spmm_matches_dense(heads):
    torch.manual_seed(0)
    graph = build_csr_graph(_edges(), 6, add_self_loops=False)
    alpha = torch.rand(graph.num_edges, heads, dtype=torch.float64)
    h = torch.randn(6, heads, 4, dtype=torch.float64)
    dense = torch.zeros(6, 6, heads, dtype=torch.float64)
    dense.index_put_((graph.row, graph.col), alpha, accumulate=True)
    expected = torch.einsum("ijk,jkc->ikc", dense, h)
    torch.testing.assert_close(attention_spmm(alpha, h, graph), expected)


@pytest.mark.parametrize("heads", [1, 2])
def test_attention_spmm_gradcheck(heads):
    torch.manual_seed(0)
    graph = build_csr_graph(_edges(), 6, add_self_loops=True)
    alpha = torch.rand(graph.num_edges, heads, dtype=torch.float64, requires_grad=True)
    h = torch.randn(6, heads, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, x: attention_spmm(a, x, graph), (alpha, h), fast_mode=True
    )


def test_attention_spmm_no_edges():
    graph = build_csr_graph(
        torch.empty(2, 0, dtype=torch.long), 4, add_self_loops=False
    )
    alpha = torch.rand(0, 1, requires_grad=True)
    h = torch.randn(4, 1, 3, requires_grad=True)
    out = attention_spmm(alpha, h, graph)
    assert torch.equal(out, torch.zeros(4, 1, 3))
    out.sum().backward()
    assert torch.equal(h.grad, torch.zeros_like(h))
    assert alpha.grad.shape == (0, 1)


def test_attention_spmm_more_edges_than_node_pairs():
    # 3 nodes, 12 edges: more stored entries than a 3 x 3 matrix has cells.
    edge_index = torch.tensor([[0, 1, 2, 0, 1, 2] * 2, [1, 1, 0, 2, 2, 2] * 2])
    graph = build_csr_graph(edge_index, 3, add_self_loops=False)
    alpha = torch.rand(graph.num_edges, 1, dtype=torch.float64, requires_grad=True)
    h = torch.randn(3, 1, 2, dtype=torch.float64, requires_grad=True)
    out = attention_spmm(alpha, h, graph)
    grad = torch.randn_like(out)
    out.backward(grad)
    expected_alpha_grad = (grad[graph.row] * h[graph.col]).sum(-1)
    torch.testing.assert_close(alpha.grad, expected_alpha_grad)
