"""Graph convolutions."""

from almea_pyg.nn.conv.csr_spmm import CSRGraph, attention_spmm, build_csr_graph
from almea_pyg.nn.conv.fused_gat import FusedGATConv

__all__ = ["CSRGraph", "FusedGATConv", "attention_spmm", "build_csr_graph"]
