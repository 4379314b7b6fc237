"""The `hwnas` command line: thin subcommands over the library.

Each command group lives in its own module (`hwnas/cli/<group>.py`) that
defines `register(subparsers)`; a command parses its flags and calls the
library (the pipeline stages — supernet training, search, export — through
`hwnas.pipeline`, which the quickstart calls too). Heavy imports (jax,
tensorflow) happen inside the command functions so that `hwnas space list`
starts instantly.
User errors (`HwnasError`) print one line, `error: ...`, and exit with 2.
"""

from __future__ import annotations

import argparse
import sys

from hwnas import __version__, errors


class _Parser(argparse.ArgumentParser):
  """argparse with the project's one-line errors: `error: hwnas search:
  argument --budget: invalid integer value: 'nan' (see hwnas search
  --help)` and exit status 2, no usage block. Subcommand parsers are of the
  same class (argparse makes them with `type(parent)`)."""

  def error(self, message: str):
    from hwnas import validate  # pylint: disable=g-import-not-at-top
    print(f"error: {self.prog}: {validate.printable(message, 400)} (see "
          f"{self.prog} --help)", file=sys.stderr)
    sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
  parser = _Parser(
      prog="hwnas",
      description="Hardware-aware neural architecture search in JAX.")
  parser.add_argument("--version", action="version",
                      version=f"hwnas {__version__}")
  parser.add_argument("--verbose", action="store_true",
                      help="show TensorFlow/absl/converter logs (hidden by "
                      "default); may also follow the command")
  parser.add_argument("--no-compile-cache", action="store_true",
                      help="do not read or write JAX's persistent "
                      "compilation cache ($HWNAS_CACHE_DIR, else "
                      "~/.cache/hwnas; also HWNAS_COMPILE_CACHE=0); may also "
                      "follow the command")
  sub = parser.add_subparsers(dest="command", metavar="COMMAND")
  sub.required = True
  # pylint: disable=g-import-not-at-top
  from hwnas.cli import (arch, export, predictor, quickstart, search, space,
                         supernet, table, train)
  # pylint: enable=g-import-not-at-top
  # Command groups, in the order `hwnas --help` lists them.
  for group in (space, arch, table, supernet, predictor, search, train,
                export, quickstart):
    group.register(sub)
  from hwnas.cli import _help  # pylint: disable=g-import-not-at-top
  _help.fill(parser)   # help text for the flags registered without one
  return parser


def _config_overrides(argv: list[str]) -> list[str]:
  """big_vision-style `--config.a.b=v` is an alias of `--set a.b=v`."""
  out = []
  for a in argv:
    if a.startswith("--config.") and "=" in a:
      out += ["--set", a[len("--config."):]]
    else:
      out.append(a)
  return out


def _verbosity(argv: list[str]) -> list[str]:
  """`--verbose` anywhere shows TF/absl/converter logs (filtered by
  default, see `hwnas.chatter`); returns argv without it."""
  from hwnas import chatter  # pylint: disable=g-import-not-at-top
  chatter.set_verbose("--verbose" in argv or chatter.verbose())
  return [a for a in argv if a != "--verbose"]


def _compile_cache(argv: list[str]) -> list[str]:
  """JAX's persistent compilation cache on (`hwnas.compile_cache`) unless
  `--no-compile-cache` (anywhere) turns it off; returns argv without it."""
  from hwnas import compile_cache  # pylint: disable=g-import-not-at-top
  if "--no-compile-cache" in argv:
    compile_cache.disable()
  else:
    compile_cache.enable()
  return [a for a in argv if a != "--no-compile-cache"]


def main(argv: list[str] | None = None) -> int:
  parser = build_parser()
  own_process = argv is None   # `hwnas ...`, not a call from Python code
  argv = _config_overrides(list(sys.argv[1:] if argv is None else argv))
  argv = _verbosity(argv)
  argv = _compile_cache(argv)
  if own_process:
    from hwnas import chatter  # pylint: disable=g-import-not-at-top
    chatter.install()   # XLA / LiteRT lines from C++ threads at any time
  try:
    args = parser.parse_args(argv)
  except SystemExit as e:   # --help, --version (0) or a usage error (2)
    return int(e.code or 0)
  try:
    from hwnas import validate  # pylint: disable=g-import-not-at-top
    validate.check_args(args)   # every number flag, once, at the edge
    return int(args.func(args) or 0)
  except errors.HwnasError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  except BrokenPipeError:   # `hwnas ... | head`: the reader has gone
    import os  # pylint: disable=g-import-not-at-top
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 141
  except KeyboardInterrupt:
    print("interrupted; finished work is saved in the workdir: rerun the "
          "same command to resume", file=sys.stderr)
    return 130


if __name__ == "__main__":
  sys.exit(main())
