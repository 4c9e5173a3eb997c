import pytest
import torch

from almea_pyg.select.dissimilarity import (
    dissimilarity_matrix,
    diversity_scores,
    pair_embeddings,
)

G = torch.Generator().manual_seed(0)
HS, HT = torch.randn(5, 3, generator=G), torch.randn(5, 4, generator=G)
LS, LT = torch.randn(2, 3, generator=G), torch.randn(2, 4, generator=G)


def test_dissimilarity_against_hand_computation():
    raw = torch.zeros(5, 5)
    for i in range(5):
        for j in range(5):
            raw[i, j] = 0.5 * (
                (HS[i] - HS[j]).pow(2).sum() + (HT[i] - HT[j]).pow(2).sum()
            )
    expected = (raw - raw.min()) / (raw.max() - raw.min())
    assert torch.allclose(
        dissimilarity_matrix(HS, HT, chunk_size=2), expected, atol=1e-5
    )
    assert torch.allclose(dissimilarity_matrix(HS, HT, normalize=False), raw, atol=1e-5)
    assert bool((dissimilarity_matrix(HS, HT).diagonal() == 0).all())


def test_dissimilarity_of_identical_pairs_is_zero():
    A = dissimilarity_matrix(torch.ones(3, 2), torch.ones(3, 2))
    assert torch.equal(A, torch.zeros(3, 3))


def test_diversity_against_hand_computation():
    C = torch.zeros(5, 2)
    for i in range(5):
        for m in range(2):
            C[i, m] = 0.5 * (
                (HS[i] - LS[m]).pow(2).sum() + (HT[i] - LT[m]).pow(2).sum()
            )
    nearest = C.min(1).values
    expected = 3 - 2 * nearest / nearest.max()
    D = diversity_scores(HS, HT, LS, LT, chunk_size=2)
    assert torch.allclose(D, expected, atol=1e-5)
    # The farthest candidate from the labelled set gets the smallest penalty, 1.
    assert D[nearest.argmax()].item() == pytest.approx(1.0)
    assert bool(((D >= 1 - 1e-6) & (D <= 3 + 1e-6)).all())


def test_diversity_sigma_and_edge_cases():
    D = diversity_scores(HS, HT, LS, LT, sigma=5.0)
    assert D.max().item() <= 5.0 and D.min().item() == pytest.approx(1.0)
    none = diversity_scores(HS, HT, LS[:0], LT[:0])
    assert torch.equal(none, torch.ones(5))
    axes = torch.eye(3)
    same = diversity_scores(axes[:2], axes[:2], axes[:2], axes[:2])
    assert torch.allclose(same, torch.full((2,), 3.0))
    with pytest.raises(ValueError):
        diversity_scores(HS, HT, LS, LT, sigma=0.5)


def test_pair_embeddings_normalises():
    hs, ht = pair_embeddings(HS, HT, torch.tensor([0, 2]), torch.tensor([1, 1]))
    assert torch.allclose(hs.norm(dim=1), torch.ones(2))
    assert torch.allclose(ht[0], ht[1])
    raw, _ = pair_embeddings(
        HS, HT, torch.tensor([3]), torch.tensor([0]), normalize=False
    )
    assert torch.equal(raw[0], HS[3])
