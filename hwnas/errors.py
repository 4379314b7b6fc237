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
