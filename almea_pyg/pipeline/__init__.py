"""Runs: the layer above training and active learning.

One run (:mod:`~almea_pyg.pipeline.experiment`: its config, also read from a file
by :mod:`~almea_pyg.pipeline.config_file`; :mod:`~almea_pyg.pipeline.run_folder`:
its folder; :mod:`~almea_pyg.pipeline.missing_modality`: its controlled missing
modality), grids of runs with resume (:mod:`~almea_pyg.pipeline.grid`, over the
named :mod:`~almea_pyg.pipeline.variants`), their statistics and reports
(:mod:`~almea_pyg.pipeline.stats`, :mod:`~almea_pyg.pipeline.report`) and the
labelling page (:mod:`~almea_pyg.pipeline.label_page`).

Imports flow one way: ``pipeline`` uses ``train`` and ``active``; neither uses it.
"""

from almea_pyg.pipeline.experiment import ExperimentConfig, run_experiment

__all__ = ["ExperimentConfig", "run_experiment"]
