"""almea_pyg: multimodal entity alignment with active learning on PyTorch Geometric."""

__version__ = "0.1.0"

from almea_pyg import select  # noqa: E402  (DS3 and the acquisition strategies)

__all__ = ["__version__", "select"]
