"""`hwnas space list|show`."""

from __future__ import annotations

import json

from hwnas import arch as arch_lib
from hwnas import counting
from hwnas import space as space_lib


def register(sub) -> None:
  p = sub.add_parser("space", help="list and inspect search spaces")
  s = p.add_subparsers(dest="space_command", metavar="SUBCOMMAND")
  s.required = True
  q = s.add_parser("list", help="list the shipped search spaces")
  q.set_defaults(func=_list)
  q = s.add_parser("show", help="choices per stage, size, MAC range")
  q.add_argument("space", help="shipped space name or path to a .yaml file")
  q.add_argument("--json", action="store_true", help="print JSON")
  q.set_defaults(func=_show)


def _list(args) -> int:
  for name in space_lib.list_spaces():
    s = space_lib.load(name)
    print(f"{name:14s} v{s.version}  {s.num_archs():.2e} archs  "
          f"{s.description.splitlines()[0] if s.description else ''}")
  return 0


def summary(space) -> dict:
  lo, hi = arch_lib.smallest(space), arch_lib.largest(space)
  c_lo = counting.count(arch_lib.decode(space, lo))
  c_hi = counting.count(arch_lib.decode(space, hi))
  return {
      "name": space.name, "version": space.version, "path": space.path,
      "num_archs": space.num_archs(),
      "kind": space.kind, "resolutions": list(space.resolutions),
      "min_macs": c_lo.macs, "max_macs": c_hi.macs,
      "min_params": c_lo.params, "max_params": c_hi.params,
      "smallest": arch_lib.to_string(lo), "largest": arch_lib.to_string(hi),
  }


def _show(args) -> int:
  space = space_lib.load(args.space)
  info = summary(space)
  if args.json:
    info["space"] = space.to_dict()
    print(json.dumps(info, indent=1))
    return 0
  print(f"space {space.id}  ({space.path})")
  if space.description:
    print(f"  {space.description}")
  st = space.stem
  if space.kind == "timeseries":
    print(f"  input time series, {space.input_channels} channels, "
          f"{space.num_classes} classes, window lengths "
          f"{list(space.resolutions)} (1-D: kernels 1 x k)")
    kernel = f"1x{st.kernel}"
  else:
    print(f"  input {space.input_channels} channels, {space.num_classes} "
          f"classes, resolutions {list(space.resolutions)}")
    kernel = f"{st.kernel}x{st.kernel}"
  print(f"  stem: conv {kernel}/{st.stride} -> {st.channels} "
        f"{st.activation}"
        + (f", {'/'.join(st.ops)}" if st.ops != ("mult",) else ""))
  ops = any(s.ops != ("mult",) for s in space.stages)  # column if offered
  hdr = (f"  {'stage':6s} {'stride':>6s}  {'widths':14s} {'depths':10s} "
         f"{'types':22s} {'kernels':9s} {'expansions':11s} {'se':12s} act"
         + ("            ops" if ops else ""))
  print(hdr)
  for i, s in enumerate(space.stages):
    fmt = lambda xs: ",".join(str(x) for x in xs)
    print(f"  {s.name or i!s:6s} {s.stride:>6d}  {fmt(s.widths):14s} "
          f"{fmt(s.depths):10s} {fmt(s.types):22s} {fmt(s.kernels):9s} "
          f"{fmt(s.expansions):11s} {fmt(s.se):12s} "
          + (f"{fmt(s.activations):14s} {fmt(s.ops)}" if ops else
             fmt(s.activations)))
  h = space.head
  print(f"  head: expand {h.expand_channels or '-'}, feature "
        f"{h.feature_channels or '-'}, {h.activation}"
        + (f", expand conv {'/'.join(h.ops)}" if h.ops != ("mult",) else ""))
  print(f"  architectures: {info['num_archs']:,} ({info['num_archs']:.2e})")
  print(f"  MACs: {info['min_macs'] / 1e6:.1f}M .. {info['max_macs'] / 1e6:.1f}M"
        f"   params: {info['min_params'] / 1e6:.2f}M .. "
        f"{info['max_params'] / 1e6:.2f}M")
  print(f"  smallest: {info['smallest']}")
  print(f"  largest:  {info['largest']}")
  print(_edgetpu_line(space))
  return 0


def _edgetpu_line(space) -> str:
  """Which choices the Edge TPU compiler leaves on the CPU."""
  from hwnas.edgetpu import ops  # pylint: disable=g-import-not-at-top
  lines = ops.fallback_choices(space)
  head = f"  Edge TPU (compiler {ops.DEFAULT_COMPILER}):"
  if not lines:
    return f"{head} every choice maps"
  every = any("fixed" in l or "only choice" in l for l in lines)
  what = ("every network falls back: an Edge TPU search is refused" if every
          else "an Edge TPU search leaves these out")
  return (f"{head} falls back to the CPU with {'; '.join(lines)} ({what} "
          "unless --allow-cpu-fallback)")
