"""Flax NNX models of hwnas networks: raw operations (`ops`), blocks
(`layers`), `Network` and BatchNorm recalibration (`bn`)."""

from hwnas.models.bn import average_batch_statistics, recalibrate_bn
from hwnas.models.layers import build_layer
from hwnas.models.ops import depthwise_conv, global_avg_pool
from hwnas.models.standalone import Network, num_params

__all__ = ["Network", "average_batch_statistics", "build_layer",
           "depthwise_conv", "global_avg_pool", "num_params",
           "recalibrate_bn"]
