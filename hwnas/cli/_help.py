"""Help text for the flags a command module registers without one.

Applied by `hwnas.cli.build_parser` after every group registered its
flags, so that `hwnas CMD --help` explains every flag. A command's own
`help=` always wins; keys are (command path, flag) first, then the flag
alone. Kept here, not on each `add_argument`, so that the text of common
flags (`--seed`, `--space`, ...) is written once.
"""

from __future__ import annotations

import argparse

BY_FLAG = {
    "--space": "search space: a shipped name (`hwnas space list`) or a YAML "
               "file",
    "--seed": "random seed",
    "--table": "latency table: a shipped name (`hwnas table show`) or a "
               "JSON file",
    "--json": "print JSON instead of text",
    "--warmup": "untimed runs before timing",
    "--repeats": "timed runs (the median is reported)",
    "--batch-size": "batch size",
    "--resolution": "input resolution in pixels",
    "--resolutions": "subset of the space's resolutions (default: all)",
    "--num-classes": "number of output classes",
    "--chunk": "items built, then timed together in interleaved rounds",
    "--no-progress": "no progress bar (plain lines when stdout is not a "
                     "terminal)",
    "--out": "file to write",
    "--samples": "number of random architectures",
    "--workdir": "run directory (created; an existing run is resumed)",
    "--steps": "training steps",
    "--learning-rate": "learning rate",
    "--predictor": "predictor directory (from `hwnas predictor train`)",
}

BY_COMMAND = {
    ("table retime", "--timer"): "clock to read: wall or cpu (process CPU "
                                 "time)",
    ("table import", "--from"): "format of the file to import",
    ("table import", "--device"): "device name recorded in the header",
    ("table import", "--precision"): "precision recorded in the header",
    ("table export-csv", "table"): "table name or file",
    ("table validate", "--samples"): "random whole networks to time",
    ("predictor train", "--samples"): "architectures evaluated with the "
                                      "supernet to train on",
    ("predictor train", "--ensemble"): "members of the predictor ensemble",
    ("predictor train", "--val-fraction"): "share of the samples held out",
    ("predictor eval", "--history"): "a search's history.jsonl to score the "
                                     "predictor on",
    ("search", "--evaluator"): "accuracy from the supernet (--supernet) or "
                               "a trained predictor (--predictor)",
    ("search", "--objective"): "constraint (best accuracy under "
                               "--target-ms), reward (MnasNet soft reward) "
                               "or pareto (front over every cost)",
    ("search", "--workdir"): "search directory (resumed when it holds a "
                             "run)",
    ("export", "--eval-split"): "split the accuracy is measured on",
    ("export", "--eval-samples"): "inputs the accuracy is measured on",
    ("export", "--latency-repeats"): "timed runs of each exported model",
    ("export", "--seed"): "seed of random weights and data sampling",
    ("quickstart", "--seed"): "seed of the supernet, search and export",
    ("arch sample", "--seed"): "seed of the random architecture",
}


def fill(parser: argparse.ArgumentParser, path: str = "") -> None:
  """Gives every flag of `parser` (and its subcommands) a help text."""
  for action in parser._actions:  # pylint: disable=protected-access
    if isinstance(action, argparse._SubParsersAction):  # pylint: disable=protected-access
      for name, sub in action.choices.items():
        fill(sub, f"{path} {name}".strip())
      continue
    if action.help or isinstance(action, argparse._HelpAction):  # pylint: disable=protected-access
      continue
    flag = action.option_strings[0] if action.option_strings else \
        action.dest
    text = BY_COMMAND.get((path, flag)) or BY_FLAG.get(flag)
    if text is None:
      continue
    d = action.default
    if not (d is None or d is False or d is argparse.SUPPRESS
            or d == [] or d == ""):
      text += " (default: %(default)s)"
    action.help = text


def deprecated(old: str, new: str) -> None:
  """One line on stderr: an old spelling still works, the new one is
  `new` (the convention: `--table T`, `--arch A`, `--report-json FILE`)."""
  import sys  # pylint: disable=g-import-not-at-top
  print(f"note: `{old}` is deprecated; use `{new}`", file=sys.stderr)
