"""Where an exported network and its weights come from, validated before
anything heavy runs, then handed to the artifact writer
(`hwnas.export.writer.export_network`):

* `export_arch`: an architecture of a trained supernet's space; weights are
  inherited from the supernet and BatchNorm is recalibrated on training data.
* `export_supernet`: the same from an in-memory supernet.
* `export_spec`: any `NetSpec` (a reference network, a network-spec file)
  with random or given weights, e.g. for Edge TPU compile checks.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

from hwnas import arch as arch_lib
from hwnas import errors, netspec
from hwnas.export import checks, flax_io, writer
from hwnas.export import options as options_lib
from hwnas.export.options import ExportOptions
from hwnas.netspec import NetSpec


def export_spec(spec: NetSpec, out: str | os.PathLike[str], *,
                weights: str | os.PathLike[str] | None = None,
                options: ExportOptions = ExportOptions(), table=None,
                arch=None, source: dict[str, Any] | None = None
                ) -> dict[str, Any]:
  """Exports a `NetSpec` with random (seeded) or given weights.

  Args:
    spec: the network.
    out: export directory.
    weights: an export directory (or its `flax/` checkpoint) or a `hwnas
      train` workdir of the same network; None: random initialisation from
      `options.seed`. With random weights and a dataset, the classifier is
      resized to the dataset's classes and BatchNorm is recalibrated on its
      training split.
    options, table, arch, source: see `export_network`.

  Returns:
    The report dict.
  """
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from hwnas.models import Network  # pylint: disable=g-import-not-at-top
  o = options
  options_lib.check_out_dir(out, overwrite=o.overwrite)
  ds = writer.load_dataset(o.dataset)
  if weights is None and ds is not None and (
      spec.num_classes != ds.info.num_classes):
    spec = netspec.with_num_classes(spec, ds.info.num_classes)
  model = Network(spec, rngs=nnx.Rngs(o.seed), depthwise="lax")
  if weights is not None:
    model = _load_weights(model, pathlib.Path(weights))
    init = f"weights from {weights}"
    bn = None
  else:
    init = f"random initialisation (seed {o.seed})"
    bn = _recalibrate(model, ds, spec, o) if ds is not None else None
  source = dict(source or {"kind": "netspec"})
  source["description"] = (f"{source.get('description', spec.name)}; "
                           f"{init}")
  return writer.export_network(model, out, arch=arch, source=source,
                               options=o, table=table, dataset=ds,
                               bn_recalibration=bn,
                               random_weights=weights is None)


def _load_weights(model, w: pathlib.Path):
  """Weights from an export dir, its Flax checkpoint or a `hwnas train`
  workdir (config.json + checkpoints/); the network must be the same."""
  if (w / "config.json").is_file() and (w / "checkpoints").is_dir():
    from hwnas import train_standalone  # pylint: disable=g-import-not-at-top
    trained = train_standalone.restore(w)
    if trained.spec.layers != model.spec.layers:
      raise errors.HwnasError(
          f"{w}: trained network {trained.spec.name} is not the network to "
          f"export ({model.spec.name}); fix: export the architecture it was "
          "trained with")
    return trained
  ckpt = w / flax_io.FLAX_DIR if (w / flax_io.FLAX_DIR).is_dir() else w
  if not ckpt.is_dir():
    raise errors.HwnasError(f"{w}: no such weights directory; fix: pass an "
                            "export directory or a `hwnas train` workdir")
  flax_io.restore_flax(model, ckpt)
  return model


def _recalibrate(model, ds, spec: NetSpec, o: ExportOptions
                 ) -> dict[str, Any] | None:
  if o.bn_batches == 0:
    return None
  from hwnas import data  # pylint: disable=g-import-not-at-top
  it = data.batches(ds, "train", batch_size=o.batch_size,
                    resolution=spec.resolution, seed=o.seed, shuffle=True,
                    repeat=True, drop_remainder=True)
  n = checks.recalibrate_bn(model, (next(it)["image"]
                                    for _ in range(o.bn_batches)))
  return {"batches": n, "batch_size": o.batch_size, "dataset": ds.info.name,
          "split": "train", "method": "hwnas.export.checks.recalibrate_bn"}


def load_arch_for(arch_or_path, space) -> Any:
  """Loads an architecture file (or takes a choice) and validates it against
  `space`; raises a one-line SpaceError when it is not a member."""
  a = (arch_lib.load(arch_or_path)
       if isinstance(arch_or_path, (str, os.PathLike)) else arch_or_path)
  arch_lib.validate(space, a)
  return a


def export_supernet(supernet, arch_or_path, out: str | os.PathLike[str], *,
                    options: ExportOptions = ExportOptions(), table=None,
                    dataset=None, source: dict[str, Any] | None = None
                    ) -> dict[str, Any]:
  """Exports one architecture of an in-memory `hwnas.supernet` Supernet.

  The standalone network gets the supernet's shared weights (exact shapes,
  `hwnas.supernet.extract.subnet`); its BatchNorm statistics are then
  recalibrated on `options.bn_batches` training batches when a dataset is
  given (cumulative average, as Once-for-All), and kept otherwise.

  Raises:
    SpaceError: the architecture is not a member of the supernet's space.
  """
  from hwnas.supernet import extract  # pylint: disable=g-import-not-at-top
  o = options
  options_lib.check_out_dir(out, overwrite=o.overwrite)
  choice = load_arch_for(arch_or_path, supernet.space)
  ds = dataset if dataset is not None else writer.load_dataset(o.dataset)
  model = extract.subnet(supernet, choice, depthwise="lax")
  bn = (_recalibrate(model, ds, model.spec, o) if ds is not None else None)
  source = dict(source or {"kind": "supernet",
                           "description": "in-memory supernet"})
  return writer.export_network(model, out, arch=choice, source=source,
                               options=o, table=table, dataset=ds,
                               bn_recalibration=bn)


def export_arch(arch_or_path, supernet: str | os.PathLike[str],
                out: str | os.PathLike[str], *,
                options: ExportOptions = ExportOptions(), table=None
                ) -> dict[str, Any]:
  """Exports an architecture with weights inherited from a trained supernet.

  Args:
    arch_or_path: an `ArchChoice` or an architecture JSON file (a choice,
      or search output such as best.json).
    supernet: the `hwnas supernet train` workdir (config.json + Orbax
      checkpoints).
    out: export directory.
    options: see `ExportOptions`; `options.dataset` defaults to the dataset
      the supernet was trained on (same validation hold-out).
    table: latency table for the predicted-vs-measured comparison.

  Returns:
    The report dict.

  Raises:
    HwnasError: missing/corrupt workdir or checkpoint, or an architecture
      that is not in the supernet's space; nothing is written to `out`.
  """
  from hwnas.export import supernet_source  # pylint: disable=g-import-not-at-top
  options_lib.check_out_dir(out, overwrite=options.overwrite)
  if isinstance(arch_or_path, (str, os.PathLike)):
    arch_or_path = arch_lib.load(arch_or_path)
  space, net, config = supernet_source.load(supernet)
  try:
    arch_lib.validate(space, arch_or_path)
  except errors.HwnasError as e:
    raise errors.SpaceError(
        f"{pathlib.Path(supernet) / 'config.json'}: the architecture is not "
        f"in the supernet's space ({e})") from None
  ds = supernet_source.load_dataset(config, options.dataset)
  source = {"kind": "supernet", "supernet": str(supernet),
            "description": f"supernet {supernet} (space {space.name}, "
                           f"dataset {ds.info.name}); shared weights of the "
                           "architecture"}
  return export_supernet(net, arch_or_path, out, options=options,
                         table=table, dataset=ds, source=source)
