"""Graph convolutions."""

from almea_pyg.nn.conv.csr_gat import CSRGATConv
from almea_pyg.nn.conv.csr_spmm import CSRGraph, attention_spmm, build_csr_graph

__all__ = ["CSRGATConv", "CSRGraph", "attention_spmm", "build_csr_graph"]
