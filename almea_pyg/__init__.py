"""almea_pyg: multimodal entity alignment with active learning on PyTorch Geometric."""

import sys

__version__ = "0.1.0"

from almea_pyg import select  # noqa: E402  (DS3 and the acquisition strategies)

#: ``almea_pyg.selection`` is an alias of the documented :mod:`almea_pyg.select`.
sys.modules[f"{__name__}.selection"] = select
selection = select

__all__ = ["__version__", "select", "selection"]
