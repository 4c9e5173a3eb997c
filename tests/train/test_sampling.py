"""Neighbour sampling for mini-batch training (almea_pyg.train.sampling)."""

import pytest
import torch

from almea_pyg.data.synthetic import make_synthetic_pair
from almea_pyg.models import ALMEA
from almea_pyg.train.sampling import (
    NeighborSampling,
    pyg_sampling_available,
    sample_neighbors,
    to_csc,
)

BACKENDS = [
    "torch",
    pytest.param(
        "pyg",
        marks=pytest.mark.skipif(
            not pyg_sampling_available(), reason="needs pyg-lib or torch-sparse"
        ),
    ),
]


@pytest.fixture(scope="module")
def pair():
    return make_synthetic_pair(num_entities=200, seed=2).split(0.3, seed=0)


@pytest.fixture(scope="module")
def model(pair):
    torch.manual_seed(0)
    return ALMEA.from_pair(pair, dim=8)


@pytest.fixture(scope="module")
def inputs(model, pair):
    return model.inputs(pair)


def batch_seeds(inputs, batch):
    """A batch's source and target entities in the union graph, distinct."""
    return torch.cat([batch[0], batch[1] + inputs.num_source]).unique()


def hops(sub, num_seeds, depth):
    """Each row's hop: its distance from the seeds along sampled edges."""
    dist = torch.full((sub.node_index.numel(),), depth + 1)
    dist[:num_seeds] = 0
    src, dst = sub.edge_index
    for h in range(depth):
        reached = src[dist[dst] == h]
        dist[reached] = torch.minimum(dist[reached], torch.tensor(h + 1))
    return dist


def check_contract(sub, seeds, edge_index, num_nodes, fanouts):
    """Seeds first, distinct rows, only graph edges, the fan-out per hop: every
    node reached before the last hop draws min(in-degree, k) incoming edges."""
    node, sampled = sub.node_index, sub.edge_index
    assert torch.equal(node[: seeds.numel()], seeds)
    assert node.unique().numel() == node.numel()
    keys = edge_index[0] * num_nodes + edge_index[1]
    sampled_keys = node[sampled[0]] * num_nodes + node[sampled[1]]
    assert torch.isin(sampled_keys, keys).all()
    assert sampled_keys.unique().numel() == sampled_keys.numel()
    depth = len(fanouts)
    dist = hops(sub, seeds.numel(), depth)
    assert (dist <= depth).all()  # every row reached within the hops
    degree = torch.bincount(edge_index[1], minlength=num_nodes)[node]
    drawn = torch.bincount(sampled[1], minlength=node.numel())
    k = torch.tensor(fanouts + [0])[dist]
    expected = torch.where(k < 0, degree, torch.minimum(degree, k.clamp(min=0)))
    assert torch.equal(drawn, expected)
    # Hop order: the rows of hop h after those of hop h - 1, the edges drawn at
    # hop h (into rows of hop h - 1) after those of hop h - 1.
    nodes, edges = sub.num_sampled_nodes, sub.num_sampled_edges
    assert len(nodes) == depth + 1 and len(edges) == depth
    assert nodes[0] == seeds.numel()
    assert sum(nodes) == node.numel() and sum(edges) == sampled.size(1)
    row_hop = torch.repeat_interleave(torch.arange(depth + 1), torch.tensor(nodes))
    assert torch.equal(row_hop, dist)
    edge_hop = torch.repeat_interleave(torch.arange(1, depth + 1), torch.tensor(edges))
    assert torch.equal(row_hop[sampled[1]], edge_hop - 1)
    assert (row_hop[sampled[0]] <= edge_hop).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fanouts", [[3], [3, 2], [5, 0, 2], [-1, -1], [100, 100]])
def test_sampled_subgraph_contract(inputs, pair, backend, fanouts):
    sampler = NeighborSampling(
        inputs.edge_index, inputs.num_entities, fanouts, backend=backend
    )
    seeds = batch_seeds(inputs, pair.train_links[:, :10])
    sub = sampler(seeds, torch.Generator().manual_seed(0))
    check_contract(sub, seeds, inputs.edge_index, inputs.num_entities, fanouts)


def test_repr():
    edge_index = torch.tensor([[0, 1], [1, 0]])
    sampler = NeighborSampling(edge_index, 2, [10, 10], backend="torch")
    assert repr(sampler) == "NeighborSampling(fanouts=[10, 10], backend='torch')"
    auto = NeighborSampling(edge_index, 2, [10, 10])
    assert auto.backend == ("pyg" if pyg_sampling_available() else "torch")


def test_fallback_is_deterministic_under_a_seed(inputs, pair):
    sampler = NeighborSampling(
        inputs.edge_index, inputs.num_entities, [2, 2], backend="torch"
    )
    seeds = batch_seeds(inputs, pair.train_links[:, :10])

    def draw(seed):
        return sampler(seeds, torch.Generator().manual_seed(seed))

    first, again, other = draw(0), draw(0), draw(1)
    assert torch.equal(first.node_index, again.node_index)
    assert torch.equal(first.edge_index, again.edge_index)
    assert not torch.equal(first.node_index, other.node_index)


def test_fallback_draws_uniformly_without_replacement():
    # 3000 stars: centre c has 10 leaves; 3 drawn per centre.
    centres, leaves = 3000, 10
    leaf = centres + torch.arange(centres * leaves)
    edge_index = torch.stack([leaf, torch.arange(centres).repeat_interleave(leaves)])
    colptr, row = to_csc(edge_index, centres * (leaves + 1))
    sub = sample_neighbors(
        colptr,
        row,
        torch.arange(centres),
        [3],
        generator=torch.Generator().manual_seed(0),
    )
    src, dst = sub.node_index[sub.edge_index[0]], sub.edge_index[1]
    assert torch.equal(torch.bincount(dst), torch.full((centres,), 3))
    assert ((src - centres) // leaves == dst).all()  # a leaf of its own centre
    assert src.unique().numel() == src.numel()  # without replacement
    position = (src - centres) % leaves  # which leaf of its centre
    counts = torch.bincount(position, minlength=leaves).float()
    # 9000 draws over 10 leaves: 900 each, standard deviation ~28
    assert (counts - 900).abs().max() < 150


def test_invalid_arguments(inputs):
    with pytest.raises(ValueError, match="fanouts"):
        NeighborSampling(inputs.edge_index, inputs.num_entities, [])
    for bad in ([5, -2], 10, [2.5], ["10"]):
        with pytest.raises(ValueError, match="fanouts"):
            NeighborSampling(inputs.edge_index, inputs.num_entities, bad)
    sampler = NeighborSampling(inputs.edge_index, inputs.num_entities, [5])
    with pytest.raises(ValueError, match="distinct"):
        sampler(torch.tensor([1, 1, 2]))
    if not pyg_sampling_available():
        with pytest.raises(ImportError, match="pyg-lib or torch-sparse"):
            NeighborSampling(inputs.edge_index, 10, [5], backend="pyg")


@pytest.mark.skipif(
    not pyg_sampling_available(), reason="needs pyg-lib or torch-sparse"
)
def test_fallback_agrees_with_neighbor_loader(inputs, pair):
    from torch_geometric.data import Data
    from torch_geometric.loader import NeighborLoader

    seeds = batch_seeds(inputs, pair.train_links[:, :10])
    data = Data(edge_index=inputs.edge_index, num_nodes=inputs.num_entities)
    loader = NeighborLoader(
        data, num_neighbors=[-1, -1], input_nodes=seeds, batch_size=seeds.numel()
    )
    batch = next(iter(loader))
    ours = NeighborSampling(
        inputs.edge_index, inputs.num_entities, [-1, -1], backend="torch"
    )(seeds)
    assert torch.equal(batch.n_id[: seeds.numel()], seeds)
    assert torch.equal(batch.n_id.sort().values, ours.node_index.sort().values)
    n = inputs.num_entities

    def keys(node, edge_index):
        return (node[edge_index[0]] * n + node[edge_index[1]]).sort().values

    assert torch.equal(
        keys(batch.n_id, batch.edge_index), keys(ours.node_index, ours.edge_index)
    )


@pytest.mark.parametrize("trim", [False, True])
@pytest.mark.parametrize("exact", ["all", "max_degree"])
def test_subgraph_forward_equals_full_graph(model, inputs, pair, exact, trim):
    """With every neighbour sampled, the GAT's seed rows, the joint embeddings,
    the losses and every gradient equal the full-graph step's, with each layer
    on the whole sample or trimmed to the hops the seeds read."""
    degree = torch.bincount(inputs.edge_index[1]).max().item()
    fanouts = [-1, -1] if exact == "all" else [degree, degree]
    batch = pair.train_links[:, :24]
    sub = NeighborSampling(inputs.edge_index, inputs.num_entities, fanouts)(
        batch_seeds(inputs, batch), torch.Generator().manual_seed(0)
    )
    assert sub.node_index.numel() < inputs.num_entities  # a true subgraph

    def step(edge_index, **kwargs):
        model.zero_grad()
        out = model(
            inputs.features, edge_index, inputs.present, batch[0], batch[1], **kwargs
        )
        torch.manual_seed(1)  # the same LSL masks and noise
        losses = model.loss(out)
        losses["loss"].backward()
        grads = {k: p.grad.clone() for k, p in model.named_parameters()}
        return out, losses, grads

    full, full_losses, full_grads = step(inputs.edge_index)
    hops = {}
    if trim:
        hops = dict(
            num_sampled_nodes_per_hop=sub.num_sampled_nodes,
            num_sampled_edges_per_hop=sub.num_sampled_edges,
        )
    mini, mini_losses, mini_grads = step(
        sub.edge_index, node_index=sub.node_index, **hops
    )
    tol = {"atol": 1e-6, "rtol": 1e-5}
    torch.testing.assert_close(mini.h["graph"], full.h["graph"], **tol)
    torch.testing.assert_close(mini.joint, full.joint, **tol)
    for key, value in full_losses.items():
        torch.testing.assert_close(mini_losses[key], value, **tol)
    for key, grad in full_grads.items():  # summed in another order
        torch.testing.assert_close(mini_grads[key], grad, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("full_forward", [False, True])
def test_trimmed_layers_give_the_seeds_the_same_output_and_gradients(
    model, inputs, pair, full_forward
):
    """On a sparse sample, running layer l on the first L - l hops only, with
    output rows the next layer reads only, changes nothing the seeds' output or
    any gradient depends on; the output is the seeds' rows."""
    seeds = batch_seeds(inputs, pair.train_links[:, :8])
    sub = NeighborSampling(inputs.edge_index, inputs.num_entities, [3, 2])(
        seeds, torch.Generator().manual_seed(0)
    )
    encoder = model.structure
    num_seeds = sub.num_sampled_nodes[0]
    values = None
    if full_forward:
        edges = NeighborSampling(inputs.edge_index, inputs.num_entities, [-1])(seeds)
        hidden = model.graph_hidden_values(inputs.edge_index)
        values = model.graph_values(
            hidden, edges.edge_index, edges.node_index, num_seeds
        )

    def run(**hops):
        encoder.zero_grad()
        out = encoder(sub.edge_index, sub.node_index, values, **hops)
        out[:num_seeds].square().sum().backward()
        return out, [p.grad.clone() for p in encoder.parameters()]

    whole, whole_grads = run()
    trimmed, trimmed_grads = run(
        num_sampled_nodes_per_hop=sub.num_sampled_nodes,
        num_sampled_edges_per_hop=sub.num_sampled_edges,
    )
    assert whole.size(0) == sub.node_index.numel()
    assert trimmed.size(0) == num_seeds < whole.size(0)
    torch.testing.assert_close(trimmed, whole[:num_seeds])
    for grad, expected in zip(trimmed_grads, whole_grads):
        torch.testing.assert_close(grad, expected)


def test_trimming_needs_consistent_counts(model, inputs, pair):
    sub = NeighborSampling(inputs.edge_index, inputs.num_entities, [3, 2])(
        batch_seeds(inputs, pair.train_links[:, :8]), torch.Generator().manual_seed(0)
    )
    encoder = model.structure
    nodes, edges = sub.num_sampled_nodes, sub.num_sampled_edges
    with pytest.raises(ValueError, match="node_index and both"):
        encoder(sub.edge_index, num_sampled_nodes_per_hop=nodes)
    with pytest.raises(ValueError, match="3 node counts and 2 edge counts"):
        encoder(
            sub.edge_index,
            sub.node_index,
            num_sampled_nodes_per_hop=nodes[:2],
            num_sampled_edges_per_hop=edges,
        )
    with pytest.raises(ValueError, match="do not add up"):
        encoder(
            sub.edge_index,
            sub.node_index,
            num_sampled_nodes_per_hop=[nodes[0], nodes[1] - 1, nodes[2]],
            num_sampled_edges_per_hop=edges,
        )


def test_forward_refuses_a_subgraph_without_the_batch(model, inputs, pair):
    batch = pair.train_links[:, :4]
    node_index = torch.tensor([0, 1, 2])
    edge_index = torch.tensor([[0, 1], [1, 2]])
    with pytest.raises(ValueError, match="node_index lacks"):
        model(
            inputs.features,
            edge_index,
            inputs.present,
            batch[0],
            batch[1],
            node_index=node_index,
        )
