"""`hwnas table calibrate`: adapt a measured table to this host, safely.

A CPU table's milliseconds hold on the machine that measured it; on another
host only the ranking transfers. `calibrate` times N random whole networks
here (default 20), fits `measured ~= a * sum(entries) + b + c * layers`
on them (`fidelity.fit_linear_calibration`, whole-network terms of the
table kept as they are), and scores the table as is and calibrated on
further held-out networks (default 30). `harm` says why a calibration must
not be stored (`fidelity.harm`): it worsens held-out fidelity (MAPE up,
or fewer networks within +-10%) or makes a prediction non-positive.
`apply` never stores a refused calibration; `drop` removes one.

`host_warning` is the one-line warning that a measured CPU table was made
on another CPU than the running one, naming the command that adapts it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from hwnas import arch as arch_lib
from hwnas import errors
from hwnas.latency import fidelity
from hwnas.latency import table as tbl
from hwnas.latency.timing import cpu_model, load_note
from hwnas.space import SearchSpace

DEFAULT_NETWORKS = 20
DEFAULT_HOLDOUT = 30
# Backends whose timings belong to the host CPU that ran them.
HOST_BOUND_BACKENDS = ("xla", "litert", "litert-int8")


@dataclasses.dataclass(frozen=True)
class HostCalibration:
  """A calibration fitted on this host and its held-out score.

  Attributes:
    table, space, host: what was calibrated, on which CPU.
    fit_archs, holdout_archs: the networks timed (fit on the first).
    measured_ms: timings, fit networks then held-out ones.
    calibration: the fitted header calibration (also when refused).
    before, after: held-out metrics of the table as is / calibrated.
    min_prediction_ms: smallest calibrated prediction checked.
    refused: why the calibration must not be stored (None: it may).
    load: machine load at start and end.
  """

  table: str
  space: str
  host: str
  fit_archs: tuple[str, ...]
  holdout_archs: tuple[str, ...]
  measured_ms: tuple[float, ...]
  calibration: dict[str, Any]
  before: dict[str, float]
  after: dict[str, float]
  min_prediction_ms: float
  refused: str | None
  load: str

  @property
  def accepted(self) -> bool:
    return self.refused is None

  def to_dict(self) -> dict[str, Any]:
    d = dataclasses.asdict(self)
    d["accepted"] = self.accepted
    return d


def _predict(table: tbl.LatencyTable, cal: dict[str, Any], specs) -> np.ndarray:
  sums = np.array([table.layer_sum(s) for s in specs])
  nl = np.array([len(s.layers) for s in specs])
  terms = np.array([math.fsum(table.network_terms(s).values()) for s in specs])
  return fidelity.apply_calibration(cal, sums, nl) + terms


def calibrate(table: tbl.LatencyTable, space: SearchSpace, *,
              networks: int = DEFAULT_NETWORKS,
              holdout: int = DEFAULT_HOLDOUT, rng: np.random.Generator,
              warmup: int = 10, repeats: int = 50,
              rounds: int | None = None, chunk: int = 0,
              progress: bool = False, backend=None) -> HostCalibration:
  """Times `networks` + `holdout` random networks here and fits a
  calibration on the first `networks` (see the module docstring).

  Args:
    table: a measured table (its backend and settings are reused).
    space: the space to sample networks from.
    networks: networks to fit on (>= 3).
    holdout: further networks to score on (>= 3).
    rng: sampling generator.
    warmup, repeats, rounds, chunk, progress, backend: as for
      `fidelity.validate`.

  Returns:
    The HostCalibration; `refused` says why it must not be stored.
  """
  if networks < 3 or holdout < 3:
    raise errors.HwnasError(
        f"--networks {networks} / --holdout {holdout}: need at least 3 "
        "networks to fit on and 3 to score on (defaults "
        f"{DEFAULT_NETWORKS} and {DEFAULT_HOLDOUT})")
  archs = fidelity.sample_archs(space, networks + holdout, rng,
                                fidelity.table_resolutions(table, space))
  if len(archs) < networks + holdout:
    raise errors.HwnasError(
        f"space {space.id} has only {len(archs)} distinct networks at the "
        f"table's resolutions; lower --networks / --holdout")
  specs = [arch_lib.decode(space, a) for a in archs]
  missing = table.missing(l for s in specs for l in s.layers)
  if missing:
    raise tbl.TableError(table.missing_message(
        missing, f"the {len(specs)} sampled networks"))
  h = table.header
  opts = {"timer": h["timer"]} if h.get("timer", "wall") != "wall" else {}
  from hwnas.latency.backend_kinds import get_backend  # pylint: disable=g-import-not-at-top
  be = backend or get_backend(table.backend, threads=h["threads"], **opts)
  load_start = load_note()
  timings = fidelity.time_networks(be, archs, specs, h, warmup, repeats,
                                    rounds, chunk, progress)
  meas = np.array([t.latency_ms for t in timings])
  fit, hold = slice(0, networks), slice(networks, None)
  terms = np.array([math.fsum(table.network_terms(s).values())
                    for s in specs])
  sums = np.array([table.layer_sum(s) for s in specs])
  nl = np.array([len(s.layers) for s in specs])
  cal = fidelity.fit_linear_calibration(sums[fit], nl[fit],
                                        meas[fit] - terms[fit])
  cal.update(host=cpu_model(), networks=networks)
  as_is = np.array([table.predict(s) for s in specs])
  ours = _predict(table, cal, specs)
  smallest = arch_lib.decode(space, dataclasses.replace(
      arch_lib.smallest(space),
      resolution=min(fidelity.table_resolutions(table, space))))
  checked = np.append(ours, _predict(table, cal, [smallest]))
  before = fidelity.metrics(as_is[hold], meas[hold])
  after = fidelity.metrics(ours[hold], meas[hold])
  why = ("the fitted slope a is not positive" if cal["a"] <= 0 else
         fidelity.harm(before, after, checked.tolist()))
  names = [arch_lib.to_string(a) for a in archs]
  return HostCalibration(
      table=table.path, space=space.id, host=cpu_model(),
      fit_archs=tuple(names[fit]), holdout_archs=tuple(names[hold]),
      measured_ms=tuple(meas.tolist()), calibration=cal, before=before,
      after=after, min_prediction_ms=float(checked.min()), refused=why,
      load=f"{load_start}; {load_note().replace('at start', 'at end')}")


def apply(table: tbl.LatencyTable, result: HostCalibration
          ) -> tbl.LatencyTable:
  """The table with `result`'s calibration and its held-out score.

  Raises:
    HwnasError: when the calibration was refused (it is never stored).
  """
  if not result.accepted:
    raise errors.HwnasError(
        f"{table.path}: not storing the calibration: {result.refused}")
  cal = dict(result.calibration)
  cal["holdout"] = {"n": result.after["n"],
                    "as_is": fidelity.json_safe(result.before),
                    "calibrated": fidelity.json_safe(result.after)}
  cal["load"] = result.load
  return table.with_header(calibration=cal)


def drop(table: tbl.LatencyTable) -> tbl.LatencyTable:
  """The table without a calibration (predictions are the plain sums plus
  whole-network terms)."""
  if table.calibration is None:
    raise errors.HwnasError(f"{table.path}: has no calibration to drop")
  header = {k: v for k, v in table.header.items() if k != "calibration"}
  return tbl.LatencyTable(header, dict(table.entries), table.path)


def host_warning(table: tbl.LatencyTable, space: str = "S") -> str | None:
  """A one-line warning when a measured CPU table was made (and not
  calibrated) on another CPU than this one, or None."""
  if (table.provenance.get("kind") != "measured"
      or table.backend not in HOST_BOUND_BACKENDS):
    return None
  here = cpu_model()
  cal = table.calibration or {}
  if table.header.get("device") == here or cal.get("host") == here:
    return None
  return (f"warning: {table.path or '<table>'} was measured on "
          f"{table.header.get('device')!r}, this host is {here!r}: CPU "
          "latencies do not transfer between hosts (their ranking does); "
          f"adapt the table here with `hwnas table calibrate --table "
          f"{table.path or 'T'} --space {space}`")


# Tables already warned about in this process: a command that loads a
# table several times (search, then export, in the quickstart) warns once.
_WARNED: set[str] = set()


def warn_if_other_host(table: tbl.LatencyTable, space: str = "S") -> bool:
  """Prints `host_warning` to stderr once per table and process.

  Returns:
    Whether the table is from another host (warned now or before).
  """
  import sys  # pylint: disable=g-import-not-at-top
  w = host_warning(table, space)
  if w is None:
    return False
  if table.path not in _WARNED:
    _WARNED.add(table.path)
    print(w, file=sys.stderr)
  return True
