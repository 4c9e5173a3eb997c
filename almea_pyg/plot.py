"""Plots of a run, saved as PNG: training curves, rounds, and the selection map.

Needs matplotlib (``pip install almea-pyg[plot]``); without it, :func:`save_run_plots`
logs that it skipped the plots and returns nothing. The plots are drawn on figures of
their own, not through pyplot, so the caller's matplotlib backend is left as it is.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

log = logging.getLogger(__name__)


def _figure(width: float, height: float) -> tuple[Any, Any]:
    """A figure and its axes, outside pyplot: no backend is chosen or changed."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.subplots()


def project_2d(x: Tensor) -> Tensor:
    """Rows of ``x`` on their first two principal components, ``(N, 2)``."""
    x = x.float() - x.float().mean(dim=0, keepdim=True)
    _, _, v = torch.pca_lowrank(x, q=2, center=False)
    return x @ v[:, :2]


def plot_training(history: Sequence[dict[str, Any]], path: str | os.PathLike) -> None:
    """Loss and (where evaluated) Hits@1 per epoch."""
    fig, ax = _figure(6, 3.5)
    ax.plot([r["epoch"] for r in history], [r["loss"] for r in history], label="loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    evaluated = [r for r in history if "hits@1" in r]
    if evaluated:
        twin = ax.twinx()
        twin.plot(
            [r["epoch"] for r in evaluated],
            [r["hits@1"] for r in evaluated],
            "o-",
            color="tab:orange",
            label="Hits@1",
        )
        twin.set_ylabel("Hits@1 (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot_modality_weights(
    history: Sequence[dict[str, Any]], path: str | os.PathLike
) -> None:
    """The fusion weight of each modality per epoch (the ``weight_<m>`` entries)."""
    fig, ax = _figure(6, 3.5)
    names = sorted({k for r in history for k in r if k.startswith("weight_")})
    for name in names:
        rows = [r for r in history if name in r]
        ax.plot([r["epoch"] for r in rows], [r[name] for r in rows], label=name[7:])
    ax.set_xlabel("epoch")
    ax.set_ylabel("modality weight")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot_rounds(rounds: Sequence[dict[str, Any]], path: str | os.PathLike) -> None:
    """Hits@1, Hits@10 and MRR after each active-learning round."""
    fig, ax = _figure(6, 3.5)
    for key in ("hits@1", "hits@10", "mrr"):
        ax.plot([r["round"] for r in rounds], [r[key] for r in rounds], "o-", label=key)
    ax.set_xlabel("round")
    ax.set_ylabel("%")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot_selection_map(
    source_emb: Tensor,
    target_emb: Tensor,
    labelled: Tensor,
    selected: Tensor,
    path: str | os.PathLike,
    *,
    max_points: int = 5000,
) -> None:
    """The pairs of a round on a 2-D map of the pair embeddings (cf. Figure 3).

    Each pair is the mean of its two normalised entity embeddings; grey dots are
    a sample of all source entities, blue the labelled pairs, red the selected.
    Tensors on any device are drawn from a CPU copy (matplotlib reads numpy).
    """
    src = torch.nn.functional.normalize(source_emb.detach().cpu().float(), dim=-1)
    tgt = torch.nn.functional.normalize(target_emb.detach().cpu().float(), dim=-1)
    labelled, selected = labelled.cpu(), selected.cpu()
    generator = torch.Generator().manual_seed(0)
    sample = torch.randperm(src.size(0), generator=generator)[:max_points]
    labelled = labelled[:, :max_points]
    points = torch.cat(
        [
            src[sample],
            (src[labelled[0]] + tgt[labelled[1]]) / 2,
            (src[selected[0]] + tgt[selected[1]]) / 2,
        ]
    )
    xy = project_2d(points)
    a, b = sample.numel(), sample.numel() + labelled.size(1)
    fig, ax = _figure(5, 5)
    ax.scatter(*xy[:a].t(), s=2, c="lightgrey", label="entities")
    ax.scatter(*xy[a:b].t(), s=4, c="tab:blue", label="labelled")
    ax.scatter(*xy[b:].t(), s=14, c="tab:red", label="selected")
    ax.legend(loc="best")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def save_run_plots(
    out: str | os.PathLike,
    history: Sequence[dict[str, Any]],
    rounds: Sequence[dict[str, Any]] = (),
    selection: tuple[Tensor, Tensor, Tensor, Tensor] | None = None,
) -> list[Path]:
    """Save the plots a run has data for into ``out``; returns their paths."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        log.warning(
            "matplotlib is not installed: no plots (pip install almea-pyg[plot])"
        )
        return []
    out = Path(out)
    paths = []
    if history:
        plot_training(history, out / "training.png")
        paths.append(out / "training.png")
    if any(k.startswith("weight_") for r in history for k in r):
        plot_modality_weights(history, out / "modality_weights.png")
        paths.append(out / "modality_weights.png")
    if rounds:
        plot_rounds(rounds, out / "rounds.png")
        paths.append(out / "rounds.png")
    if selection is not None:
        plot_selection_map(*selection, out / "selection_map.png")
        paths.append(out / "selection_map.png")
    return paths
