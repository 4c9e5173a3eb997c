"""Shared type aliases and constants."""

from typing import Literal

#: The modalities of the paper: graph structure, relations, attributes, visual.
PAPER_MODALITIES = ("graph", "rel", "attr", "img")

#: Node and edge types of one KG (a :class:`~torch_geometric.data.HeteroData`).
ENTITY = "entity"
ATTRIBUTE = "attribute"
RELATION_EDGE = (ENTITY, "relation", ENTITY)
ATTRIBUTE_EDGE = (ENTITY, "has_attribute", ATTRIBUTE)

SimilarityMetric = Literal["cosine", "csls"]
DatasetPairName = Literal["FB15K_DB15K", "FB15K_YAGO15K"]
