"""Importance-sorted channels (Once-for-All's "re-organise middle weights").

An elastic expansion uses the *leading* mid channels of a block, so which
channels lead matters: Once-for-All sorts them by importance (the L1 norm of
each channel's projection weights) before it starts shrinking the
expansion, so that small expansions inherit the most important channels.
`sort_channels` does that to a training state: for every block whose
expansion conv always exists, it permutes the mid channels (expansion conv
outputs, depthwise channels, their BatchNorm parameters and statistics, the
squeeze-excite's inputs and outputs and the projection's inputs) in
descending importance, and the squeeze-excite's hidden channels likewise
(by the L1 norm of its expand weights). The same permutation is applied to
every pytree in the state that mirrors the parameters (optimiser moments),
so momentum stays with its channel.

For the largest architecture this is a pure relabelling: its function is
unchanged (tests/supernet_test.py). Blocks whose expansion is sometimes
omitted (mid == in) keep their order: their mid channels are then the
block's input channels, fixed by the previous block.

`hwnas supernet train` applies it when progressive shrinking enters the
expansion phase (`config.train.sort_channels`).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from hwnas.space import SearchSpace
from hwnas.supernet import blocks

# (module, leaf) -> {axis: 'mid' | 'se'}: the axes a permutation applies to
# ('bn': the BatchNorm's scale, bias, mean and var).
_AXES = {
    ("expand", "kernel"): {-1: "mid"},
    ("expand", "bn"): {0: "mid"},
    ("dw", "kernel"): {-1: "mid"},
    ("dw", "bn"): {0: "mid"},
    ("se", "reduce_kernel"): {2: "mid", 3: "se"},
    ("se", "reduce_bias"): {0: "se"},
    ("se", "expand_kernel"): {2: "se", 3: "mid"},
    ("se", "expand_bias"): {0: "mid"},
    ("project", "kernel"): {2: "mid"},
}
_BN = ("scale", "bias", "mean", "var")


def _names(path) -> list[Any]:
  out = []
  for k in path:
    for attr in ("key", "idx", "name"):
      if hasattr(k, attr):
        out.append(getattr(k, attr))
        break
  return out


def _locate(names: list[Any]):
  """(slot, type index, module, leaf name) of a block leaf path, or None."""
  if "slots" not in names:
    return None
  i = names.index("slots")
  rest = [n for n in names[i:] if n != "value"]
  if len(rest) < 6 or rest[2] != "blocks":
    return None
  slot, typ, module, name = rest[1], rest[3], rest[4], rest[5]
  if name == "bn" and (len(rest) < 7 or rest[6] not in _BN):
    return None
  return slot, typ, module, name


def _param_blocks(params) -> dict[tuple[int, int], dict[str, np.ndarray]]:
  """{(slot, type): {'module/leaf': array}} of the block parameters."""
  out: dict[tuple[int, int], dict[str, np.ndarray]] = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    where = _locate(_names(path))
    if where is not None and where[3] != "bn":
      slot, typ, module, name = where
      out.setdefault((int(slot), int(typ)), {})[f"{module}/{name}"] = (
          np.asarray(leaf))
  return out


def importance_orders(space: SearchSpace, params
                      ) -> dict[tuple[int, int], dict[str, np.ndarray]]:
  """{(slot, type): {'mid': order, 'se': order}} for the sortable blocks.

  Orders are argsorts in descending importance: the L1 norm of a mid
  channel's projection weights, of an SE hidden channel's expand weights.
  """
  slots = blocks.slots(space)
  orders = {}
  for (slot, typ), leaves in _param_blocks(params).items():
    if slots[slot].expand != "always":
      continue
    proj = leaves["project/kernel"]
    order = {"mid": np.argsort(-np.abs(proj).sum(axis=(0, 1, 3)),
                               kind="stable")}
    if "se/expand_kernel" in leaves:
      se = np.abs(leaves["se/expand_kernel"]).sum(axis=(0, 1, 3))
      order["se"] = np.argsort(-se, kind="stable")
    orders[(slot, typ)] = order
  return orders


def sort_channels(space: SearchSpace, state: dict[str, Any]
                  ) -> dict[str, Any]:
  """`state` with every sortable block's channels in importance order.

  Args:
    space: the supernet's space.
    state: a training state (`hwnas.supernet.train.create_state`): its
      params, BatchNorm statistics and optimiser moments are permuted alike.

  Returns:
    The new state (host arrays where permuted; put it back on devices).
  """
  orders = importance_orders(space, state["params"])

  def permute(path, leaf):
    where = _locate(_names(path))
    if where is None:
      return leaf
    slot, typ, module, name = where
    order = orders.get((int(slot), int(typ)))
    axes = _AXES.get((module, name)) if order is not None else None
    if not axes:
      return leaf
    out = np.asarray(leaf)
    for axis, kind in axes.items():
      out = np.take(out, order[kind], axis=axis)
    return out

  return jax.tree_util.tree_map_with_path(permute, state)
