"""Align your own two KGs: TSV triples, attributes and a feature matrix per side.

This writes a small pair of KGs in the generic TSV layout into a temporary
directory (stand-ins for your files), reads it back, builds the relation and
attribute modalities, trains ALMEA and prints ranked candidates by original id.

    python examples/own_kgs.py [--epochs 50]

Layout of one KG directory (see almea_pyg.data.readers.tsv)::

    triples.tsv              head<TAB>relation<TAB>tail
    attributes.tsv           entity<TAB>attribute<TAB>value   (optional)
    features/img.pt          {"ids": [...], "x": Tensor}       (optional, any name)

and a links file with source_id<TAB>target_id per line.
"""

import argparse
import tempfile
from pathlib import Path

import torch

from almea_pyg.data import BuildModalityFeatures, make_synthetic_pair, read_tsv_pair
from almea_pyg.models import ALMEA
from almea_pyg.train import Trainer


def write_tsv_pair(root: Path) -> None:
    """Write a synthetic pair as files, the way a user's own KGs would look."""
    pair = make_synthetic_pair(num_entities=800, seed=1)
    known = []
    for side, kg in (("source", pair.source), ("target", pair.target)):
        ids = kg["entity"].ids
        folder = root / side
        (folder / "features").mkdir(parents=True)
        edges = kg["entity", "relation", "entity"]
        names = edges.relation_names
        rows = zip(edges.edge_index.t().tolist(), edges.edge_type.tolist())
        (folder / "triples.tsv").write_text(
            "".join(f"{ids[h]}\t{names[r]}\t{ids[t]}\n" for (h, t), r in rows)
        )
        attr = kg["entity", "has_attribute", "attribute"]
        attr_names = kg["attribute"].names
        facts = zip(attr.edge_index.t().tolist(), attr.value.tolist())
        (folder / "attributes.tsv").write_text(
            "".join(f"{ids[e]}\t{attr_names[a]}\t{v}\n" for (e, a), v in facts)
        )
        has_img = kg["entity"].x_img_mask
        img = {"ids": [ids[i] for i in has_img.nonzero().flatten().tolist()]}
        img["x"] = kg["entity"].x_img[has_img]
        torch.save(img, folder / "features" / "img.pt")
        # A file-based KG only knows entities that occur in its triples or facts.
        present = torch.zeros(len(ids), dtype=torch.bool)
        present[edges.edge_index.flatten()] = True
        present[attr.edge_index[0]] = True
        known.append(present)
    src_ids, tgt_ids = pair.source["entity"].ids, pair.target["entity"].ids
    links = pair.links[:, known[0][pair.links[0]] & known[1][pair.links[1]]]
    (root / "links.tsv").write_text(
        "".join(f"{src_ids[s]}\t{tgt_ids[t]}\n" for s, t in links.t().tolist())
    )


parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--epochs", type=int, default=50)
args = parser.parse_args()

with tempfile.TemporaryDirectory() as tmp:
    root = Path(tmp)
    write_tsv_pair(root)
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

best = model.candidates(pair, k=2, sources=pair.test_links[0, :3])
for source, targets in zip(best.source_ids, best.target_ids):
    print(source, "->", targets)
