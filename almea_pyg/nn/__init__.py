"""Reusable modules: encoders, fusion, LSL, LSC, imputation and the losses."""

from almea_pyg.nn.conv import CSRGATConv
from almea_pyg.nn.encoders import FeatureEncoder, GraphValues, StructuralEncoder
from almea_pyg.nn.fusion import ModalityFusion
from almea_pyg.nn.imputer import LinearImputer
from almea_pyg.nn.losses import (
    UncertaintyWeighting,
    info_nce,
    inter_modal_alignment,
    joint_alignment_loss,
    kl_standard_normal,
    reconstruction_loss,
    semantic_calibration_loss,
)
from almea_pyg.nn.lsc import LatentSemanticCalibration
from almea_pyg.nn.lsl import LatentSemanticLearning, LSLOutput, ModalityVAE

__all__ = [
    "CSRGATConv",
    "FeatureEncoder",
    "GraphValues",
    "LSLOutput",
    "LinearImputer",
    "LatentSemanticCalibration",
    "LatentSemanticLearning",
    "ModalityFusion",
    "ModalityVAE",
    "StructuralEncoder",
    "UncertaintyWeighting",
    "info_nce",
    "inter_modal_alignment",
    "joint_alignment_loss",
    "kl_standard_normal",
    "reconstruction_loss",
    "semantic_calibration_loss",
]
