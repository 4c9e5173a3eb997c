"""almea_pyg: multimodal entity alignment with active learning on PyTorch Geometric."""

__version__ = "0.1.0"
