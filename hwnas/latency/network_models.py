"""Table kinds: the whole-network model a latency table's header names.

A table header's `network_model.kind` is looked up in `NETWORK_MODELS`,
the one explicit mapping (nothing registers itself on import). The kind
adds whole-network terms to the per-layer sum and, where it has one, an
uncertainty band. `hwnas.latency` re-exports this mapping.

This module imports no table code, so `hwnas.latency.table` can use it
without an import cycle.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

from hwnas.edgetpu import calibration
from hwnas.edgetpu import cost_model as _edgetpu
from hwnas.latency.table_schema import TableError
from hwnas.netspec import NetSpec

NetworkModelFn = Callable[[NetSpec, Mapping[str, Any]], Mapping[str, float]]


class NetworkModel(NamedTuple):
  """Whole-network terms of a table kind, and optionally its band.

  `terms(spec, params) -> {term: ms}` adds to the per-layer sum;
  `band(spec, network_model, central_ms) -> (low, high) | None` is the
  uncertainty band of the prediction (None: the kind has none).
  """

  terms: NetworkModelFn
  band: Callable[..., Any] | None = None


def network_band(spec: NetSpec, network_model: Mapping[str, Any],
                 central_ms: float) -> tuple[float, float] | None:
  """(low, high) ms of `spec` for a table header's `network_model`, or
  None when the header carries no band (tables made before it existed).
  It is `NETWORK_MODELS['edgetpu-model'].band`."""
  d = network_model.get("band")
  if not d:
    return None
  prm = network_model.get("params", {})
  return calibration.predict_band(
      spec, _band_of(d), link=str(prm.get("link", "usb3")),
      clock=str(prm.get("clock", "max")),
      harness=str(prm.get("harness", _edgetpu.DEFAULT_HARNESS)), central_ms=central_ms)


_BAND_CACHE: list[Any] = []   # [(header band dict, Band)] of the last header


def _band_of(d: Mapping[str, Any]):
  """The Band of a header's band dict, parsed once per loaded header."""
  if not _BAND_CACHE or _BAND_CACHE[0][0] is not d:
    _BAND_CACHE[:] = [(d, calibration.Band.from_dict(d))]
  return _BAND_CACHE[0][1]



# header.network_model.kind -> its NetworkModel.
NETWORK_MODELS: dict[str, NetworkModel] = {
    _edgetpu.MODEL_NAME: NetworkModel(_edgetpu.network_terms, network_band),
}


def network_model(kind: str, path: str = "") -> NetworkModel:
  """The NetworkModel of a table header's `network_model.kind`."""
  if kind not in NETWORK_MODELS:
    raise TableError(
        f"{path or '<table>'}: header.network_model.kind: {kind!r} is not a "
        f"known network model; known: {', '.join(sorted(NETWORK_MODELS))} "
        "(hwnas.latency.NETWORK_MODELS)")
  return NETWORK_MODELS[kind]
