"""Entity-alignment models: ALMEA, its objective, imputation and diagnostics."""

from almea_pyg.models.almea import ALMEA, IMPUTERS, ALMEAOutput
from almea_pyg.models.diagnostics import imputation_r2, latent_diagnostics
from almea_pyg.models.imputation import impute_modalities
from almea_pyg.models.inputs import PairInputs
from almea_pyg.models.loss import ALMEALoss

__all__ = [
    "ALMEA",
    "ALMEALoss",
    "ALMEAOutput",
    "IMPUTERS",
    "PairInputs",
    "impute_modalities",
    "imputation_r2",
    "latent_diagnostics",
]
