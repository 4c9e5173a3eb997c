"""Seeded splits of alignment links into seed (train), validation and test links."""

import torch
from torch import Tensor


def split_links(
    links: Tensor,
    ratio: float,
    *,
    seed: int = 0,
    valid_ratio: float = 0.0,
    pool_ratio: float = 0.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Shuffle ``links`` with ``seed`` and cut it into train, valid and test links.

    As in MCLEA/MEAformer/ALMEA, the first ``ratio * L`` shuffled links are the
    seeds, the next ``valid_ratio * L`` the validation links, the rest the test.
    With ``pool_ratio``, the ``pool_ratio * L`` links after the validation links
    are in none of the three: hidden links that only an active-learning oracle can
    reveal (the seeds stay those of ``pool_ratio = 0``).

    Shapes:
        links: ``(2, L)`` -> three ``(2, *)`` tensors
    """
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"seed ratio must be in (0, 1), got {ratio}")
    if valid_ratio < 0.0 or pool_ratio < 0.0 or ratio + valid_ratio + pool_ratio >= 1:
        raise ValueError(
            "valid_ratio and pool_ratio must be >= 0 and leave test links, got "
            f"{valid_ratio} and {pool_ratio}"
        )
    num_links = links.size(1)
    generator = torch.Generator().manual_seed(seed)
    perm = torch.randperm(num_links, generator=generator).to(links.device)
    num_train = int(round(ratio * num_links, 6))
    num_valid = int(round(valid_ratio * num_links, 6))
    # The pool ends where seeds of ratio + valid_ratio + pool_ratio would end, so
    # that e.g. 5 % seeds + a 15 % pool test on the links 20 % seeds test on.
    held = int(round((ratio + valid_ratio + pool_ratio) * num_links, 6))
    test_start = (
        max(held, num_train + num_valid) if pool_ratio else num_train + num_valid
    )
    shuffled = links[:, perm]
    return (
        shuffled[:, :num_train],
        shuffled[:, num_train : num_train + num_valid],
        shuffled[:, test_start:],
    )
