"""The DS3 inputs built from pair embeddings: dissimilarity ``A`` and diversity ``D``.

A candidate pair ``q = (S, T)`` is represented by the concatenation ``[h_S, h_T]``, so
``½(‖h_Si − h_Sj‖² + ‖h_Ti − h_Tj‖²)`` is half the squared distance between
concatenations; both matrices below are built that way, in row chunks.
"""

from typing import Optional

import torch
from torch import Tensor

from almea_pyg.metrics.similarity import DEFAULT_CHUNK_SIZE

#: The upper end σ of the diversity scores ``D ∈ [1, σ]`` (Eq. 7).
DEFAULT_SIGMA = 3.0


def _half_sq_dist(x: Tensor, y: Tensor) -> Tensor:
    sq = x.pow(2).sum(-1, keepdim=True) + y.pow(2).sum(-1) - 2 * x @ y.t()
    return sq.clamp_min_(0).mul_(0.5)


def dissimilarity_matrix(
    source: Tensor,
    target: Tensor,
    *,
    normalize: bool = True,
    csls_k: Optional[int] = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Tensor:
    r"""Pairwise dissimilarity of candidate pairs (Eq. 5), min-max normalised.

    ``A[i, j] = ½(‖h_Si − h_Sj‖² + ‖h_Ti − h_Tj‖²)``, then ``(A − min) / (max − min)``
    (all zeros when every pair is identical). The diagonal is exactly zero.

    With ``csls_k``, the paper's public code's ``A`` instead: per side, the squared
    distances ``d_ij = ‖h_i − h_j‖²`` become CSLS distances ``1 − csls(1 − d)``,
    i.e. ``2 d_ij + r_i + r_j − 1`` with ``r_i`` the mean of the ``csls_k`` largest
    ``1 − d_il`` (``i`` itself included), each side min-max normalised, then the two
    averaged. Its diagonal is not zero: ``2 r_i − 1`` (after normalisation) makes a
    pair in a dense neighbourhood a costlier representative.

    Args:
        source: Source embeddings of the ``K`` candidate pairs.
        target: Target embeddings of the same pairs.
        normalize: Min-max normalise. (default: ``True``)
        csls_k: Neighbourhood size of the public code's CSLS form; ``None``
            (default) for Eq. 5.
        chunk_size: Rows per block.

    Shapes:
        source: ``(K, d)``, target: ``(K, d')`` -> ``(K, K)``
    """
    if source.size(0) != target.size(0):
        raise ValueError("dissimilarity_matrix: source and target need the same K")
    if csls_k is not None:
        A = _csls_distance(source, csls_k, normalize, chunk_size)
        return A.add_(_csls_distance(target, csls_k, normalize, chunk_size)).mul_(0.5)
    pair = torch.cat([source, target], dim=-1)
    K = pair.size(0)
    A = pair.new_empty(K, K)
    for start in range(0, K, chunk_size):
        A[start : start + chunk_size] = _half_sq_dist(
            pair[start : start + chunk_size], pair
        )
    A.diagonal().zero_()
    if normalize and K > 0:
        low, high = A.min(), A.max()
        if high > low:
            A.sub_(low).div_(high - low)
        else:
            A.zero_()
    return A


def _csls_distance(x: Tensor, k: int, normalize: bool, chunk_size: int) -> Tensor:
    """``1 − csls(1 − ‖x_i − x_j‖²)`` over the rows of ``x``, min-max normalised."""
    if k < 1:
        raise ValueError(f"dissimilarity_matrix: csls_k must be >= 1, got {k}")
    K = x.size(0)
    out = x.new_empty(K, K)
    for start in range(0, K, chunk_size):
        out[start : start + chunk_size] = _half_sq_dist(
            x[start : start + chunk_size], x
        )
    out.mul_(2)  # squared distances d
    if K == 0:
        return out
    # r_i: mean of the k largest similarities 1 − d_il; d is symmetric, so the
    # column means equal the row means.
    r = (1 - out.topk(min(k, K), dim=-1, largest=False).values).mean(-1)
    out.mul_(2).add_(r[:, None]).add_(r[None, :]).sub_(1)
    if normalize:
        low, high = out.min(), out.max()
        if high > low:
            out.sub_(low).div_(high - low)
        else:
            out.zero_()
    return out


def diversity_scores(
    source: Tensor,
    target: Tensor,
    labelled_source: Tensor,
    labelled_target: Tensor,
    *,
    sigma: float = DEFAULT_SIGMA,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Tensor:
    r"""Diversity scores ``D ∈ [1, σ]`` of candidate pairs (Eqs. 6-7).

    ``C[i, l] = ½(‖h_Si − h_Ls‖² + ‖h_Ti − h_Lt‖²)`` to the labelled pairs and
    ``D_i = σ − (σ − 1) · min_l C_il / max_q min_l C_ql``. ``D`` is DS3's row penalty:
    pairs far from everything labelled get ``D ≈ 1`` (the smallest penalty) and are
    favoured, pairs next to a labelled pair get ``D ≈ σ``. With no labelled pairs
    every score is ``1``.

    Args:
        source: Source embeddings of the ``K`` candidate pairs.
        target: Target embeddings of the candidate pairs.
        labelled_source: Source embeddings of the ``L`` labelled pairs.
        labelled_target: Target embeddings of the labelled pairs.
        sigma: Upper end σ. (default: ``3.0``)
        chunk_size: Candidate rows per block (memory ``O(chunk_size · L)``).

    Shapes:
        source, target: ``(K, d)``; labelled_*: ``(L, d)`` -> ``(K,)``
    """
    if sigma < 1:
        raise ValueError(f"diversity_scores: sigma must be >= 1, got {sigma}")
    pair = torch.cat([source, target], dim=-1)
    if labelled_source.size(0) == 0 or pair.size(0) == 0:
        return pair.new_ones(pair.size(0))
    labelled = torch.cat([labelled_source, labelled_target], dim=-1)
    nearest = pair.new_empty(pair.size(0))
    for start in range(0, pair.size(0), chunk_size):
        block = _half_sq_dist(pair[start : start + chunk_size], labelled)
        nearest[start : start + chunk_size] = block.amin(-1)
    top = nearest.max()
    if top <= 0:
        return torch.full_like(nearest, float(sigma))
    return sigma - (sigma - 1) * nearest / top


def pair_embeddings(
    source_emb: Tensor,
    target_emb: Tensor,
    source_index: Tensor,
    target_index: Tensor,
    *,
    normalize: bool = True,
) -> tuple[Tensor, Tensor]:
    """Gather (and L2-normalise) the embeddings of the pairs ``(source, target)``.

    Shapes:
        source_emb: ``(N_s, d)``, target_emb: ``(N_t, d)`` -> two ``(K, d)`` tensors.
    """
    h_s, h_t = source_emb[source_index], target_emb[target_index]
    if normalize:
        h_s = torch.nn.functional.normalize(h_s, dim=-1)
        h_t = torch.nn.functional.normalize(h_t, dim=-1)
    return h_s, h_t
