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


@pytest.mark.parametrize("k", [1, 3])
def test_csls_dissimilarity_is_the_public_codes(k):
    # The public code: per side d = squared distances, 1 - csls(1 - d, k) with
    # csls(S) = 2 S - (row mean of the k largest) - (column mean of the k largest),
    # min-max normalised; then the two sides averaged.
    def side(x):
        S = 1 - torch.cdist(x, x).pow(2)
        rows = S.topk(k, dim=1).values.mean(1)
        cols = S.topk(k, dim=0).values.mean(0)
        C = 1 - (2 * S - rows[:, None] - cols[None, :])
        return (C - C.min()) / (C.max() - C.min())

    expected = (side(HS) + side(HT)) / 2
    A = dissimilarity_matrix(HS, HT, csls_k=k, chunk_size=2)
    assert torch.allclose(A, expected, atol=1e-5)
    assert torch.allclose(A, A.t(), atol=1e-6)
    with pytest.raises(ValueError, match="csls_k"):
        dissimilarity_matrix(HS, HT, csls_k=0)
