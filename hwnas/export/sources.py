"""The export entry points, one per kind of source. Each validates its
inputs once, before anything heavy runs (the output directory, the
architecture, the dataset), and hands the typed values to the artifact
writer (`hwnas.export.writer.write`), which does not check them again:

* `export_arch`: an architecture of a trained supernet's space; weights are
  inherited from the supernet and BatchNorm is recalibrated on training data.
* `export_supernet`: the same from an in-memory supernet.
* `export_spec`: any `NetSpec` (a reference network, a network-spec file,
  a decoded architecture) with random or given weights, e.g. for Edge TPU
  compile checks.
* `export_network`: a built standalone network, weights as they are.
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


def _named_dataset(name: str | None):
  """`hwnas.data.load(name)`, or None without a name (`options.dataset` of
  a source that has no run config)."""
  if name is None:
    return None
  from hwnas import data  # pylint: disable=g-import-not-at-top
  return data.load(name)


def export_network(model, out: str | os.PathLike[str], *,
                   arch=None, source: dict[str, Any] | None = None,
                   options: ExportOptions = ExportOptions(),
                   table=None, dataset=None,
                   bn_recalibration: dict[str, Any] | None = None,
                   random_weights: bool = False) -> dict[str, Any]:
  """Exports a built `hwnas.models.Network` (weights as they are).

  Args:
    model: the standalone network (not modified).
    out: export directory; must not exist unless `options.overwrite`.
    arch: the `ArchChoice` it was decoded from, if any.
    source: `{"kind": ..., "description": ...}` for the report.
    options: see `ExportOptions`.
    table: latency table (path, shipped name or `LatencyTable`) whose
      prediction the report compares with the measured latency.
    dataset: a loaded `hwnas.data.Dataset` (default: load
      `options.dataset`).
    bn_recalibration: how BatchNorm was recalibrated, for the report.
    random_weights: the weights are a random initialisation: the int8 gate
      is recorded but not enforced.

  Returns:
    The report dict (also written to `out/report.json` and `report.md`).
  """
  out_dir = options_lib.check_out_dir(out, overwrite=options.overwrite)
  ds = _fitting(dataset if dataset is not None else
                _named_dataset(options.dataset), model.spec)
  return writer.write(model, out_dir, dataset=ds, arch=arch, source=source,
                      options=options, table=table,
                      bn_recalibration=bn_recalibration,
                      random_weights=random_weights)


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
      train` workdir of the same network (then, unless `options.dataset`
      names one, the dataset that workdir was trained on, with the same
      validation hold-out); None: random initialisation from
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
  out_dir = options_lib.check_out_dir(out, overwrite=o.overwrite)
  ds = _named_dataset(o.dataset)
  if ds is None and weights is not None:
    ds = train_workdir_dataset(pathlib.Path(weights))
  ds = _fitting(ds, spec)
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
  return writer.write(model, out_dir, dataset=ds, arch=arch, source=source,
                      options=o, table=table, bn_recalibration=bn,
                      random_weights=weights is None)


def _fitting(ds, spec: NetSpec):
  """`ds` (or None), checked once to hold the input kind and channels the
  network takes (time-series windows for a 1-D network)."""
  if ds is not None:
    from hwnas import data  # pylint: disable=g-import-not-at-top
    data.check_input(ds.info, kind=spec.kind, channels=spec.in_channels,
                     what=f"network {spec.name}")
  return ds


def train_workdir_dataset(w: pathlib.Path):
  """The dataset a `hwnas train` workdir recorded (its config.json), or None
  when `w` is not such a workdir."""
  if not ((w / "config.json").is_file() and (w / "checkpoints").is_dir()):
    return None
  import json  # pylint: disable=g-import-not-at-top
  import ml_collections  # pylint: disable=g-import-not-at-top
  from hwnas import data  # pylint: disable=g-import-not-at-top
  path = w / "config.json"
  try:
    config = ml_collections.ConfigDict(json.loads(path.read_text())["config"])
    config.dataset  # pylint: disable=pointless-statement
  except (KeyError, AttributeError, ValueError):
    raise errors.HwnasError(f"{path}: no config.dataset; pass --dataset "
                            "(API: dataset=) to export") from None
  return data.load_for(config)


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


def _choice(arch_or_path) -> arch_lib.ArchChoice:
  """An `ArchChoice`, or the one an architecture file holds (read once)."""
  if isinstance(arch_or_path, (str, os.PathLike)):
    return arch_lib.load(arch_or_path)
  return arch_or_path


def _subnet(supernet, choice, where: str | None):
  """The standalone network of `choice` with `supernet`'s shared weights.

  Membership of the supernet's space is checked once, by the subnet's
  decode; `where` (the workdir's config.json) prefixes that error.
  """
  from hwnas.supernet import subnet  # pylint: disable=g-import-not-at-top
  try:
    return subnet(supernet, choice, depthwise="lax")
  except errors.SpaceError as e:
    if where is None:
      raise
    raise errors.SpaceError(f"{where}: the architecture is not in the "
                            f"supernet's space ({e})") from None


def _write_subnet(model, choice, out_dir: options_lib.OutDir, *,
                  options: ExportOptions, table, dataset,
                  source: dict[str, Any]) -> dict[str, Any]:
  """Recalibrates BatchNorm of a supernet's subnet (with a dataset) and
  writes it."""
  dataset = _fitting(dataset, model.spec)
  bn = (_recalibrate(model, dataset, model.spec, options)
        if dataset is not None else None)
  return writer.write(model, out_dir, dataset=dataset, arch=choice,
                      source=source, options=options, table=table,
                      bn_recalibration=bn)


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
  out_dir = options_lib.check_out_dir(out, overwrite=options.overwrite)
  choice = _choice(arch_or_path)
  model = _subnet(supernet, choice, where=None)
  ds = dataset if dataset is not None else _named_dataset(options.dataset)
  source = source or {"kind": "supernet", "description": "in-memory supernet"}
  return _write_subnet(model, choice, out_dir, options=options, table=table,
                       dataset=ds, source=source)


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
      the supernet was trained on (same validation hold-out:
      `hwnas.data.load_for`).
    table: latency table for the predicted-vs-measured comparison.

  Returns:
    The report dict.

  Raises:
    HwnasError: missing/corrupt workdir or checkpoint, or an architecture
      that is not in the supernet's space; nothing is written to `out`.
  """
  from hwnas import data  # pylint: disable=g-import-not-at-top
  from hwnas.export import supernet_source  # pylint: disable=g-import-not-at-top
  out_dir = options_lib.check_out_dir(out, overwrite=options.overwrite)
  choice = _choice(arch_or_path)
  space, net, config = supernet_source.load(supernet)
  model = _subnet(net, choice, where=str(pathlib.Path(supernet) /
                                         "config.json"))
  ds = data.load_for(config, dataset=options.dataset)
  source = {"kind": "supernet", "supernet": str(supernet),
            "description": f"supernet {supernet} (space {space.name}, "
                           f"dataset {ds.info.name}); shared weights of the "
                           "architecture"}
  return _write_subnet(model, choice, out_dir, options=options, table=table,
                       dataset=ds, source=source)
