"""How far a sampled training step's gradient is from the whole graph's.

At a trained run's checkpoint (a run folder of ``almea-pyg train`` or
``benchmarks/accuracy.py``), for each fan-out, with and without whole-graph
forward values (``--full-forward``), it draws ``--draws`` sampled neighbourhoods
of one batch of seed links and compares each step's gradient with the whole-graph
step's, per parameter group (the model's top-level modules, an embedding table
on its own):

- ``cosine`` and ``norm_ratio``: one draw against the whole graph (mean over
  draws);
- ``cosine_of_mean`` and ``norm_ratio_of_mean``: the draws' mean gradient against
  it. Noise averages away over draws, bias does not: a mean that stays off
  cosine 1 as draws grow is a biased gradient;
- for an embedding table, ``row_cosine_median`` and ``rows_below_0.9``: per row
  with a whole-graph gradient, one draw's cosine (median, and the share of rows
  below 0.9). Adam steps every coordinate by its own scale, so a row's
  direction counts whatever its norm, and the table's cosine, weighted by the
  rows' norms, hides the small rows.

It also reports the sampled subgraph's share of the graph's nodes and edges. The
model runs in eval mode (no dropout, no latent noise), so the neighbourhood is all
that differs between the steps; the batch is the run's first ``batch_size`` seed
links, in the checkpoint's order. What it answers: which parameters a fan-out
trains differently from the whole graph, before paying for a training run.

    python benchmarks/sampled_gradients.py \\
        --run runs/accuracy/FB15K_DB15K-r0.2-almea-e500-s0 \\
        --fanouts 25x10 25xall --draws 4 --out benchmarks/results/sampled_gradients.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from almea_pyg.cli import fanout
from almea_pyg.io import atomic_write_text
from almea_pyg.pipeline.experiment import build_model, restore_run
from almea_pyg.train import Trainer


def parameter_groups(model: nn.Module) -> dict[str, str]:
    """Each parameter's group: the module path of an embedding table, else the
    model's top-level module holding it."""
    tables = {
        f"{path}.{name}": path
        for path, module in model.named_modules()
        if isinstance(module, nn.Embedding)
        for name, _ in module.named_parameters(recurse=False)
    }
    return {
        name: tables.get(name, name.split(".")[0])
        for name, _ in model.named_parameters()
    }


def step_gradients(trainer: Trainer, batch: Tensor) -> dict[str, Tensor]:
    """One step's gradient on ``batch`` ``(2, B)``, flattened per group (float64)."""
    trainer._backward(batch, 0)
    groups = parameter_groups(trainer.model)
    flat: dict[str, list[Tensor]] = {}
    for name, param in trainer.model.named_parameters():
        if param.grad is not None:
            flat.setdefault(groups[name], []).append(param.grad.double().flatten())
    return {group: torch.cat(parts) for group, parts in flat.items()}


def agreement(grad: Tensor, reference: Tensor) -> tuple[float, float]:
    """Cosine and norm ratio of ``grad`` against ``reference``."""
    cosine = torch.cosine_similarity(grad, reference, dim=0, eps=1e-300)
    return float(cosine), float(grad.norm() / reference.norm())


def row_agreement(grad: Tensor, reference: Tensor, width: int) -> tuple[float, float]:
    """Per row of an embedding table (rows of ``width``) with a nonzero reference
    gradient: the median cosine, and the share of rows below 0.9. Adam scales
    every coordinate on its own, so a row's direction matters whatever its norm;
    the group's cosine weighs rows by their norm and hides the small ones."""
    grad, reference = grad.view(-1, width), reference.view(-1, width)
    live = reference.norm(dim=1) > 0
    cosine = torch.cosine_similarity(grad[live], reference[live], dim=1, eps=1e-300)
    return float(cosine.median()), float((cosine < 0.9).double().mean())


def compare(
    draws: Sequence[dict[str, Tensor]],
    reference: dict[str, Tensor],
    row_widths: dict[str, int] | None = None,
) -> dict[str, dict[str, float]]:
    """Per group: single draws' mean cosine and norm ratio, and the draws' mean
    gradient's (a group without gradient in a draw counts as zero there); for the
    embedding tables in ``row_widths``, also :func:`row_agreement` (mean over
    draws). Groups whose reference gradient is zero are left out."""
    row_widths = row_widths or {}
    out = {}
    for group, ref in reference.items():
        if not bool(ref.any()):
            continue
        grads = [draw.get(group, torch.zeros_like(ref)) for draw in draws]
        single = [agreement(grad, ref) for grad in grads]
        cosine, ratio = agreement(torch.stack(grads).mean(0), ref)
        out[group] = {
            "cosine": statistics.fmean(c for c, _ in single),
            "norm_ratio": statistics.fmean(r for _, r in single),
            "cosine_of_mean": cosine,
            "norm_ratio_of_mean": ratio,
        }
        if group in row_widths:
            rows = [row_agreement(grad, ref, row_widths[group]) for grad in grads]
            out[group]["row_cosine_median"] = statistics.fmean(m for m, _ in rows)
            out[group]["rows_below_0.9"] = statistics.fmean(b for _, b in rows)
    return out


def parse_fanouts(text: str) -> list[int]:
    """``"25x10"`` -> ``[25, 10]``; ``all`` (or ``-1``) takes every neighbour."""
    return [fanout("-1" if part == "all" else part) for part in text.split("x")]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="run folder")
    parser.add_argument(
        "--fanouts",
        type=parse_fanouts,
        nargs="+",
        required=True,
        help="fan-outs per hop, e.g. 25x10 25xall (all: every neighbour)",
    )
    parser.add_argument("--draws", type=int, default=4, help="samples per setting")
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=("plain", "full-forward"),
        default=["plain", "full-forward"],
        help="sampled forward values (plain) or the whole graph's",
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="JSON results")
    args = parser.parse_args(argv)
    if args.draws < 1:
        parser.error("--draws must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    config, pair, state = restore_run(args.run)

    def trainer(fanouts: list[int] | None = None, full_forward: bool = False):
        out = Trainer(
            build_model(config, pair),
            pair,
            batch_size=config.batch_size,
            progress=False,
            fanouts=fanouts,
            full_forward=full_forward,
        )
        out.load_state_dict(state)
        out.model.eval()
        return out

    whole = trainer()
    batch = whole.train_links[:, : config.batch_size]
    reference = step_gradients(whole, batch)
    widths = {
        path: module.embedding_dim
        for path, module in whole.model.named_modules()
        if isinstance(module, nn.Embedding)
    }
    num_edges = whole.inputs.edge_index.size(1)
    rows = []
    for fanouts in args.fanouts:
        for mode in args.modes:
            sampled = trainer(fanouts, mode == "full-forward")
            inputs = sampled.inputs
            sub = sampled.sample(batch, torch.Generator().manual_seed(config.seed))
            start = time.perf_counter()
            draws = [step_gradients(sampled, batch) for _ in range(args.draws)]
            rows.append(
                {
                    "fanouts": fanouts,
                    "full_forward": mode == "full-forward",
                    "subgraph": {
                        "nodes_share": sub.node_index.numel() / inputs.num_entities,
                        "edges_share": sub.edge_index.size(1) / num_edges,
                    },
                    "seconds_per_draw": (time.perf_counter() - start) / args.draws,
                    "groups": compare(draws, reference, widths),
                }
            )
    result = {
        "protocol": {
            "run": str(args.run),
            "dataset": config.dataset,
            "seed_ratio": config.seed_ratio,
            "seed": config.seed,
            "epoch": whole.epoch,
            "batch_links": batch.size(1),
            "draws": args.draws,
            "model_mode": "eval (no dropout, no latent noise)",
            "threads": torch.get_num_threads(),
        },
        "whole_graph_norms": {
            g: float(v.norm()) for g, v in reference.items() if bool(v.any())
        },
        "rows": rows,
    }
    print(markdown(result))
    if args.out is not None:
        atomic_write_text(json.dumps(result, indent=2), args.out)
    return result


def markdown(result: dict[str, Any]) -> str:
    """The rows as a table: per group, one draw's cosine (the mean's); for an
    embedding table also the share of its rows below 0.9."""
    groups = list(result["whole_graph_norms"])
    lines = [
        "| fan-outs | forward values | nodes / edges | " + " | ".join(groups) + " |",
        "|---|---|---|" + "---|" * len(groups),
    ]
    for row in result["rows"]:
        cells = [
            "x".join("all" if k < 0 else str(k) for k in row["fanouts"]),
            "whole graph" if row["full_forward"] else "sampled",
            "{nodes_share:.0%} / {edges_share:.0%}".format(**row["subgraph"]),
        ]
        cells += [cell_text(row["groups"][g]) for g in groups]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cell_text(stats: dict[str, float]) -> str:
    text = "{cosine:.3f} ({cosine_of_mean:.3f})".format(**stats)
    if "rows_below_0.9" in stats:
        text += ", rows < 0.9: {:.0%}".format(stats["rows_below_0.9"])
    return text


if __name__ == "__main__":
    main()
