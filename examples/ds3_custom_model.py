"""DS3 on embeddings from any entity-alignment model.

Only two embedding matrices and the labelled pairs are needed, so any EA model can
use ALMEA's active candidate selection. Here the "model" is made up: both KGs embed
60 entities around 6 topics, the target side is a shuffled, noisy copy.

    python examples/ds3_custom_model.py
"""

import torch

from almea_pyg.select import ds3, ds3_acquire, strategy_resolver


def fake_model_embeddings(n: int = 60, dim: int = 32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    topics = 3 * torch.randn(6, dim, generator=g)
    source = topics[torch.arange(n) % 6] + torch.randn(n, dim, generator=g)
    perm = torch.randperm(n, generator=g)  # source i is target perm[i]
    target = torch.empty_like(source)
    target[perm] = source + 0.1 * torch.randn(n, dim, generator=g)
    return source, target, perm


def main() -> None:
    source, target, perm = fake_model_embeddings()
    labelled = torch.stack([torch.arange(6), perm[:6]])  # 6 seed pairs

    # 1. One call from embeddings to the pairs to label next.
    acq = ds3_acquire(source, target, labelled, budget=5, alpha=0.35)
    print(f"pool: {len(acq.pool)} mutual-NN candidate pairs")
    print(
        f"DS3: {len(acq.result.representatives)} representatives, "
        f"{int(acq.result.num_iterations)} iterations, "
        f"converged={bool(acq.result.converged)}"
    )
    for s, t, score in zip(acq.source_index, acq.target_index, acq.score):
        correct = "yes" if perm[s] == t else "no"
        print(
            f"  label? source {int(s):2d} - target {int(t):2d}  "
            f"score {float(score):.3f}  (true link: {correct})"
        )

    # 2. The same through the strategy interface, next to the baselines.
    for name in ["ds3", "random", "uncertainty", "coreset"]:
        strategy = strategy_resolver(name)
        sel = strategy.select(
            source, target, labelled, 5, generator=torch.Generator().manual_seed(0)
        )
        hits = int((perm[sel.source_index] == sel.target_index).sum())
        print(
            f"{strategy}: sources {sel.source_index.tolist()}, {hits}/{len(sel)} true"
        )

    # 3. The solver alone, on any dissimilarity matrix (here a batch of two).
    points = torch.randn(2, 40, 2)
    A = torch.cdist(points, points).pow(2)
    result = ds3(A / A.amax((1, 2), keepdim=True), alpha=0.5)
    print("batch representatives:", [r.tolist() for r in result.representatives])


if __name__ == "__main__":
    main()
