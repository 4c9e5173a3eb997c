"""Data layer: :class:`MMKGPair`, readers, feature builders, missing-modality
transforms, splits, synthetic data."""

from almea_pyg.data.errors import DataFormatError
from almea_pyg.data.features import (
    BuildModalityFeatures,
    bag_of_attributes,
    bag_of_relations,
    build_features,
    feature_matrix,
    match_feature_widths,
)
from almea_pyg.data.missing import (
    DropModality,
    FillMissing,
    propagate_features,
)
from almea_pyg.data.pair import MMKGPair, feature_modalities, modality_mask
from almea_pyg.data.readers import (
    detect_layout,
    read_mmea_pair,
    read_mmkb_kg,
    read_mmkb_pair,
    read_openea_pair,
    read_pair,
    read_tsv_kg,
    read_tsv_pair,
)
from almea_pyg.data.split import split_links
from almea_pyg.data.synthetic import (
    SYNTHETIC_DEFAULTS,
    make_synthetic_pair,
    write_synthetic_tsv,
)

__all__ = [
    "SYNTHETIC_DEFAULTS",
    "BuildModalityFeatures",
    "DataFormatError",
    "DropModality",
    "FillMissing",
    "MMKGPair",
    "bag_of_attributes",
    "bag_of_relations",
    "build_features",
    "detect_layout",
    "feature_matrix",
    "feature_modalities",
    "make_synthetic_pair",
    "write_synthetic_tsv",
    "match_feature_widths",
    "modality_mask",
    "propagate_features",
    "read_mmea_pair",
    "read_mmkb_kg",
    "read_mmkb_pair",
    "read_openea_pair",
    "read_pair",
    "read_tsv_kg",
    "read_tsv_pair",
    "split_links",
]
