"""Runs: the layer above training and active learning (config, run folders, a run).

Imports flow one way: ``pipeline`` uses ``train`` and ``active``; neither uses it.
"""

from almea_pyg.pipeline.experiment import ExperimentConfig, run_experiment

__all__ = ["ExperimentConfig", "run_experiment"]
