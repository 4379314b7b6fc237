"""Accuracy predictor (Once-for-All style): an MLP on `arch.encode` vectors.

Trained on (architecture, accuracy) pairs, e.g. a search's history.jsonl or
supernet evaluations of random architectures. An ensemble of independently
initialised MLPs (deep ensembles) gives an uncertainty: the spread of the
members' predictions. Quality is reported as rank correlation (Spearman,
Kendall) on held-out architectures, which is what search needs.

`fit_ridge` is the cheap variant the surrogate-guided search refits every
generation: a bootstrap ensemble of ridge regressions (an MLP without hidden
layers, so `predict`, `save` and `load` serve both), fitted in closed form
with numpy in milliseconds, its penalty chosen by exact leave-one-out error.

Saved as a directory: predictor.json (settings, normalisation, metrics) and
weights.npz (arrays only; loaded with allow_pickle=False).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hwnas import arch as arch_lib
from hwnas import errors
from hwnas.arch import ArchChoice
from hwnas.space import SearchSpace

_SCHEMA = "hwnas/predictor@1"
CONFIG = "predictor.json"
WEIGHTS = "weights.npz"


@dataclasses.dataclass(frozen=True)
class Predictor:
  """A trained MLP ensemble; `weights` are [ensemble, ...] numpy arrays.

  Attributes:
    space: id of the space whose encoding it reads (e.g. 'tiny@1').
    hidden: hidden layer widths.
    weights: (W_0, b_0, W_1, b_1, ...), each with a leading ensemble axis.
    y_mean: accuracy normalisation mean.
    y_std: accuracy normalisation scale.
    metrics: held-out metrics from training.
  """

  space: str
  hidden: tuple[int, ...]
  weights: tuple[np.ndarray, ...]
  y_mean: float
  y_std: float
  metrics: dict[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def ensemble(self) -> int:
    return int(self.weights[0].shape[0])


def _init(key, sizes: Sequence[int], ensemble: int):
  import jax
  import jax.numpy as jnp
  params = []
  for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
    key, k = jax.random.split(key)
    w = jax.random.normal(k, (ensemble, fan_in, fan_out)) * jnp.sqrt(
        2.0 / fan_in)
    params += [w, jnp.zeros((ensemble, fan_out))]
  return params


def _forward(params, x):
  """[ensemble] params, x [n, d] -> [ensemble, n] normalised predictions."""
  import jax
  h = x[None]
  n = len(params) // 2
  for i in range(n):
    h = h @ params[2 * i] + params[2 * i + 1][:, None, :]
    if i < n - 1:
      h = jax.nn.relu(h)
  return h[..., 0]


def rank_metrics(y_true: Sequence[float],
                 y_pred: Sequence[float]) -> dict[str, float]:
  """Spearman rho, Kendall tau and RMSE between truth and prediction."""
  from scipy import stats
  t, p = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
  return {"spearman": float(stats.spearmanr(t, p).statistic),
          "kendall": float(stats.kendalltau(t, p).statistic),
          "rmse": float(np.sqrt(np.mean((t - p) ** 2))), "n": int(len(t))}


def _fit(key, x, y, sizes, *, ensemble, steps, learning_rate, weight_decay):
  import jax
  import jax.numpy as jnp
  import optax
  from hwnas import optim
  params = _init(key, sizes, ensemble)
  # The optimiser of every hwnas run (AdamW, cosine decay to 0, no warm-up).
  # Every weight has a leading ensemble axis, so `optim.decay_mask` (rank
  # > 1) decays the biases too, as weight decay on an MLP this small should.
  tx = optim.build_optimizer(
      "adamw", optim.warmup_cosine(learning_rate, steps, 0, 0.0),
      momentum=0.0, nesterov=False, b1=0.9, b2=0.999,
      weight_decay=weight_decay, grad_clip=0.0)

  def loss_fn(p):
    return jnp.mean((_forward(p, x) - y[None]) ** 2) * ensemble

  def step(carry, _):
    p, s = carry
    loss, g = jax.value_and_grad(loss_fn)(p)
    u, s = tx.update(g, s, p)
    return (optax.apply_updates(p, u), s), loss

  (params, _), losses = jax.jit(
      lambda p: jax.lax.scan(step, (p, tx.init(p)), None, length=steps))(
          params)
  return [np.asarray(w) for w in params], float(losses[-1])


def heldout_split(x: np.ndarray, val_fraction: float, *, seed: int
                  ) -> tuple[np.ndarray, np.ndarray]:
  """(held-out rows, training rows) of encodings `x` [n, d], split by
  unique architecture: every row of one encoding lands on the same side, so
  a duplicate cannot score the predictor on what it was trained on.
  About `val_fraction` of the unique architectures are held out."""
  _, group = np.unique(x, axis=0, return_inverse=True)
  group = group.reshape(-1)
  order = np.random.default_rng([seed, 7]).permutation(int(group.max()) + 1)
  held = order[:int(round(len(order) * val_fraction))]
  is_val = np.isin(group, held)
  return np.flatnonzero(is_val), np.flatnonzero(~is_val)


def train(space: SearchSpace, archs: Sequence[ArchChoice],
          accuracies: Sequence[float], *, seed: int = 0,
          hidden: Sequence[int] = (128, 128), ensemble: int = 1,
          steps: int = 1500, learning_rate: float = 3e-3,
          weight_decay: float = 1e-4,
          val_fraction: float = 0.2) -> Predictor:
  """Trains a predictor; held-out metrics land in `Predictor.metrics`.

  Args:
    space: the space of `archs`.
    archs: architectures (duplicates are averaged away by the fit and
      never straddle the held-out split).
    accuracies: their accuracies.
    seed: seed of the split (numpy) and of the initialisation (JAX).
    hidden: hidden layer widths.
    ensemble: number of independently initialised members.
    steps: full-batch AdamW steps (cosine-decayed learning rate, built by
      `hwnas.optim`).
    learning_rate: peak learning rate.
    weight_decay: AdamW weight decay.
    val_fraction: share of unique architectures held out for the metrics
      (0: none).

  Returns:
    The trained `Predictor` (fitted on the non-held-out part).
  """
  import jax
  if len(archs) != len(accuracies) or len(archs) < 5:
    raise errors.HwnasError(f"predictor: need >= 5 (arch, accuracy) pairs "
                            f"of equal count, got {len(archs)} and "
                            f"{len(accuracies)}")
  x = np.stack([arch_lib.encode(space, a) for a in archs])
  y = np.asarray(accuracies, np.float32)
  val, tr = heldout_split(x, val_fraction, seed=seed)
  y_mean, y_std = float(y[tr].mean()), float(y[tr].std() + 1e-8)
  sizes = [x.shape[1], *hidden, 1]
  weights, loss = _fit(jax.random.key(seed), x[tr], (y[tr] - y_mean) / y_std,
                       sizes, ensemble=ensemble, steps=steps,
                       learning_rate=learning_rate, weight_decay=weight_decay)
  p = Predictor(space.id, tuple(int(h) for h in hidden), tuple(weights),
                y_mean, y_std)
  metrics: dict[str, Any] = {"train": rank_metrics(
      y[tr], predict(p, space, [archs[i] for i in tr])[0]),
      "final_loss": loss, "ensemble": ensemble, "steps": steps}
  if len(val) >= 3:
    metrics["heldout"] = rank_metrics(
        y[val], predict(p, space, [archs[i] for i in val])[0])
  return dataclasses.replace(p, metrics=metrics)


class Encoder:
  """`arch.encode` for architectures known to be valid, without
  re-validating each one.

  The search encodes hundreds of candidates per generation, and
  `arch.encode`'s validation of every one of them dominated the
  predictor's time per generation. Same vector, same gene order
  (`feasibility.genes`).
  """

  def __init__(self, space: SearchSpace):
    from hwnas.search import feasibility
    self._get = feasibility.get
    self.size = arch_lib.encoding_size(space)
    self._genes, off = [], 0
    for g in feasibility.genes(space):
      opts = feasibility.options(space, g)
      if len(opts) > 1:
        self._genes.append((g, {v: off + i for i, v in enumerate(opts)}))
        off += len(opts)
    assert off == self.size, (off, self.size)

  def __call__(self, arch: ArchChoice) -> np.ndarray:
    out = np.zeros(self.size, np.float32)
    for g, index in self._genes:
      if g[0] == "block":
        _, s, j, field = g
        if j >= arch.depths[s] or (field != "type" and
                                   arch.blocks[s][j].type == "skip"):
          continue
      out[index[self._get(arch, g)]] = 1.0
    return out


_ALPHAS = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


def _svd(x: np.ndarray):
  """Thin SVD; LAPACK's default divide-and-conquer driver (gesdd) can fail
  to converge on rank-deficient one-hot data (seen in a mobilenetv3
  search), then the slower, more robust gesvd is used."""
  try:
    return np.linalg.svd(x, full_matrices=False)
  except np.linalg.LinAlgError:
    import scipy.linalg
    return scipy.linalg.svd(x, full_matrices=False, lapack_driver="gesvd")


def _ridge_path(x: np.ndarray, y: np.ndarray, alphas: Sequence[float]
                ) -> tuple[float, float]:
  """(alpha, loo error): the alpha of least exact leave-one-out error.

  One SVD of the centred data serves every alpha (the hat matrix of ridge
  with an unpenalised intercept is 1/n + U diag(s^2 / (s^2 + alpha)) U^T).
  """
  xc, yc = x - x.mean(0), y - y.mean()
  u, sv, _ = _svd(xc)
  uy = u.T @ yc
  best = None
  for alpha in alphas:
    shrink = sv ** 2 / (sv ** 2 + alpha)
    fit = u @ (shrink * uy)
    h = 1.0 / len(y) + (u ** 2) @ shrink
    err = float(np.mean(((yc - fit) / np.maximum(1.0 - h, 1e-9)) ** 2))
    if best is None or err < best[1] - 1e-12:
      best = (float(alpha), err)
  return best


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
  """[d + 1] ridge weights (intercept last, not penalised), via an SVD
  (cheap when there are fewer rows than features, as in a search)."""
  mx, my = x.mean(0), y.mean()
  u, sv, vt = _svd(x - mx)
  w = vt.T @ (sv / (sv ** 2 + alpha) * (u.T @ (y - my)))
  return np.concatenate([w, [my - mx @ w]])


def fit_ridge(space: SearchSpace, archs: Sequence[ArchChoice] | None,
              accuracies: Sequence[float], *, seed: int = 0,
              ensemble: int = 8, x: np.ndarray | None = None,
              alphas: Sequence[float] = _ALPHAS) -> Predictor:
  """A bootstrap ensemble of ridge regressions on `arch.encode` (numpy).

  Member 0 is fitted on all pairs, the others on bootstrap resamples; the
  spread of the members is the uncertainty. The penalty is the one of
  `alphas` with the lowest exact leave-one-out error on all pairs.
  Deterministic for the same inputs and `seed`.

  Args:
    space: the space of `archs`.
    archs: architectures (None if `x` is given).
    accuracies: their accuracies (at least 2).
    seed: seed of the bootstrap resamples.
    ensemble: number of members.
    x: [n, d] encodings of `archs` (saves encoding them again).
    alphas: candidate ridge penalties (on normalised targets).

  Returns:
    A `Predictor` with no hidden layers (`predict` works as for an MLP).
  """
  if x is None:
    x = np.stack([arch_lib.encode(space, a) for a in archs])
  x = np.asarray(x, np.float64)
  y = np.asarray(accuracies, np.float64)
  if len(y) < 2 or len(x) != len(y):
    raise errors.HwnasError(f"predictor: need >= 2 (arch, accuracy) pairs "
                            f"of equal count, got {len(x)} and {len(y)}")
  y_mean, y_std = float(y.mean()), float(y.std() + 1e-8)
  yn = (y - y_mean) / y_std
  # One BLAS thread: these matrices are small, and a threaded SVD of one
  # spends most of its time waiting for busy cores.
  import threadpoolctl
  with threadpoolctl.threadpool_limits(1, user_api="blas"):
    alpha, _ = _ridge_path(x, yn, alphas)
    rng = np.random.default_rng([seed, 11])
    members = [_ridge(x, yn, alpha)]
    for _ in range(ensemble - 1):
      idx = rng.integers(len(y), size=len(y))
      members.append(_ridge(x[idx], yn[idx], alpha))
  w = np.stack(members)                            # [ensemble, d + 1]
  weights = (w[:, :-1, None].astype(np.float32),
             w[:, -1:].astype(np.float32))
  return Predictor(space.id, (), weights, y_mean, y_std,
                   {"alpha": float(alpha), "ensemble": int(ensemble),
                    "n": int(len(y))})


def predict(predictor: Predictor, space: SearchSpace,
            archs: Sequence[ArchChoice] | None, *,
            x: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Mean and ensemble standard deviation of the predicted accuracy, [n].

  `x` ([n, d] encodings of `archs`) may be given instead of `archs`.
  """
  if predictor.space != space.id:
    raise errors.HwnasError(f"predictor was trained on space "
                            f"{predictor.space}, not {space.id}; train one "
                            "for this space (hwnas predictor train)")
  if x is None:
    x = np.stack([arch_lib.encode(space, a) for a in archs])
  h = np.asarray(x, np.float32)[None]
  n = len(predictor.weights) // 2
  for i in range(n):   # numpy: fast for search-sized batches, no compile
    h = h @ predictor.weights[2 * i] + predictor.weights[2 * i + 1][:, None]
    if i < n - 1:
      h = np.maximum(h, 0)
  out = h[..., 0] * predictor.y_std + predictor.y_mean   # [ensemble, n]
  return out.mean(0), out.std(0)


def make_evaluator(predictor: Predictor, space: SearchSpace) -> Callable[
    [list[ArchChoice]], tuple[list[float], list[dict[str, float]]]]:
  """An `evaluate_fn` for `hwnas.search.run`: (predicted accuracies, no
  other metrics)."""
  def evaluate_fn(archs: list[ArchChoice]
                  ) -> tuple[list[float], list[dict[str, float]]]:
    return ([float(v) for v in predict(predictor, space, archs)[0]],
            [{} for _ in archs])
  return evaluate_fn


def save(predictor: Predictor, path: str | pathlib.Path) -> None:
  """Writes predictor.json and weights.npz into directory `path`."""
  path = pathlib.Path(path)
  path.mkdir(parents=True, exist_ok=True)
  np.savez(path / WEIGHTS, **{f"w{i}": w for i, w in
                              enumerate(predictor.weights)})
  (path / CONFIG).write_text(json.dumps({
      "schema": _SCHEMA, "space": predictor.space,
      "hidden": list(predictor.hidden), "ensemble": predictor.ensemble,
      "num_weights": len(predictor.weights), "y_mean": predictor.y_mean,
      "y_std": predictor.y_std, "metrics": predictor.metrics}, indent=1)
                             + "\n")


def load(path: str | pathlib.Path) -> Predictor:
  """Loads a predictor directory written by `save`."""
  path = pathlib.Path(path)
  cfg_path = path / CONFIG
  if not cfg_path.is_file() or not (path / WEIGHTS).is_file():
    raise errors.HwnasError(f"{path}: not a predictor directory (needs "
                            f"{CONFIG} and {WEIGHTS}); train one with "
                            "hwnas predictor train")
  try:
    cfg = json.loads(cfg_path.read_text())
  except ValueError as e:
    raise errors.HwnasError(f"{cfg_path}: invalid JSON ({e})") from None
  if cfg.get("schema") != _SCHEMA:
    raise errors.HwnasError(f"{cfg_path}: schema {cfg.get('schema')!r} is "
                            f"not supported; expected {_SCHEMA!r}")
  with np.load(path / WEIGHTS, allow_pickle=False) as z:
    weights = tuple(z[f"w{i}"] for i in range(cfg["num_weights"]))
  return Predictor(cfg["space"], tuple(cfg["hidden"]), weights,
                   float(cfg["y_mean"]), float(cfg["y_std"]),
                   cfg.get("metrics", {}))


def pairs_from_history(paths: Sequence[str | pathlib.Path],
                       space: SearchSpace) -> tuple[list[ArchChoice],
                                                    list[float]]:
  """(architectures, accuracies) from one or more history.jsonl files.

  Accepts a file or a search workdir; a torn last line is skipped.
  """
  from hwnas.search import history
  archs, accs = [], []
  for p in paths:
    p = pathlib.Path(p)
    if p.is_dir():
      p = p / history.HISTORY
    if not p.is_file():
      raise errors.HwnasError(f"{p}: no such history file (give a "
                              f"{history.HISTORY} or a search workdir)")
    for r in history.read_file(p):
      if r.arch.space != space.name:
        raise errors.HwnasError(f"{p}: architecture {r.index} is from space "
                                f"{r.arch.space}, not {space.name}")
      archs.append(r.arch)
      accs.append(r.accuracy)
  return archs, accs
