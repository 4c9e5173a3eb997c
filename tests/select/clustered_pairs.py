"""Toy embeddings of two KGs for the selection tests: six clusters, and each
source entity's match is a slightly perturbed copy of it in the target."""

import torch


def embeddings(n=60, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(6, d, generator=g)
    source = centres[torch.arange(n) % 6] + torch.randn(n, d, generator=g)
    perm = torch.randperm(n, generator=g)
    target = torch.empty_like(source)
    target[perm] = source + 0.05 * torch.randn(n, d, generator=g)
    return source, target, perm  # source i matches target perm[i]


SOURCE, TARGET, PERM = embeddings()
LABELLED = torch.stack([torch.arange(6), PERM[:6]])
