"""A `lax.switch` whose reverse pass recomputes the taken branch.

The supernet runs each block slot as one `lax.switch` over its branches
(identity, and one branch per block type and mid width; see
`hwnas.supernet.model`). Differentiating a plain `lax.switch` makes its
forward pass output the intermediate values of EVERY branch, zero-filled
where not taken: with one branch per mid width that is gigabytes of zeros
written per training step. `switch_vjp` saves only the switch's inputs
instead and, in the backward pass, reruns the taken branch's forward pass
from them (`jax.vjp` inside the backward switch). The cost is one more
forward pass of each block per training step; the residual traffic is
gone. An earlier variant that kept the taken branch's residuals packed in
one buffer was slower in every measurement (benchmarks/results/supernet.md)
and was removed.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import jax

Branch = Callable[[jax.Array, Any, Any], tuple[jax.Array, Any]]


def switch_vjp(index: jax.Array, branches: Sequence[Branch], x: jax.Array,
               params: Any, arch: Any) -> tuple[jax.Array, Any]:
  """`lax.switch(index, branches, x, params, arch)`, differentiable in `x`
  and `params`, whose reverse pass recomputes the taken branch.

  Args:
    index: int32 scalar, the branch to run (not batched: under `vmap` a
      switch becomes a select that runs every branch).
    branches: functions `(x, params, arch) -> (y, aux)`; `aux` (e.g. batch
      statistics) gets no gradient.
    x: the input activations.
    params: the weights (any pytree).
    arch: the architecture entries the branches read (no gradient).

  Returns:
    The taken branch's `(y, aux)`.
  """

  @jax.custom_vjp
  def run(index, x, params, arch):
    return jax.lax.switch(index, branches, x, params, arch)

  def run_fwd(index, x, params, arch):
    return run(index, x, params, arch), (index, x, params, arch)

  def run_bwd(res, g):
    index, x, params, arch = res
    gy, _ = g

    def bwd_branch(x, params, arch, gy, branch):
      _, vjp_fn, _ = jax.vjp(lambda x, p: branch(x, p, arch), x, params,
                             has_aux=True)
      return vjp_fn(gy)

    dx, dparams = jax.lax.switch(
        index, [functools.partial(bwd_branch, branch=b) for b in branches],
        x, params, arch, gy)
    return None, dx, dparams, None

  run.defvjp(run_fwd, run_bwd)
  return run(index, x, params, arch)
