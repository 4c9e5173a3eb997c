"""Align your own two KGs: TSV triples, attributes and a feature matrix per side.

This writes a small pair of KGs in the generic TSV layout into a temporary
directory (stand-ins for your files), reads it back, builds the relation and
attribute modalities, trains ALMEA and prints ranked candidates by original id.

    python examples/own_kgs.py [--epochs 50]
    python examples/own_kgs.py --write runs/my_kgs   # only write the files

Layout of one KG directory (see almea_pyg.data.readers.tsv)::

    triples.tsv              head<TAB>relation<TAB>tail
    attributes.tsv           entity<TAB>attribute<TAB>value   (optional)
    features/img.pt          {"ids": [...], "x": Tensor}       (optional, any name)

and a links file with source_id<TAB>target_id per line. The command line reads
such a directory directly: ``almea-pyg train --data runs/my_kgs``.
"""

import argparse
import sys
import tempfile

import torch

from almea_pyg.data import BuildModalityFeatures, read_tsv_pair, write_synthetic_tsv
from almea_pyg.metrics import alignment_candidates
from almea_pyg.models import ALMEA
from almea_pyg.train import Trainer

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--epochs", type=int, default=50)
parser.add_argument("--write", metavar="DIR", help="write the sample files and stop")
args = parser.parse_args()

if args.write:
    print(f"sample KG pair in the TSV layout: {write_synthetic_tsv(args.write)}")
    sys.exit(0)

with tempfile.TemporaryDirectory() as tmp:
    root = write_synthetic_tsv(tmp)
    pair = read_tsv_pair(
        root / "source", root / "target", root / "links.tsv", name="mine"
    )

pair = BuildModalityFeatures(top_k=1000)(pair).split(0.3, seed=0)
print(pair)

torch.manual_seed(0)
model = ALMEA.from_pair(pair)
trainer = Trainer(model, pair, lr=1e-3)
trainer.fit(args.epochs)
print({k: round(v, 2) for k, v in trainer.evaluate().items()})

best = alignment_candidates(
    *model.embed(pair),
    k=2,
    sources=pair.test_links[0, :3],
    source_ids=pair.source["entity"].ids,
    target_ids=pair.target["entity"].ids,
)
for source, targets in zip(best.source_ids, best.target_ids):
    print(source, "->", targets)
