import pickle

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch_geometric.nn import GATConv

from almea_pyg.nn.conv import CSRGATConv

NUM_NODES = 12


def _graph() -> torch.Tensor:
    """Random edges among nodes 0..9 plus self-loops and duplicates; 10, 11 isolated."""
    gen = torch.Generator().manual_seed(0)
    edges = torch.randint(0, 10, (2, 30), generator=gen)
    loops = torch.tensor([[3, 7], [3, 7]])
    return torch.cat([edges, loops, edges[:, :5]], dim=1)


def _pair(*args, dtype=torch.float64, **kwargs) -> tuple[GATConv, CSRGATConv]:
    torch.manual_seed(1)
    ref = GATConv(*args, **kwargs).to(dtype)
    with torch.no_grad():  # non-zero bias, sharper attention
        for param in ref.parameters():
            param.uniform_(-1.0, 1.0)
    csr = CSRGATConv(*args, **kwargs).to(dtype)
    csr.load_state_dict(ref.state_dict())
    return ref, csr


def _run(conv, x, *args, **kwargs):
    """Output and gradients of ``conv`` on features ``x``, a tensor or a pair of
    tensors (bipartite: ``x`` the sources' gradient, ``x_dst`` the
    destinations')."""
    parts = x if isinstance(x, tuple) else (x,)
    leaves = [t.detach().clone().requires_grad_() for t in parts]
    out = conv(leaves[0] if len(leaves) == 1 else tuple(leaves), *args, **kwargs)
    out = out[0] if isinstance(out, tuple) else out
    grad = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    out.backward(grad)
    grads = dict(zip(["x", "x_dst"], [leaf.grad for leaf in leaves]))
    return out, {**grads, **{n: p.grad for n, p in conv.named_parameters()}}


def _assert_same(ref, csr, x, *args, atol=1e-5, rtol=0.0, **kwargs):
    out_ref, grads_ref = _run(ref, x, *args, **kwargs)
    out, grads = _run(csr, x, *args, **kwargs)
    torch.testing.assert_close(out, out_ref, atol=atol, rtol=rtol)
    assert grads.keys() == grads_ref.keys()
    for name, grad in grads_ref.items():
        if grad is None:  # e.g. lin_edge without edge_attr
            assert grads[name] is None, name
        else:
            torch.testing.assert_close(
                grads[name], grad, atol=atol, rtol=rtol, msg=name
            )
    assert grads["x"] is not None and grads["att_src"] is not None


@pytest.mark.parametrize("heads", [1, 2])
@pytest.mark.parametrize("concat", [True, False])
@pytest.mark.parametrize("add_self_loops", [True, False])
def test_matches_gatconv(heads, concat, add_self_loops):
    ref, csr = _pair(6, 4, heads=heads, concat=concat, add_self_loops=add_self_loops)
    x = torch.randn(NUM_NODES, 6, dtype=torch.float64)
    assert csr.supports(x, _graph())
    _assert_same(ref, csr, x, _graph())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"negative_slope": 0.5},
        {"bias": False},
        {"residual": True, "heads": 2},
        {"edge_dim": 3},
    ],
)
def test_matches_gatconv_options(kwargs):
    ref, csr = _pair(6, 4, **kwargs)
    _assert_same(ref, csr, torch.randn(NUM_NODES, 6, dtype=torch.float64), _graph())


def test_matches_gatconv_separate_source_and_target_weights():
    ref, csr = _pair((6, 6), 4, heads=2)
    assert ref.lin is None
    _assert_same(ref, csr, torch.randn(NUM_NODES, 6, dtype=torch.float64), _graph())


@pytest.mark.parametrize(
    "kwargs, dst_channels",
    [
        ({}, 6),
        ({"heads": 2, "concat": False}, 6),
        ({"add_self_loops": False}, 6),
        ({"residual": True, "heads": 2}, 6),
        ({"in_channels": (6, 5), "heads": 2}, 5),
    ],
)
def test_matches_gatconv_bipartite(kwargs, dst_channels):
    """Sources and destinations as a pair of feature tensors, as GATConv takes
    them: ``N_dst`` output rows, self-loops on the first ``min(N, N_dst)``."""
    kwargs = {"in_channels": 6, **kwargs}
    ref, csr = _pair(kwargs.pop("in_channels"), 4, **kwargs)
    edge_index = _graph()
    edge_index = edge_index[:, edge_index[1] < 7]
    gen = torch.Generator().manual_seed(3)
    x_src = torch.randn(NUM_NODES, 6, dtype=torch.float64, generator=gen)
    x_dst = torch.randn(7, dst_channels, dtype=torch.float64, generator=gen)
    assert csr.supports((x_src, x_dst), edge_index, size=(NUM_NODES, 7))
    assert csr((x_src, x_dst), edge_index).shape[0] == 7
    # float64: assert_close's own default tolerances
    _assert_same(ref, csr, (x_src, x_dst), edge_index, atol=1e-7, rtol=1e-7)


def test_bipartite_on_the_first_rows_is_the_square_layer_there():
    """Destinations the first rows of the sources (a trimmed GAT layer): their
    output is the square layer's, given no edges into the other rows."""
    _, csr = _pair(6, 4, heads=2)
    edge_index = _graph()
    edge_index = edge_index[:, edge_index[1] < 7]
    x = torch.randn(NUM_NODES, 6, dtype=torch.float64)
    torch.testing.assert_close(csr((x, x[:7]), edge_index), csr(x, edge_index)[:7])


def test_destinations_a_prefix_of_the_sources_are_transformed_once():
    """A trimmed layer's ``(x, x[:r])``: the destinations' transform is the
    first rows of the sources' (no second ``r x d`` product), with GATConv's
    output and gradient; a tensor sharing the memory but not the autograd
    history (``x.detach()[:r]``) is transformed apart."""
    ref, csr = _pair(6, 4, heads=2)
    edge_index = _graph()
    edge_index = edge_index[:, edge_index[1] < 7]
    rows = []
    csr.lin.register_forward_hook(lambda module, args, out: rows.append(len(args[0])))
    results = []
    for conv in (ref, csr):
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(NUM_NODES, 6, dtype=torch.float64, generator=gen)
        x.requires_grad_()
        out = conv((x, x[:7]), edge_index)
        out.backward(torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out))
        results.append((out, x.grad))
    assert rows == [NUM_NODES]
    for got, want in zip(results[1], results[0]):
        torch.testing.assert_close(got, want, atol=1e-7, rtol=1e-7)
    rows.clear()
    x = torch.randn(NUM_NODES, 6, dtype=torch.float64, requires_grad=True)
    csr((x, x.detach()[:7]), edge_index)
    assert rows == [NUM_NODES, 7]


def test_matches_gatconv_float32_larger_graph():
    gen = torch.Generator().manual_seed(2)
    edge_index = torch.randint(0, 300, (2, 4000), generator=gen)
    ref, csr = _pair(32, 16, heads=2, dtype=torch.float32)
    x = torch.randn(300, 32, generator=gen)
    # float32 sums over 4000 edges: gradients up to ~400 agree to ~1e-6 relative.
    _assert_same(ref, csr, x, edge_index, atol=1e-4, rtol=1e-5)


def test_no_edges():
    ref, csr = _pair(6, 4, add_self_loops=False)
    empty = torch.empty(2, 0, dtype=torch.long)
    _assert_same(ref, csr, torch.randn(5, 6, dtype=torch.float64), empty)


def test_dropout_matches_gatconv_under_same_seed():
    ref, csr = _pair(6, 4, heads=2, dropout=0.5)
    x = torch.randn(NUM_NODES, 6, dtype=torch.float64)
    torch.manual_seed(3)
    out_ref, grads_ref = _run(ref, x, _graph())
    torch.manual_seed(3)
    out, grads = _run(csr, x, _graph())
    torch.testing.assert_close(out, out_ref, atol=1e-5, rtol=0)
    for name, grad in grads_ref.items():
        torch.testing.assert_close(grads[name], grad, atol=1e-5, rtol=0, msg=name)
    csr.eval()
    assert not torch.allclose(out, csr(x, _graph()))


def test_dropout_is_a_no_op_in_eval_mode():
    ref, csr = _pair(6, 4, heads=2)
    _, csr_dropout = _pair(6, 4, heads=2, dropout=0.5)
    csr.eval()
    csr_dropout.eval()
    x = torch.randn(NUM_NODES, 6, dtype=torch.float64)
    out = csr_dropout(x, _graph())
    assert torch.equal(out, csr_dropout(x, _graph()))
    assert torch.equal(out, csr(x, _graph()))


def test_deterministic():
    _, csr = _pair(6, 4, heads=2, dtype=torch.float32)
    x = torch.randn(NUM_NODES, 6)
    out_a, grads_a = _run(csr, x, _graph())
    csr.zero_grad()
    out_b, grads_b = _run(csr, x, _graph())
    assert torch.equal(out_a, out_b)
    assert all(torch.equal(grads_a[n], grads_b[n]) for n in grads_a)


def test_no_edge_by_feature_tensor():
    """No op output of the csr layer has E * C elements (GATConv's do)."""

    class MaxNumel(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.numel = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else [out]:
                if isinstance(t, torch.Tensor) and t.layout == torch.strided:
                    self.numel = max(self.numel, t.numel())
            return out

    num_nodes, channels = 40, 16
    edge_index = torch.randint(0, num_nodes, (2, 2000))
    ref, csr = _pair(channels, channels, dtype=torch.float32)
    x = torch.randn(num_nodes, channels, requires_grad=True)
    peaks = []
    for conv in (ref, csr):
        with MaxNumel() as mode:
            conv(x, edge_index).sum().backward()
        peaks.append(mode.numel)
    num_edges = csr.csr_graph(edge_index, num_nodes).num_edges
    assert peaks[0] >= num_edges * channels > peaks[1]


@pytest.mark.filterwarnings("ignore:Sparse invariant checks")
@pytest.mark.parametrize(
    "call",
    ["edge_attr", "attention_weights", "bipartite_no_destinations", "sparse", "hook"],
)
def test_falls_back_to_gatconv(call):
    edge_dim = 3 if call == "edge_attr" else None
    ref, csr = _pair(6, 4, heads=2, edge_dim=edge_dim)
    edge_index = _graph()
    x = torch.randn(NUM_NODES, 6, dtype=torch.float64)
    kwargs = {}
    if call == "edge_attr":
        kwargs["edge_attr"] = torch.randn(edge_index.size(1), 3, dtype=torch.float64)
    elif call == "attention_weights":
        kwargs["return_attention_weights"] = True
    elif call == "bipartite_no_destinations":
        x = (x, None)
    elif call == "sparse":
        edge_index = torch.sparse_coo_tensor(
            edge_index, torch.ones(edge_index.size(1)), (12, 12), check_invariants=True
        ).coalesce()
    elif call == "hook":
        calls = []
        for conv in (ref, csr):
            conv.register_propagate_forward_hook(lambda *args: calls.append(1))
    assert not csr.supports(x, edge_index, **kwargs)
    if isinstance(x, tuple):
        out_ref, out = ref(x, edge_index), csr(x, edge_index)
        torch.testing.assert_close(out, out_ref)
    else:
        _assert_same(ref, csr, x, edge_index, **kwargs)
    if call == "hook":
        assert len(calls) == 2


def test_supports_only_the_size_of_the_features():
    _, csr = _pair(6, 4)
    x = torch.randn(NUM_NODES, 6, dtype=torch.float64)
    assert csr.supports(x, _graph(), size=(NUM_NODES, NUM_NODES))
    assert not csr.supports(x, _graph(), size=(NUM_NODES, NUM_NODES - 2))
    assert csr.supports((x, x[:5]), _graph(), size=(NUM_NODES, 5))
    assert not csr.supports((x, x[:5]), _graph(), size=(NUM_NODES, 6))
    assert not csr.supports(x.to(torch.bfloat16), _graph())


def test_csr_path_does_not_propagate(monkeypatch):
    _, csr = _pair(6, 4)

    def fail(*args, **kwargs):
        raise AssertionError("propagate called")

    monkeypatch.setattr(csr, "propagate", fail)
    out = csr(torch.randn(NUM_NODES, 6, dtype=torch.float64), _graph())
    assert out.shape == (NUM_NODES, 4)


def test_csr_cache():
    _, csr = _pair(6, 4)
    edge_index = _graph()
    other = torch.randint(0, NUM_NODES, (2, 20))
    graph = csr.csr_graph(edge_index, NUM_NODES)
    assert csr.csr_graph(edge_index, NUM_NODES) is graph
    assert csr.csr_graph(edge_index.clone(), NUM_NODES) is graph
    other_graph = csr.csr_graph(other, NUM_NODES)
    assert csr.csr_graph(edge_index, NUM_NODES) is graph  # both graphs cached
    assert csr.csr_graph(other, NUM_NODES) is other_graph
    assert csr.csr_graph(edge_index, NUM_NODES + 1) is not graph
    csr.add_self_loops = False
    assert csr.csr_graph(edge_index, NUM_NODES).num_edges == edge_index.size(1)
    edge_index[0, 0] = (edge_index[0, 0] + 1) % NUM_NODES
    # An equal copy of the modified tensor must not hit the stale entry.
    rebuilt = csr.csr_graph(edge_index.clone(), NUM_NODES)
    assert torch.equal(
        torch.sort(rebuilt.row * NUM_NODES + rebuilt.col).values,
        torch.sort(edge_index[1] * NUM_NODES + edge_index[0]).values,
    )
    assert "_csr_cache" not in str(csr.state_dict().keys())


def test_same_parameters_and_repr():
    ref, csr = _pair(6, 4, heads=2)
    assert isinstance(csr, GATConv)
    assert list(csr.state_dict()) == list(ref.state_dict())
    assert repr(csr) == "CSRGATConv(6, 4, heads=2)"


def test_csr_cache_lets_a_freed_graph_go():
    # a mini-batch step's sampled edge_index is never seen again: its structure
    # must not outlive it (at 1M entities per side, ~70 MB per stale graph)
    _, csr = _pair(6, 4)
    kept = _graph()
    graph = csr.csr_graph(kept, NUM_NODES)
    sampled = torch.randint(0, NUM_NODES, (2, 20))
    csr.csr_graph(sampled, NUM_NODES)
    assert len(csr._csr_cache) == 2
    del sampled
    assert csr.csr_graph(kept, NUM_NODES) is graph
    assert len(csr._csr_cache) == 1
    restored = pickle.loads(pickle.dumps(csr))  # the cache stays behind
    assert restored._csr_cache is None
    x = torch.randn(NUM_NODES, 6, dtype=torch.float64)
    torch.testing.assert_close(restored(x, kept), csr(x, kept))
