"""Row-stationary mapping of one convolution and its access counts.

One convolution (`ConvShape`: batch N, G groups of M filters over C
channels, input H x W, kernel R x S, stride U, output E x F, in the Eyeriss
paper's notation) is mapped the way Eyeriss maps it (Chen et al., ISCA
2016 / JSSC 2017):

* A PE computes a 1-D convolution: a filter row of S taps over an ifmap
  row of W values (padded), producing an ofmap row of F psums.
* A *PE set* of R rows x e columns computes e ofmap rows of one 2-D
  convolution: PE (i, j) holds filter row i and convolves it with ifmap row
  j*U + i, producing a row of psums that flows up the column and sums.
  Filter rows are reused across a PE row (multicast), ifmap rows
  diagonally, psums vertically. E is strip-mined into ceil(E / cols)
  strips of e <= cols columns; a kernel taller than the array is folded
  into row chunks whose psums meet in the global buffer (GLB).
* A 1-D convolution (a time series: H = R = E = 1, W = T, S = k,
  F = T_out) has sets of one PE, which the replication below fills with
  channels, filters and groups.
* Sets that fit the array are replicated: `rc` sets over channels (their
  psums add up across sets) and `rm` over filters (they share the ifmap);
  groups (depthwise) fill the sets left over (parallel, no shared data).
* Each PE interleaves `q` channels and `p` filters in its scratch pads:
  p*q*S filter words, q*S ifmap words (a sliding window), p psums.
* A *pass* handles `nb` images, p*rm filters and q*rc channels. The GLB
  holds the pass's ifmap tile and its psums; psums return to the GLB
  between channel passes and never spill to DRAM. When the ifmaps of all
  channels of a strip fit beside the psums they stay in the GLB across
  filter passes (read from DRAM once); otherwise they are re-read from DRAM
  for every filter pass. Filters stream from DRAM straight to the PEs
  (once per strip and image chunk) and are not stored in the GLB.

Counted accesses (words), by level and data type:

* RF: per MAC one filter read, one ifmap read, one psum read and one psum
  write (4 per MAC; deliveries into the RF are charged to the NoC). With
  zero gating (`Accelerator.zero_gating`) a zero ifmap value costs only its
  own read: no filter read, MAC or psum update.
* NoC: every word moved GLB/DRAM -> PE or PE -> PE: ifmap rows to each
  PE that needs them (R*E rows of W per channel and image, once per filter-set
  and filter pass), filter rows to the e PEs of a set row, psums up a
  column (R-1) and across stacked channel sets (rc-1), into and out of the
  array per channel pass.
* GLB: ifmap tiles read once per filter pass and written once per DRAM
  read; psums written once per channel pass, read back before the next
  and once more for the write-back to DRAM (2 x kc per output).
* DRAM: ifmaps (once, or once per filter pass), filters (once per strip
  and image chunk), ofmaps written once. With run-length compression on
  (`Accelerator.rlc`), feature-map traffic shrinks to (1 - zeros) x 4/3
  of its words (Eyeriss packs three 5-bit-run + 16-bit-value pairs in 64
  bits), never above its raw size.

The mapping search (`map_conv`) enumerates every legal (p, q, rc, rm, nb)
with numpy and keeps the lowest energy; ties go to fewer cycles. Latency
in cycles assumes one MAC per PE per cycle (S*F per filter row, channel
and image) and no stall for DRAM: a second, rough estimate from
utilisation, not a timing model.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from hwnas.energy.accelerator import Accelerator

KINDS = ("ifmap", "filter", "psum")
LEVELS = ("dram", "glb", "noc", "rf")
RLC_WORDS_PER_NONZERO = 4 / 3


@dataclasses.dataclass(frozen=True)
class ConvShape:
  """One (grouped) convolution at a batch size.

  `h` x `w` is the unpadded input, `r` x `s` the kernel, `e` x `f` the
  output; the zero padding is whatever makes the output `e` x `f` (SAME
  convolutions: ceil(h / u) x ceil(w / u)). Left at 0, `w`, `s` and `f`
  make the shape square (`h`, `r`, `e`); a 1-D convolution over T samples
  with k taps is h = r = 1, w = T, s = k. `zeros_in` and `zeros_out` are
  the fractions of zero activations in the ifmap and ofmap, used only by
  run-length compression.
  """

  n: int          # batch
  g: int          # groups
  m: int          # filters per group
  c: int          # channels per group
  h: int          # input height (unpadded)
  r: int          # kernel height
  u: int = 1      # stride (both directions)
  e: int = 0      # output height (0: SAME, ceil(h / u))
  zeros_in: float = 0.0
  zeros_out: float = 0.0
  op: str = "mac"
  w: int = 0      # input width (0: h)
  s: int = 0      # kernel width (0: r)
  f: int = 0      # output width (0: e if square, else SAME, ceil(w / u))

  def __post_init__(self):
    square = self.w in (0, self.h) and self.s in (0, self.r)
    if self.e == 0:
      object.__setattr__(self, "e", -(-self.h // self.u))
    if self.w == 0:
      object.__setattr__(self, "w", self.h)
    if self.s == 0:
      object.__setattr__(self, "s", self.r)
    if self.f == 0:
      object.__setattr__(self, "f", self.e if square else
                         -(-self.w // self.u))

  @property
  def padded(self) -> int:
    """Input rows the output needs, padding included."""
    return (self.e - 1) * self.u + self.r

  @property
  def padded_w(self) -> int:
    """Input columns the output needs, padding included."""
    return (self.f - 1) * self.u + self.s

  @property
  def macs(self) -> int:
    return (self.n * self.g * self.m * self.c * self.e * self.f * self.r *
            self.s)


@dataclasses.dataclass(frozen=True)
class Mapping:
  """The chosen row-stationary mapping (see the module docstring)."""

  strips: int      # S: ofmap row strips
  width: int       # e: PE columns of a set
  height: int      # rows of a set (R, or R / row folds)
  row_folds: int
  p: int           # filters per PE
  q: int           # channels per PE
  rc: int          # sets over channels
  rm: int          # sets over filters
  rs: int          # strips run side by side
  rg: int          # groups run side by side
  nb: int          # images per pass
  ifmap_resident: bool


@dataclasses.dataclass(frozen=True)
class ConvEnergy:
  """Access counts, energy and cycles of one mapped convolution."""

  shape: ConvShape
  mapping: Mapping
  accesses: dict[str, dict[str, float]]   # level -> kind -> words
  macs: int
  cycles: float
  energy: dict[str, float]                # level (+ 'mac') -> normalised
  pes: int = 1                            # PEs of the array

  @property
  def total(self) -> float:
    """Normalised energy (units of one MAC)."""
    return math.fsum(self.energy.values())

  @property
  def utilisation(self) -> float:
    """MACs per PE-cycle (1.0: every PE busy every cycle)."""
    return 0.0 if not self.cycles else self.macs / (self.cycles * self.pes)

  def level(self, name: str) -> float:
    return math.fsum(self.accesses[name].values())


def _rlc(zeros: float) -> float:
  return min(1.0, RLC_WORDS_PER_NONZERO * (1.0 - zeros))


def _grid(shape: ConvShape, acc: Accelerator):
  """Every legal mapping of `shape` as arrays, plus the fixed geometry."""
  r, e_out = shape.r, shape.e
  folds = -(-r // acc.pe_rows)
  height = -(-r // folds)
  strips = -(-e_out // acc.pe_cols)
  width = -(-e_out // strips)
  nsets = (acc.pe_rows // height) * (acc.pe_cols // width)
  ps = np.arange(1, min(acc.rf_psum, shape.m) + 1)
  qs = np.arange(1, max(1, min(acc.rf_ifmap // shape.s, shape.c)) + 1)
  rcs = np.arange(1, min(nsets, shape.c) + 1)
  rss = np.arange(1, min(nsets, strips) + 1)
  nbs = np.array([d for d in range(1, shape.n + 1) if shape.n % d == 0])
  p, q, rc, rs, nb = (a.ravel() for a in np.meshgrid(
      ps, qs, rcs, rss, nbs, indexing="ij"))
  ok = ((p * q * shape.s <= acc.rf_filter) | ((p == 1) & (q == 1)))
  ok &= rc <= np.ceil(shape.c / q)   # no set without a channel
  ok &= rc * rs <= nsets
  p, q, rc, rs, nb = p[ok], q[ok], rc[ok], rs[ok], nb[ok]
  # Filter sets fill the sets left (more share each ifmap read).
  rm = np.minimum(nsets // (rc * rs), np.ceil(shape.m / p)).astype(np.int64)
  return dict(p=p, q=q, rc=rc, rm=rm, rs=rs, nb=nb), (
      folds, height, strips, width, nsets)


def _counts(shape: ConvShape, acc: Accelerator, cand, geom):
  """Access counts (arrays over candidates) and cycles."""
  folds, height, strips, width, nsets = geom
  n, g, m, c, r, u, e_out = (shape.n, shape.g, shape.m, shape.c, shape.r,
                             shape.u, shape.e)
  f_out = shape.f                 # ofmap row length (F; E for square)
  wd_w = shape.padded_w           # padded ifmap row length
  p, q, rc, rm, rs, nb = (cand[k].astype(np.float64) for k in
                          ("p", "q", "rc", "rm", "rs", "nb"))
  wd = shape.padded
  sum_rows = (e_out - strips) * u + strips * r      # over all strips
  kc = np.ceil(c / (q * rc)) * folds
  km = np.ceil(m / (p * rm))
  kn = np.ceil(n / nb)
  steps = np.ceil(strips / rs)            # strip groups run in sequence
  group_rows = np.minimum(wd, (rs * width - 1) * u + r)
  psum_tile = nb * p * rm * rs * width * f_out
  tile = nb * q * rc * group_rows * wd_w
  fits = psum_tile + tile <= acc.glb_words
  resident = psum_tile + nb * c * group_rows * wd_w <= acc.glb_words
  out = n * m * e_out * f_out
  weights = m * c * r * shape.s
  raw_ifmap = n * c * shape.h * shape.w * min(1.0, sum_rows / wd)
  ifmap_dram = raw_ifmap * np.where(resident, 1.0, km)
  ifmap_glb = n * c * wd_w * sum_rows * km + ifmap_dram
  ifmap_noc = n * c * r * e_out * wd_w * rm * km
  filter_dram = weights * steps * kn
  filter_noc = weights * e_out * kn
  psum_glb = out * 2 * kc
  psum_noc = out * kc * (height - 1 + rc - 1) + out * (2 * kc - 1)
  macs = shape.macs // g
  gate = 1.0 - shape.zeros_in if acc.zero_gating else 1.0
  zin = _rlc(shape.zeros_in) if acc.rlc else 1.0
  zout = _rlc(shape.zeros_out) if acc.rlc else 1.0
  per = np.ones_like(p)   # a count that is the same for every candidate
  counts = {
      "dram": {"ifmap": ifmap_dram * zin, "filter": filter_dram,
               "psum": out * zout * per},
      "glb": {"ifmap": ifmap_glb, "filter": 0 * per, "psum": psum_glb},
      "noc": {"ifmap": ifmap_noc, "filter": filter_noc, "psum": psum_noc},
      "rf": {"ifmap": macs * per, "filter": gate * macs * per,
             "psum": 2.0 * gate * macs * per},
  }
  rg = np.maximum(1, nsets // (rc * rm * rs))
  rg = np.minimum(rg, g)
  cycles = (np.ceil(g / rg) * steps * kn * km * kc * nb * p * q * shape.s *
            f_out)
  total = {lv: {k: v * g for k, v in d.items()} for lv, d in counts.items()}
  return total, cycles, fits, resident, rg


def _energy(acc: Accelerator, accesses, macs: float, op: str,
            gate: float = 1.0):
  costs = acc.costs
  out = {lv: costs[lv] * sum(accesses[lv].values()) for lv in LEVELS}
  out["mac"] = costs["mac"] * acc.op_cost(op) * macs * gate
  return out


def active_pes(shape: ConvShape, cand, geom) -> np.ndarray:
  """PEs a candidate keeps busy (one group; the rest of the array may
  run other groups)."""
  _, height, _, width, _ = geom
  cols = np.minimum(shape.e, cand["rs"] * width)
  return height * cols * cand["rc"] * cand["rm"]


def map_conv(shape: ConvShape, acc: Accelerator, *,
             pes: int | None = None) -> ConvEnergy:
  """The lowest-energy legal row-stationary mapping of `shape` on `acc`.

  Candidates whose pass does not fit the global buffer are dropped; if
  none fits (a layer far larger than the buffer), the candidate with the
  smallest pass is kept, its ifmaps re-read from DRAM per filter pass.

  Args:
    shape: the convolution.
    acc: the accelerator.
    pes: keep only mappings that keep exactly this many PEs busy (to
      reproduce a chip's published mapping); None: any.
  """
  cand, geom = _grid(shape, acc)
  if pes is not None:
    keep = active_pes(shape, cand, geom) == pes
    if not keep.any():
      raise ValueError(f"no mapping of {shape} keeps {pes} PEs busy")
    cand = {k: v[keep] for k, v in cand.items()}
  accesses, cycles, fits, resident, rg = _counts(shape, acc, cand, geom)
  gate = 1.0 - shape.zeros_in if acc.zero_gating else 1.0
  energy = _energy(acc, accesses, shape.macs, shape.op, gate)
  total = sum(energy.values())
  if not fits.any():
    fits = np.zeros_like(fits)
    fits[int(np.argmin(cand["nb"] * cand["p"] * cand["q"]))] = True
  total = np.where(fits, total, np.inf)
  best = int(np.lexsort((cycles, total))[0])
  folds, height, strips, width, _ = geom
  mapping = Mapping(strips, width, height, folds, int(cand["p"][best]),
                    int(cand["q"][best]), int(cand["rc"][best]),
                    int(cand["rm"][best]), int(cand["rs"][best]),
                    int(rg[best]),
                    int(cand["nb"][best]), bool(resident[best]))
  pick = lambda v: float(v[best]) if np.ndim(v) else float(v)
  return ConvEnergy(
      shape, mapping,
      {lv: {k: pick(v) for k, v in d.items()} for lv, d in accesses.items()},
      shape.macs, float(cycles[best]),
      {k: pick(v) for k, v in energy.items()}, acc.num_pes)
