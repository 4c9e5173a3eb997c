"""Data layer: :class:`MMKGPair`, readers, feature builders, splits, synthetic data."""

from almea_pyg.data.pair import MMKGPair, feature_modalities, modality_mask
from almea_pyg.data.split import split_links

__all__ = ["MMKGPair", "feature_modalities", "modality_mask", "split_links"]
