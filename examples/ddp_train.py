"""Data-parallel ALMEA training over processes, launched with torchrun.

    torchrun --standalone --nproc-per-node 2 examples/ddp_train.py --entities 20000

Each process trains on its share of every batch of seed links (gloo on the CPU,
nccl with one GPU per process); the result equals one process with the same
global --batch-size (see almea_pyg.train.distributed). Run with plain python, it
trains in one process with the ordinary Trainer: the reference. Rank 0 writes
log.csv and checkpoint.pt into --output and prints the seconds per epoch.
"""

import argparse
import os
import statistics

import torch
import torch.distributed as dist

from almea_pyg.data.synthetic import make_synthetic_pair
from almea_pyg.models import ALMEA
from almea_pyg.pipeline.experiment import load_pair
from almea_pyg.train import Trainer
from almea_pyg.train.distributed import DistributedTrainer, init_distributed

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("--dataset", default="synthetic", help="synthetic or a benchmark")
parser.add_argument("--data-dir", help="where the benchmark's files are")
parser.add_argument("--entities", type=int, default=2000, help="synthetic size")
parser.add_argument("--seed-ratio", type=float, default=0.2)
parser.add_argument("--dim", type=int, default=300)
parser.add_argument("--batch-size", type=int, default=3500, help="global batch")
parser.add_argument("--latent-chunk-size", type=int, default=512)
parser.add_argument(
    "--fanouts",
    type=int,
    nargs="+",
    metavar="K",
    help="mini-batch training: K sampled neighbours per GAT layer (default: all)",
)
parser.add_argument(
    "--sparse",
    action="store_true",
    help="the entity table's gradient as sparse rows (summed dense over processes)",
)
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--backend", choices=["gloo", "nccl"], help="default: by device")
parser.add_argument("--output", help="folder for log.csv and checkpoint.pt")
args = parser.parse_args()

distributed = "WORLD_SIZE" in os.environ
device = init_distributed(args.backend) if distributed else torch.device("cpu")
if args.dataset == "synthetic":
    pair = make_synthetic_pair(num_entities=args.entities, seed=args.seed)
else:
    pair = load_pair(args.dataset, data_dir=args.data_dir)
pair = pair.split(args.seed_ratio, seed=args.seed).to(device)

torch.manual_seed(args.seed)
model = ALMEA.from_pair(
    pair, dim=args.dim, latent_chunk_size=args.latent_chunk_size, sparse=args.sparse
).to(device)
trainer = (DistributedTrainer if distributed else Trainer)(
    model,
    pair,
    lr=args.lr,
    batch_size=args.batch_size,
    seed=args.seed,
    output_dir=args.output,
    progress=False,
    fanouts=args.fanouts,
)
trainer.fit(args.epochs)
if args.output is not None:
    trainer.save_checkpoint()

rank = dist.get_rank() if distributed else 0
if rank == 0:
    seconds = [row["seconds"] for row in trainer.history]
    processes = dist.get_world_size() if distributed else 1
    print(
        f"{processes} process(es), {pair.train_links.size(1)} seed links, batch "
        f"{args.batch_size}: {statistics.median(seconds):.3f} s/epoch (median of "
        f"{len(seconds)}), final loss {trainer.history[-1]['loss']:.6f}"
    )
if distributed:
    dist.destroy_process_group()
