"""Locates the data shipped with hwnas (search spaces, latency tables).

In a source checkout or editable install the folders live at the top of the
repository (`search_spaces/`, `latency_tables/`); a wheel built from
pyproject.toml carries them inside the package as `hwnas/_data/<name>/`.
Both layouts are searched, the installed one first.
"""

from __future__ import annotations

import os
import pathlib

_PKG = pathlib.Path(__file__).resolve().parent


def data_dir(name: str) -> pathlib.Path:
  """Returns the directory of shipped data `name` ('search_spaces', ...)."""
  env = os.environ.get("HWNAS_" + name.upper())
  candidates = [pathlib.Path(env)] if env else []
  candidates += [_PKG / "_data" / name, _PKG.parent / name]
  for c in candidates:
    if c.is_dir():
      return c
  return candidates[-1]


def search_spaces_dir() -> pathlib.Path:
  return data_dir("search_spaces")


def latency_tables_dir() -> pathlib.Path:
  return data_dir("latency_tables")


def resolve(name_or_path: str | os.PathLike[str], kind: str,
            suffixes: tuple[str, ...]) -> pathlib.Path:
  """Resolves a user argument: an existing path, or a shipped data name.

  Args:
    name_or_path: a file path, or a bare name such as 'mobilenetv3'.
    kind: the data folder to search ('search_spaces', 'latency_tables').
    suffixes: file suffixes to try after a bare name ('.yaml', '.json').

  Returns:
    The path (which may not exist if nothing matched; callers report that).
  """
  p = pathlib.Path(name_or_path)
  if p.exists():
    return p
  base = data_dir(kind)
  for suffix in ("",) + suffixes:
    q = base / (str(name_or_path) + suffix)
    if q.is_file():
      return q
  return p
