"""The device mesh a training loop shards its batch over.

One 1-D mesh named 'data' over every device (of every host after
`jax.distributed.initialize()`): supernet and standalone training shard the
batch along it and replicate the state. `initialize_distributed` joins a
process to such a multi-process run.
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


def initialize_distributed(coordinator: str | None = None, *,
                           num_processes: int | None = None,
                           process_id: int | None = None) -> None:
  """Joins this process to a multi-process JAX run (`jax.distributed`).

  Call it first, before any other jax computation, in every process. With
  all three arguments the processes find each other through the
  coordinator (process 0's `host:port`); with none, JAX detects them from
  the cluster (Slurm, Open MPI, Cloud TPU). CPU processes exchange their
  collectives (the gradient and BatchNorm all-reduces) over gloo/TCP.

  Args:
    coordinator: `host:port` of process 0 (any free port, the same in every
      process).
    num_processes: how many processes take part.
    process_id: this process's index, 0 .. num_processes - 1.
  """
  given = [v is not None for v in (coordinator, num_processes, process_id)]
  if any(given) and not all(given):
    raise errors.HwnasError(
        "distributed training: give --coordinator HOST:PORT, "
        "--num-processes N and --process-id I together (or none of them "
        "on Slurm / Open MPI / Cloud TPU)")
  if num_processes is not None and not 0 <= process_id < num_processes:
    raise errors.HwnasError(
        f"--process-id {process_id}: must be in 0..{num_processes - 1} "
        f"(--num-processes {num_processes})")
  # gloo is jax 0.10's default for CPU; set it so that another default
  # (or none, as in older releases) cannot leave CPU processes unable to
  # all-reduce.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator, num_processes, process_id)
