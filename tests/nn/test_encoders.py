import pytest
import torch
from torch_geometric.nn import GATConv

from almea_pyg.nn.encoders import FeatureEncoder, GraphValues, StructuralEncoder

# Messages flow source -> target: node 0 hears 1, which hears 2 (so 2 is two hops
# from 0); 0 -> 4 reaches 4 only; node 3 is isolated.
EDGE_INDEX = torch.tensor([[1, 2, 0], [0, 1, 4]])
NUM_NODES = 5


def _encoder(seed: int = 0, **kwargs) -> StructuralEncoder:
    torch.manual_seed(seed)
    return StructuralEncoder(NUM_NODES, 8, **kwargs)


# --- StructuralEncoder ------------------------------------------------------------


@pytest.mark.parametrize(("num_layers", "heads"), [(1, 1), (2, 1), (2, 3)])
def test_structural_shape(num_layers: int, heads: int) -> None:
    encoder = _encoder(num_layers=num_layers, heads=heads)
    assert len(encoder.convs) == num_layers
    assert all(isinstance(conv, GATConv) for conv in encoder.convs)
    assert encoder(EDGE_INDEX).shape == (NUM_NODES, 8)


def test_structural_repr() -> None:
    encoder = StructuralEncoder(10, 16, heads=2)
    assert (
        repr(encoder)
        == "StructuralEncoder(10, dim=16, layers=2, heads=2, conv=CSRGATConv)"
    )


def test_structural_isolated_node_depends_only_on_itself() -> None:
    encoder = _encoder().eval()
    out = encoder(EDGE_INDEX)
    # The isolated node's embedding is the one it gets in a graph without edges.
    alone = encoder(torch.empty(2, 0, dtype=torch.long))
    torch.testing.assert_close(out[3], alone[3])
    # Changing every other entity's embedding leaves it unchanged ...
    with torch.no_grad():
        encoder.embedding.weight[[0, 1, 2, 4]] += 1.0
    after_others = encoder(EDGE_INDEX)
    torch.testing.assert_close(after_others[3], out[3])
    assert not torch.allclose(after_others[0], out[0])
    # ... changing its own changes it.
    with torch.no_grad():
        encoder.embedding.weight[3] += 1.0
    assert not torch.allclose(encoder(EDGE_INDEX)[3], out[3])


def test_structural_gradients_reach_embedding_table() -> None:
    encoder = _encoder()
    encoder(EDGE_INDEX)[0].sum().backward()
    grad = encoder.embedding.weight.grad
    assert grad is not None
    row_norms = grad.norm(dim=-1)
    # Node 0 sees itself, 1 (one hop) and 2 (two hops), not 3 (isolated) or 4.
    assert (row_norms[[0, 1, 2]] > 0).all()
    assert (row_norms[[3, 4]] == 0).all()
    for conv in encoder.convs:
        assert all(p.grad is not None for p in conv.parameters())


def test_structural_seeded() -> None:
    first, again, other = _encoder(0), _encoder(0), _encoder(1)
    torch.testing.assert_close(first(EDGE_INDEX), again(EDGE_INDEX))
    assert not torch.allclose(first(EDGE_INDEX), other(EDGE_INDEX))


def test_structural_dropout_only_when_training() -> None:
    encoder = _encoder(dropout=0.5)
    torch.manual_seed(0)
    assert not torch.allclose(encoder(EDGE_INDEX), encoder(EDGE_INDEX))
    encoder.eval()
    torch.testing.assert_close(encoder(EDGE_INDEX), encoder(EDGE_INDEX))


def test_structural_reset_parameters() -> None:
    encoder = _encoder()
    before = encoder.embedding.weight.detach().clone()
    encoder.reset_parameters()
    assert not torch.equal(encoder.embedding.weight, before)


def _values(encoder: StructuralEncoder, seeds: torch.Tensor) -> GraphValues:
    """The whole graph's values for a subgraph whose first rows are ``seeds``."""
    hidden = encoder.hidden_values(EDGE_INDEX)
    every = torch.arange(NUM_NODES)
    output = encoder.output_values(hidden, EDGE_INDEX, every, NUM_NODES)
    return GraphValues(hidden, output[seeds])


@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_structural_values_are_the_whole_graph_forward(num_layers: int) -> None:
    encoder = _encoder(num_layers=num_layers)
    whole = encoder(EDGE_INDEX)
    hidden = encoder.hidden_values(EDGE_INDEX)
    assert len(hidden) == num_layers - 1
    assert not any(h.requires_grad for h in hidden)
    # the last layer at seeds 4 and 0 over their incoming edges only (0 -> 4,
    # 1 -> 0): rows 4, 0, 1
    seed_edges = torch.tensor([[1, 2], [0, 1]])
    output = encoder.output_values(hidden, seed_edges, torch.tensor([4, 0, 1]), 2)
    assert not output.requires_grad
    torch.testing.assert_close(output, whole[[4, 0]], rtol=0, atol=0)


def test_structural_values_carry_the_whole_graph_forward() -> None:
    """With the whole graph's values, a subgraph's forward pass gives its seeds
    the whole graph's embeddings while the gradients come from the subgraph
    only."""
    encoder = _encoder()
    whole = encoder(EDGE_INDEX)
    # Rows: entities 0 (the seed), 1, 2; only the edge 1 -> 0 kept (2 -> 1 not
    # sampled).
    node_index = torch.tensor([0, 1, 2])
    sub = torch.tensor([[1], [0]])
    out = encoder(sub, node_index, _values(encoder, node_index[:1]))
    torch.testing.assert_close(out[0], whole[0], rtol=0, atol=0)
    sampled = encoder(sub, node_index)
    assert not torch.allclose(sampled[0], whole[0])  # without values it differs
    out[0].sum().backward()
    row_norms = encoder.embedding.weight.grad.norm(dim=-1)
    # The whole graph would reach node 2 (two hops); the subgraph does not.
    assert (row_norms[[0, 1]] > 0).all()
    assert (row_norms[[2, 3, 4]] == 0).all()


def test_structural_values_on_the_whole_graph_change_nothing() -> None:
    """On a subgraph holding every node and edge, ``values`` leave the forward
    pass and the gradients as they are."""
    grads = []
    for use_values in (False, True):
        encoder = _encoder()
        node_index = torch.arange(NUM_NODES)
        values = _values(encoder, node_index) if use_values else None
        out = encoder(EDGE_INDEX, node_index, values)
        torch.testing.assert_close(out, _encoder()(EDGE_INDEX))
        out[[0, 4]].square().sum().backward()
        grads.append([p.grad for p in encoder.parameters()])
    for plain, with_values in zip(*grads):
        torch.testing.assert_close(with_values, plain)


def test_structural_values_checked() -> None:
    encoder = _encoder()
    values = _values(encoder, torch.arange(NUM_NODES))
    with pytest.raises(ValueError, match="node_index"):
        encoder(EDGE_INDEX, None, values)
    with pytest.raises(ValueError, match="one tensor per hidden layer"):
        encoder(EDGE_INDEX, torch.arange(NUM_NODES), values._replace(hidden=[]))
    with pytest.raises(ValueError, match="output rows"):
        encoder(EDGE_INDEX, torch.arange(3), values)


# --- FeatureEncoder ---------------------------------------------------------------


def test_feature_shared_projection() -> None:
    encoder = FeatureEncoder(6, 4)
    assert len(encoder.lins) == 1
    x = torch.randn(3, 6)
    out = encoder(x)
    assert out.shape == (3, 4)
    torch.testing.assert_close(encoder(x, side=1), out)
    lin = encoder.lins[0]
    torch.testing.assert_close(out, x @ lin.weight.t() + lin.bias)


def test_feature_per_side_projections() -> None:
    encoder = FeatureEncoder((6, 9), 4)
    assert len(encoder.lins) == 2
    xs, xt = torch.randn(3, 6), torch.randn(5, 9)
    assert encoder(xs, side=0).shape == (3, 4)
    assert encoder(xt, side=1).shape == (5, 4)
    lin = encoder.lins[1]
    torch.testing.assert_close(encoder(xt, side=1), xt @ lin.weight.t() + lin.bias)
    with pytest.raises(RuntimeError):
        encoder(xt, side=0)


def test_feature_per_side_same_size_not_shared() -> None:
    encoder = FeatureEncoder((6, 6), 4)
    x = torch.randn(3, 6)
    assert not torch.allclose(encoder(x, side=0), encoder(x, side=1))


def test_feature_repr() -> None:
    assert repr(FeatureEncoder(6, 4)) == "FeatureEncoder(6, 4)"
    assert repr(FeatureEncoder((6, 9), 4)) == "FeatureEncoder((6, 9), 4)"
