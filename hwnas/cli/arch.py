"""`hwnas arch sample|stats`."""

from __future__ import annotations

import json
import pathlib

import numpy as np

from hwnas import arch as arch_lib
from hwnas import counting, errors, netspec, references
from hwnas import space as space_lib


def register(sub) -> None:
  p = sub.add_parser("arch", help="sample architectures, show their stats")
  s = p.add_subparsers(dest="arch_command", metavar="SUBCOMMAND")
  s.required = True
  q = s.add_parser("sample", help="print a random architecture as JSON")
  q.add_argument("--space", required=True)
  q.add_argument("--seed", type=int, default=0)
  g = q.add_mutually_exclusive_group()
  g.add_argument("--largest", action="store_true",
                 help="the space's largest architecture instead")
  g.add_argument("--smallest", action="store_true",
                 help="the space's smallest architecture instead")
  q.add_argument("--out", help="write the JSON to this file (instead of "
                 "printing it)")
  q.add_argument("--overwrite", action="store_true",
                 help="replace an existing --out file")
  q.set_defaults(func=_sample)
  q = s.add_parser("stats", help="MACs, params and a per-layer table")
  q.add_argument("--arch", dest="arch_flag",
                 help="architecture JSON (choice, best.json or network spec)")
  q.add_argument("arch", nargs="?", help="deprecated spelling of --arch")
  q.add_argument("--reference", choices=references.names(),
                 help="a shipped reference network instead of a file")
  q.add_argument("--space", help="space of the architecture (default: the "
                 "shipped space named in the file)")
  q.add_argument("--resolution", type=int)
  q.add_argument("--num-classes", type=int)
  q.add_argument("--table", help="latency table: add predicted latency")
  q.add_argument("--json", action="store_true")
  q.set_defaults(func=_stats)


def _sample(args) -> int:
  from hwnas import validate  # pylint: disable=g-import-not-at-top
  if args.out:
    validate.check_out(args.out, overwrite=args.overwrite)
  space = space_lib.load(args.space)
  a = (arch_lib.largest(space) if args.largest else
       arch_lib.smallest(space) if args.smallest else
       arch_lib.sample(np.random.default_rng(args.seed), space))
  text = arch_lib.to_json(a, indent=1, space=space)
  if args.out:
    pathlib.Path(args.out).write_text(text + "\n")
    print(f"wrote {args.out}: {arch_lib.to_string(a)}")
  else:
    print(text)
  return 0


def load_spec(path: str | None, **kwargs) -> netspec.NetSpec:
  """The NetSpec of `load_arch_and_spec` (same arguments)."""
  return load_arch_and_spec(path, **kwargs)[1]


def load_arch_and_spec(path: str | None, *, reference: str | None = None,
                       space: str | None = None,
                       resolution: int | None = None,
                       num_classes: int | None = None
                       ) -> tuple[arch_lib.ArchChoice | None, netspec.NetSpec]:
  """(ArchChoice or None, NetSpec) of an arch/netspec file or a reference."""
  if bool(path) == bool(reference):
    raise errors.HwnasError("give an architecture file (--arch FILE) or "
                            "--reference NAME")
  if reference:
    return None, references.load(reference, resolution=resolution,
                                 num_classes=num_classes)
  p = pathlib.Path(path)
  if not p.is_file():
    raise errors.HwnasError(f"{p}: no such file")
  from hwnas import validate  # pylint: disable=g-import-not-at-top
  d = validate.load_json(errors.read_text(p, what="architecture JSON file"),
                         str(p))
  if isinstance(d, dict) and ("layers" in d or "netspec" in d):
    spec = netspec.NetSpec.from_dict(d.get("netspec", d), where=str(p))
    if resolution:
      spec = netspec.with_resolution(spec, resolution)
    if num_classes:
      spec = netspec.with_num_classes(spec, num_classes)
    return None, spec
  a = arch_lib.from_dict(d, where=str(p))
  sp = space_lib.load(arch_lib.space_source(d, space, where=str(p)))
  if resolution:
    import dataclasses
    a = dataclasses.replace(a, resolution=resolution)
  return a, arch_lib.decode(sp, a, num_classes=num_classes)


def _stats(args) -> int:
  if args.arch and args.arch_flag:
    raise errors.HwnasError("arch stats: give the architecture once "
                            f"(--arch {args.arch_flag})")
  if args.arch:
    from hwnas.cli import _help  # pylint: disable=g-import-not-at-top
    _help.deprecated("hwnas arch stats FILE", "hwnas arch stats --arch FILE")
  args.arch = args.arch_flag or args.arch
  spec = load_spec(args.arch, reference=args.reference, space=args.space,
                   resolution=args.resolution, num_classes=args.num_classes)
  rows = []
  for i, layer in enumerate(spec.layers):
    c = counting.layer_counts(layer)
    rows.append({"index": i, "key": layer.key(), "macs": c.macs,
                 "params": c.params})
  total = counting.count(spec)
  out = {"name": spec.name, "resolution": spec.resolution,
         "num_classes": spec.num_classes, "macs": total.macs,
         "params": total.params, "trainable_params": total.trainable_params,
         "int8_weight_bytes": total.int8_bytes, "layers": rows}
  if total.shift_adds:
    out["shift_adds"] = total.shift_adds
  if args.table:
    from hwnas.cli import _energy_stats, _latency_stats
    if _energy_stats.is_energy(args.table):
      out["energy"] = _energy_stats.predict(args.table, spec)
    else:
      out["latency"] = _latency_stats.predict(args.table, spec)
  if args.json:
    print(json.dumps(out, indent=1))
    return 0
  print(f"{spec.name}")
  if spec.dims == 1:
    print(f"  input time series of {spec.resolution} samples x "
          f"{spec.in_channels} channels, {spec.num_classes} classes")
  else:
    print(f"  input {spec.resolution}x{spec.resolution}x{spec.in_channels}, "
          f"{spec.num_classes} classes")
  print(f"  {'#':>3s} {'layer':58s} {'MACs':>10s} {'params':>9s}")
  for r in rows:
    print(f"  {r['index']:3d} {r['key']:58s} {r['macs'] / 1e6:9.2f}M "
          f"{r['params'] / 1e3:8.1f}k")
  print(f"  total: {total.macs / 1e6:.1f}M MACs, {total.params / 1e6:.3f}M "
        f"params ({total.trainable_params / 1e6:.3f}M with BatchNorm), "
        f"{total.int8_bytes / 2**20:.2f} MiB int8")
  if total.shift_adds:
    print(f"  of the MACs, {total.shift_adds / 1e6:.1f}M are shift-adds "
          "(shift blocks: power-of-two weights)")
  if "latency" in out:
    from hwnas.cli import _latency_stats
    _latency_stats.print_latency(out["latency"])
  if "energy" in out:
    from hwnas.cli import _energy_stats
    _energy_stats.print_energy(out["energy"])
  return 0
