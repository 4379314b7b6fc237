"""User-facing errors: one clear line naming the file, the key and the fix.

Library code raises `HwnasError` (or a subclass) for anything a user can fix:
bad files, impossible targets, missing table entries. The CLI prints
`error: <message>` and exits with status 2, never a traceback.
"""

from __future__ import annotations


class HwnasError(Exception):
  """An error caused by user input; its message is meant to be shown as is."""


class SpaceError(HwnasError):
  """A search-space file or an architecture does not validate."""


class SpecError(HwnasError):
  """A network-spec file or value does not validate."""


def where(path: object, key: str | None = None) -> str:
  """Formats a `file: key` location prefix for error messages."""
  loc = str(path) if path is not None else "<value>"
  return f"{loc}: {key}" if key else loc


def positive(value: object, flag: str, *, zero_ok: bool = False) -> object:
  """`value` if it is a positive integer (or 0 with `zero_ok`), else a
  HwnasError naming the flag: `--repeats 0: must be a positive integer`."""
  low = 0 if zero_ok else 1
  if isinstance(value, bool) or not isinstance(value, int) or value < low:
    kind = "a non-negative" if zero_ok else "a positive"
    raise HwnasError(f"{flag} {value}: must be {kind} integer")
  return value


def read_text(path: object, *, what: str = "file") -> str:
  """The UTF-8 text of a user's file; one line naming it if it is not UTF-8
  or cannot be read."""
  import pathlib  # pylint: disable=g-import-not-at-top
  p = pathlib.Path(path)  # type: ignore[arg-type]
  try:
    return p.read_text(encoding="utf-8")
  except UnicodeDecodeError as e:
    raise HwnasError(f"{p}: not UTF-8 text (byte {e.start}: "
                     f"{e.object[e.start:e.start + 1]!r}); is this the right "
                     f"{what}? Save it as UTF-8") from None
  except IsADirectoryError:
    raise HwnasError(f"{p}: is a directory, not a {what}") from None
  except OSError as e:
    raise HwnasError(f"{p}: cannot read the {what} ({e.strerror})") from None
