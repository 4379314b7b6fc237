"""Flax NNX models of hwnas networks: blocks (`layers`) and `Network`."""

from hwnas.models.layers import build_layer, depthwise_conv, global_avg_pool
from hwnas.models.standalone import Network, num_params, set_depthwise_impl

__all__ = ["Network", "build_layer", "depthwise_conv", "global_avg_pool",
           "num_params", "set_depthwise_impl"]
