"""A seeded generator of synthetic multimodal KG pairs (the embedded default data).

Both KGs are noisy views of one latent KG:

* **latent KG** — ``num_entities`` entities, each with a type (``num_types``) and a
  latent vector (its type centre plus Gaussian noise). Relation edges follow a Chung-Lu
  model with power-law expected degrees (exponent ``power_law_exponent``), plus one edge
  from each entity so that almost none is isolated; the relation of an edge is drawn
  from a Zipf-like distribution that depends on the types of its two ends. Attributes
  are drawn the same way from the entity's type, with numeric values read off the latent
  vector (some attributes are non-numeric: value NaN). Image-like vectors are the latent
  vectors through one random projection.
* **each side** keeps every entity with probability ``1 - entity_dropout``
  (independently per side, so some entities have no counterpart) and every edge
  between kept entities with probability ``1 - edge_dropout``; drops attribute
  edges (``attr_dropout``) and all attributes of a ``missing_attr`` fraction of
  its entities; adds its own noise (``img_noise``) to the image vectors and drops
  them for a ``missing_img`` fraction of its entities; shuffles its entities.
* **the target side** also renames relations (a permutation, ``merged_relations``
  of them merged into others) and attributes (a permutation) and perturbs the
  attribute values (relative noise ``value_noise``).

Features are then built per side: ``x_rel`` and ``x_attr`` with
:func:`~almea_pyg.data.features.build_features` (top-k per KG) and ``x_img`` with
:func:`~almea_pyg.data.features.feature_matrix`. With the defaults no single
modality aligns the pair: cosine nearest-neighbour matching on ``x_img`` alone
reaches a Hits@1 of about 0.4 (links whose two ends have images), on ``x_rel`` or
``x_attr`` alone below 0.1, while all of them together do markedly better.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from almea_pyg.data.features import (
    DEFAULT_TOP_K,
    build_features,
    feature_matrix,
    match_feature_widths,
)
from almea_pyg.data.pair import MMKGPair
from almea_pyg.typing import ATTRIBUTE, ATTRIBUTE_EDGE, ENTITY, RELATION_EDGE

#: The quickstart's configuration: the keyword defaults of
#: :func:`make_synthetic_pair`.
SYNTHETIC_DEFAULTS: MappingProxyType[str, Any] = MappingProxyType(
    {
        "num_entities": 2000,
        "num_relations": 40,
        "num_attributes": 60,
        "num_types": 12,
        "avg_degree": 8.0,
        "power_law_exponent": 2.5,
        "attrs_per_entity": 4.0,
        "non_numeric_attrs": 0.1,
        "latent_dim": 32,
        "img_dim": 64,
        "img_noise": 1.0,
        "missing_img": (0.05, 0.19),
        "missing_attr": (0.1, 0.1),
        "entity_dropout": 0.1,
        "edge_dropout": 0.2,
        "attr_dropout": 0.2,
        "value_noise": 0.05,
        "merged_relations": 2,
        "top_k": DEFAULT_TOP_K,
        "seed": 0,
    }
)


def _sample_rows(probs: Tensor, rows: Tensor, generator: torch.Generator) -> Tensor:
    """Draw one class per element from the distribution ``probs[rows[i]]``.

    Inverse-CDF sampling over all rows at once: row ``k``'s CDF is shifted to
    ``(k, k + 1]`` so that a single sorted sequence serves every row.

    Shapes:
        probs: ``(K, C)``, rows: ``(M,)`` -> ``(M,)``
    """
    num_rows, num_classes = probs.shape
    cdf = probs.double().cumsum(dim=1)
    cdf = cdf / cdf[:, -1:]
    shifted = (cdf + torch.arange(num_rows, dtype=torch.double).unsqueeze(1)).view(-1)
    u = torch.rand(rows.numel(), generator=generator, dtype=torch.double)
    flat = torch.searchsorted(shifted, rows.double() + u)
    return (flat - rows * num_classes).clamp_(0, num_classes - 1)


def _zipf_by_group(
    num_groups: int, num_classes: int, generator: torch.Generator
) -> Tensor:
    """Per-group class distributions: a shared Zipf law times group log-normal noise.

    The global frequency ranking stays Zipf-like (so ranks are stable between two
    samples) while each group has its own profile.
    """
    zipf = 1.0 / torch.arange(1, num_classes + 1, dtype=torch.float)
    spread = torch.randn(num_groups, num_classes, generator=generator)
    return zipf * spread.exp()


def _exact_subset(num: int, rate: float, generator: torch.Generator) -> Tensor:
    """Bool mask with exactly ``round(rate * num)`` random ``True`` entries."""
    mask = torch.zeros(num, dtype=torch.bool)
    mask[torch.randperm(num, generator=generator)[: round(rate * num)]] = True
    return mask


def _latent_edges(
    num_entities: int, avg_degree: float, exponent: float, generator: torch.Generator
) -> Tensor:
    """Directed Chung-Lu edges with power-law weights, no self-loops or duplicates."""
    weight = torch.arange(1, num_entities + 1, dtype=torch.float).pow(
        -1.0 / (exponent - 1.0)
    )
    num_random = max(int(num_entities * avg_degree / 2) - num_entities, 0)
    heads = torch.cat(
        [
            torch.arange(num_entities),
            torch.multinomial(
                weight, num_random, replacement=True, generator=generator
            ),
        ]
    )
    tails = torch.multinomial(
        weight, heads.numel(), replacement=True, generator=generator
    )
    keep = heads != tails
    key = torch.unique(heads[keep] * num_entities + tails[keep])
    return torch.stack([key // num_entities, key % num_entities])


def _rename(num: int, merged: int, generator: torch.Generator) -> tuple[Tensor, int]:
    """A random renaming of ``num`` ids onto ``num - merged`` new ids (onto)."""
    new_id = torch.randperm(num, generator=generator)
    merged = min(merged, num // 2)
    if merged > 0:
        chosen = torch.randperm(num, generator=generator)
        new_id[chosen[:merged]] = new_id[chosen[merged : 2 * merged]]
    unique, compact = torch.unique(new_id, return_inverse=True)
    return compact, unique.numel()


def _side(
    prefix: str,
    *,
    present: Tensor,
    edge_index: Tensor,
    edge_type: Tensor,
    relation_map: Tensor,
    num_relations: int,
    attr_index: Tensor,
    attr_value: Tensor,
    attribute_map: Tensor,
    num_attributes: int,
    image: Tensor,
    img_noise: float,
    missing_img: float,
    missing_attr: float,
    edge_dropout: float,
    attr_dropout: float,
    top_k: int,
    generator: torch.Generator,
) -> tuple[HeteroData, Tensor]:
    """One noisy, shuffled view of the latent KG; returns it and latent -> local."""
    latent_ids = present.nonzero().view(-1)
    num = latent_ids.numel()
    latent_ids = latent_ids[torch.randperm(num, generator=generator)]
    local = torch.full((present.numel(),), -1, dtype=torch.long)
    local[latent_ids] = torch.arange(num)

    kept = present[edge_index].all(dim=0)
    kept &= torch.rand(kept.numel(), generator=generator) >= edge_dropout

    no_attr = _exact_subset(num, missing_attr, generator)
    attr_entity = local[attr_index[0]]
    attr_kept = (attr_entity >= 0) & ~no_attr[attr_entity.clamp(min=0)]
    attr_kept &= torch.rand(attr_entity.numel(), generator=generator) >= attr_dropout

    kg = HeteroData()
    kg[ENTITY].num_nodes = num
    kg[ENTITY].ids = [f"{prefix}:e{i}" for i in range(num)]
    kg[RELATION_EDGE].edge_index = local[edge_index[:, kept]]
    kg[RELATION_EDGE].edge_type = relation_map[edge_type[kept]]
    kg[RELATION_EDGE].relation_names = [f"{prefix}:r{i}" for i in range(num_relations)]
    kg[ATTRIBUTE].num_nodes = num_attributes
    kg[ATTRIBUTE].names = [f"{prefix}:a{i}" for i in range(num_attributes)]
    kg[ATTRIBUTE_EDGE].edge_index = torch.stack(
        [attr_entity[attr_kept], attribute_map[attr_index[1, attr_kept]]]
    )
    kg[ATTRIBUTE_EDGE].value = attr_value[attr_kept]
    build_features(kg, top_k=top_k)

    has_img = ~_exact_subset(num, missing_img, generator)
    img = image[latent_ids[has_img]]
    noise = torch.randn(img.shape, generator=generator) / math.sqrt(img.size(1))
    img = img + img_noise * noise
    kg[ENTITY].x_img, kg[ENTITY].x_img_mask = feature_matrix(
        has_img.nonzero().view(-1), img, num
    )
    return kg, local


def make_synthetic_pair(
    *,
    num_entities: int = 2000,
    num_relations: int = 40,
    num_attributes: int = 60,
    num_types: int = 12,
    avg_degree: float = 8.0,
    power_law_exponent: float = 2.5,
    attrs_per_entity: float = 4.0,
    non_numeric_attrs: float = 0.1,
    latent_dim: int = 32,
    img_dim: int = 64,
    img_noise: float = 1.0,
    missing_img: tuple[float, float] = (0.05, 0.19),
    missing_attr: tuple[float, float] = (0.1, 0.1),
    entity_dropout: float = 0.1,
    edge_dropout: float = 0.2,
    attr_dropout: float = 0.2,
    value_noise: float = 0.05,
    merged_relations: int = 2,
    top_k: int = DEFAULT_TOP_K,
    seed: int = 0,
) -> MMKGPair:
    """Generate a synthetic multimodal KG pair (see the module docstring).

    Deterministic under ``seed`` (a private :class:`torch.Generator`; the global
    RNG is untouched). Entities are shuffled on each side, with identifiers
    ``"s:e<i>"`` / ``"t:e<i>"``; relations ``"s:r<i>"`` / ``"t:r<i>"``; attributes
    ``"s:a<i>"`` / ``"t:a<i>"``.

    Args:
        num_entities (int): Entities of the latent KG. (default: :obj:`2000`)
        num_relations (int): Relation types of the latent KG. (default: :obj:`40`)
        num_attributes (int): Attribute types of the latent KG. (default: :obj:`60`)
        num_types (int): Entity types; relations, attributes and latent vectors
            depend on them. (default: :obj:`12`)
        avg_degree (float): Approximate mean degree of the latent KG (before
            dropout). (default: :obj:`8.0`)
        power_law_exponent (float): Exponent of the degree distribution (> 2).
            (default: :obj:`2.5`)
        attrs_per_entity (float): Mean attributes per latent entity.
            (default: :obj:`4.0`)
        non_numeric_attrs (float): Fraction of attribute types whose value is NaN.
            (default: :obj:`0.1`)
        latent_dim (int): Dimension of the latent entity vectors. (default: :obj:`32`)
        img_dim (int): Dimension of the image-like vectors. (default: :obj:`64`)
        img_noise (float): Per-side Gaussian noise on the image vectors (before
            L2 normalisation). (default: :obj:`1.0`)
        missing_img (tuple): Fraction of entities without image, (source, target).
            (default: :obj:`(0.05, 0.19)`)
        missing_attr (tuple): Fraction of entities without any attribute,
            (source, target). (default: :obj:`(0.1, 0.1)`)
        entity_dropout (float): Probability that a latent entity is absent from a
            side, per side. (default: :obj:`0.1`)
        edge_dropout (float): Probability that a latent edge is absent from a
            side, per side. (default: :obj:`0.2`)
        attr_dropout (float): Same for attribute edges. (default: :obj:`0.2`)
        value_noise (float): Relative Gaussian noise on the target's attribute
            values. (default: :obj:`0.05`)
        merged_relations (int): Relations merged into others on the target side.
            (default: :obj:`2`)
        top_k (int): Columns of ``x_rel`` and ``x_attr`` (per KG).
            (default: :obj:`1000`)
        seed (int): Random seed. (default: :obj:`0`)

    Returns:
        MMKGPair: named ``"synthetic"``, with ``links`` (sorted by source index)
        between the entities present on both sides and no split (call
        :meth:`~almea_pyg.data.MMKGPair.split`).
    """
    if power_law_exponent <= 2.0:
        raise ValueError(f"power_law_exponent must be > 2, got {power_law_exponent}")
    if num_entities < 2 or num_relations < 1 or num_attributes < 1:
        raise ValueError("need at least 2 entities, 1 relation and 1 attribute")
    rates = (*missing_img, *missing_attr, entity_dropout, edge_dropout, attr_dropout)
    if not all(0.0 <= rate < 1.0 for rate in rates):
        raise ValueError("missing rates and dropout probabilities must be in [0, 1)")
    generator = torch.Generator().manual_seed(seed)

    types = torch.randint(num_types, (num_entities,), generator=generator)
    centers = torch.randn(num_types, latent_dim, generator=generator)
    latent = centers[types] + torch.randn(num_entities, latent_dim, generator=generator)

    edge_index = _latent_edges(num_entities, avg_degree, power_law_exponent, generator)
    pair_type = types[edge_index[0]] * num_types + types[edge_index[1]]
    relation_probs = _zipf_by_group(num_types**2, num_relations, generator)
    edge_type = _sample_rows(relation_probs, pair_type, generator)

    num_slots = torch.poisson(
        torch.full((num_entities,), attrs_per_entity), generator=generator
    ).long()
    slot_entity = torch.repeat_interleave(torch.arange(num_entities), num_slots + 1)
    attribute_probs = _zipf_by_group(num_types, num_attributes, generator)
    slot_attr = _sample_rows(attribute_probs, types[slot_entity], generator)
    key = torch.unique(slot_entity * num_attributes + slot_attr)
    attr_index = torch.stack([key // num_attributes, key % num_attributes])
    direction = torch.randn(num_attributes, latent_dim, generator=generator)
    offset = 10.0 * torch.randn(num_attributes, generator=generator)
    value = offset[attr_index[1]] + (
        latent[attr_index[0]] * direction[attr_index[1]]
    ).sum(dim=1) / math.sqrt(latent_dim)
    non_numeric = _exact_subset(num_attributes, non_numeric_attrs, generator)
    value[non_numeric[attr_index[1]]] = float("nan")
    target_value = value * (
        1.0 + value_noise * torch.randn(value.shape, generator=generator)
    )

    projection = torch.randn(latent_dim, img_dim, generator=generator)
    image = torch.nn.functional.normalize(latent @ projection, dim=-1)

    present = torch.rand(2, num_entities, generator=generator) >= entity_dropout
    relation_map, num_target_relations = _rename(
        num_relations, merged_relations, generator
    )
    attribute_map = torch.randperm(num_attributes, generator=generator)
    common = dict(
        edge_index=edge_index,
        edge_type=edge_type,
        attr_index=attr_index,
        image=image,
        img_noise=img_noise,
        edge_dropout=edge_dropout,
        attr_dropout=attr_dropout,
        top_k=top_k,
        generator=generator,
    )
    source, source_local = _side(
        "s",
        present=present[0],
        relation_map=torch.arange(num_relations),
        num_relations=num_relations,
        attr_value=value,
        attribute_map=torch.arange(num_attributes),
        num_attributes=num_attributes,
        missing_img=missing_img[0],
        missing_attr=missing_attr[0],
        **common,
    )
    target, target_local = _side(
        "t",
        present=present[1],
        relation_map=relation_map,
        num_relations=num_target_relations,
        attr_value=target_value,
        attribute_map=attribute_map,
        num_attributes=num_attributes,
        missing_img=missing_img[1],
        missing_attr=missing_attr[1],
        **common,
    )
    match_feature_widths(source, target)
    both = present.all(dim=0)
    links = torch.stack([source_local[both], target_local[both]])
    links = links[:, links[0].argsort()]
    return MMKGPair(source, target, links, name="synthetic")


def write_synthetic_tsv(
    root: str | os.PathLike, *, num_entities: int = 800, seed: int = 1
) -> Path:
    """Write a synthetic pair as files in the TSV layout, as a user's own KGs
    would look (``source/``, ``target/``: ``triples.tsv``, ``attributes.tsv``,
    ``features/img.pt``; ``links.tsv``), for trying the file-based path.

    Only entities that occur in a triple or attribute fact exist in files, so
    links to other entities are left out. Returns ``root``.
    """
    root = Path(root)
    pair = make_synthetic_pair(num_entities=num_entities, seed=seed)
    known = []
    for side, kg in (("source", pair.source), ("target", pair.target)):
        ids = kg[ENTITY].ids
        folder = root / side
        (folder / "features").mkdir(parents=True, exist_ok=True)
        edges = kg[RELATION_EDGE]
        names = edges.relation_names
        rows = zip(edges.edge_index.t().tolist(), edges.edge_type.tolist())
        (folder / "triples.tsv").write_text(
            "".join(f"{ids[h]}\t{names[r]}\t{ids[t]}\n" for (h, t), r in rows),
            encoding="utf-8",
        )
        attr = kg[ATTRIBUTE_EDGE]
        attr_names = kg[ATTRIBUTE].names
        facts = zip(attr.edge_index.t().tolist(), attr.value.tolist())
        (folder / "attributes.tsv").write_text(
            "".join(f"{ids[e]}\t{attr_names[a]}\t{v}\n" for (e, a), v in facts),
            encoding="utf-8",
        )
        has_img = kg[ENTITY].x_img_mask
        image = {"ids": [ids[i] for i in has_img.nonzero().flatten().tolist()]}
        image["x"] = kg[ENTITY].x_img[has_img]
        torch.save(image, folder / "features" / "img.pt")
        present = torch.zeros(len(ids), dtype=torch.bool)
        present[edges.edge_index.flatten()] = True
        present[attr.edge_index[0]] = True
        known.append(present)
    src_ids, tgt_ids = pair.source[ENTITY].ids, pair.target[ENTITY].ids
    links = pair.links[:, known[0][pair.links[0]] & known[1][pair.links[1]]]
    (root / "links.tsv").write_text(
        "".join(f"{src_ids[s]}\t{tgt_ids[t]}\n" for s, t in links.t().tolist()),
        encoding="utf-8",
    )
    return root
