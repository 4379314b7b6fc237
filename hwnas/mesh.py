"""The device mesh a training loop shards its batch over.

One 1-D mesh named 'data' over every device (of every host after
`jax.distributed.initialize()`): supernet and standalone training shard the
batch along it and replicate the state.
"""

from __future__ import annotations

import jax
import numpy as np

from hwnas import errors


def data_mesh(batch_size: int, *,
              what: str = "train.batch_size") -> jax.sharding.Mesh:
  """A 1-D `data` mesh over all devices; `batch_size` (named `what` in the
  error) must divide evenly among them."""
  devices = np.asarray(jax.devices())
  if batch_size % devices.size:
    raise errors.HwnasError(
        f"{what} = {batch_size}: must be a multiple of the {devices.size} "
        "devices")
  return jax.sharding.Mesh(devices, ("data",))
