"""Human-activity recognition with the 1-D `har` space on `watch`: its
latency tables, the quickstart, and a searched network beside published
HAR baselines trained with the same recipe and split.

Run (after `hwnas quickstart --space har --workdir W`; the training part
takes about 10 minutes per seed on 2 shared cores):

  python benchmarks/bench_har.py --quickstart W [--seeds 0 1 2]

Writes benchmarks/results/har.md.

Networks, all trained from scratch by `hwnas train`'s default recipe
(`hwnas/configs/train.py`: 1000 steps, batch 64, SGD-Nesterov lr 0.1, 50
warm-up steps then cosine, weight decay 4e-5, label smoothing 0.1, random
time-shift crops), on the training subjects 1-6 of `watch`, scored on the
test subjects 9-10 (773 windows):

- the quickstart's searched network (`W/search/best.json`);
- `MobileNetV2 1-D`: hwnas's MobileNetV2 template in the har space
  (`hwnas.hand_design`: ibn, kernel 3, expansion 6, no SE, ReLU, every
  stage at its deepest), the largest width x window-length member whose
  predicted latency is at or under the searched network's: a
  published design scaled to the same budget;
- `CNN (DeepConvLSTM without the LSTM)`: Ordonez & Roggen (2016)'s
  convolutional part, four 1-D convolutions of 64 filters, kernel 5,
  stride 1, ReLU (with BatchNorm here, as every hwnas conv), then global
  average pooling and the classifier in place of the two LSTM layers.

Latency: each network's whole full-int8 TFLite model, timed together on
one LiteRT thread in interleaved rounds (process CPU time), in this run;
and the litert-int8/har table's calibrated prediction where the network
is a member of the space.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import time

import numpy as np

from hwnas import arch as arch_lib
from hwnas import counting, data, hand_design
from hwnas import space as space_lib
from hwnas.latency import load_table, make_cost_fn
from hwnas.netspec import Layer, NetSpec

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "har.md"


def _cpu() -> str:
  for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
    if line.startswith("model name"):
      return line.split(":", 1)[1].strip()
  return "an unknown CPU"


def _load() -> str:
  return "load average " + "/".join(f"{x:.1f}" for x in os.getloadavg())


def deepconv_cnn(length: int = 128, channels: int = 6,
                 classes: int = 7) -> NetSpec:
  """DeepConvLSTM's convolutions (4 x 64 filters, kernel 5) + pool + fc."""
  layers, cin = [], channels
  for _ in range(4):
    layers.append(Layer("conv", length, cin, 64, kernel=5,
                        activation="relu", dims=1))
    cin = 64
  layers += [Layer("pool", length, 64, 64, dims=1),
             Layer("fc", 1, 64, classes, dims=1)]
  return NetSpec("deepconv_cnn", length, channels, tuple(layers))


# ---------------------------------------------------------------- tables --


def section_tables(s) -> list[str]:
  out = ["### Latency tables of the `har` space", ""]
  t = load_table("litert-int8/har")
  h = t.header
  f = h["fidelity"]
  out += [f"`litert-int8/har`: {len(t)} entries, {h['device']}, "
          f"{h['runtime_version']}, one thread, median of {h['repeats']} "
          f"runs, process CPU time; measured {h['date'][:10]} under "
          f"{h['load']} (this CPU, shared with other jobs: the milliseconds "
          "hold here only). Command: "
          f"`{h['provenance']['command']}`, then `hwnas table validate "
          "--table latency_tables/litert-int8/har.json --space har "
          "--samples 30 --rounds 10 --repeats 100 --fit-calibration` "
          f"(validation {f['load']}).", "",
          "| predictor | MAPE | ±5% | ±10% | Kendall τ | Spearman | n |",
          "|---|---:|---:|---:|---:|---:|---:|"]
  for name, key in (("sum of entries", "as_is"),
                    ("held-out half, sum", "holdout_as_is"),
                    ("held-out half, calibrated", "holdout_calibrated")):
    m = f[key]
    out.append(f"| {name} | {m['mape_pct']:.1f}% | {m['within_5_pct']:.0f}% "
               f"| {m['within_10_pct']:.0f}% | {m['kendall_tau']:.3f} | "
               f"{m['spearman_rho']:.3f} | {m['n']} |")
  c = h["calibration"]
  out += ["", f"Calibration (stored; predictions use it): measured ≈ "
          f"{c['a']:.3f} x sum + {c['b'] * 1e3:.2f} µs "
          f"{c['c_per_layer'] * 1e3:+.2f} µs x layers. The networks are "
          "tiny (5-100 µs), so the per-op overhead a layer timed on its "
          "own pays is a large share: the plain sum overestimates, in the "
          "right order.", ""]
  e = load_table("edgetpu-usb3/har")
  rng = np.random.default_rng(0)
  archs = [arch_lib.sample(rng, s) for _ in range(300)]
  fn, cpu = make_cost_fn(e, s), make_cost_fn(t, s)
  ms = np.array([fn(a) for a in archs])
  cms = np.array([cpu(a) for a in archs])
  from scipy import stats  # pylint: disable=g-import-not-at-top
  tau = stats.kendalltau(ms, cms).statistic
  out += [f"`edgetpu-usb3/har`: {len(e)} entries, estimated by the Edge "
          "TPU cost model (no device; docs/edgetpu.md). On 300 random "
          f"architectures: {ms.min():.3f} / {np.median(ms):.3f} / "
          f"{ms.max():.3f} ms (min / median / max); Kendall τ against the "
          f"litert-int8 table's prediction {tau:.2f}. These networks are "
          "100-1000x smaller than the model's calibration networks, so the "
          "estimate is mostly its fixed per-invoke and per-op terms.", ""]
  return out


# ------------------------------------------------------------ quickstart --


def section_quickstart(w: pathlib.Path) -> list[str]:
  q = json.loads((w / "quickstart.json").read_text())
  r = json.loads((w / "export" / "report.json").read_text())
  from hwnas import tflite  # pylint: disable=g-import-not-at-top
  int8 = (w / "export" / "model_int8.tflite").read_bytes()
  ops = tflite.op_counts(int8)
  ho = q["held_out"]
  secs = q["seconds"]
  out = ["### `hwnas quickstart --space har`", "",
         f"`hwnas quickstart --space har --workdir W --no-progress` "
         "(the space, the `watch` windows split by subject, the "
         "litert-int8/har table, target "
         f"{q['target_ms']} ms), from an empty workdir, on {_cpu()} shared "
         "with other jobs (load average 6-7 on 2 cores: an idle machine "
         "is several times faster).", "",
         "| stage | wall s |", "|---|---:|"]
  out += [f"| {k} | {v:.0f} |" for k, v in secs.items()]
  out += [f"| total | {sum(secs.values()):.0f} |", "",
          f"Best architecture `{q['arch']}`: supernet val accuracy "
          f"{q['accuracy']:.3f}, predicted {q['latency_ms'] * 1e3:.1f} µs "
          f"(target {q['target_ms'] * 1e3:.0f} µs). Export: "
          f"int8 TFLite {sum(ops.values())} ops, all int8 "
          f"(no float tensors: {not tflite.float_ops(int8)}): "
          + ", ".join(f"{k} x{v}" for k, v in sorted(ops.items()))
          + f"; input {r['input']['shape']}. {ho['line']}.", ""]
  return out


# -------------------------------------------------------------- networks --


def _train(spec, seed: int, workdir: pathlib.Path, ds) -> dict:
  from hwnas import train_standalone  # pylint: disable=g-import-not-at-top
  from hwnas.configs import train as train_config  # pylint: disable=g-import-not-at-top
  config = train_config.get_config()
  config.dataset = "watch"
  config.seed = seed
  return train_standalone.train(spec, config, workdir, ds=ds)


def _time(specs: list[NetSpec]) -> list[float]:
  """Whole-network int8 LiteRT medians (ms), timed together."""
  from hwnas.latency import backends, timing  # pylint: disable=g-import-not-at-top
  b = backends.LiteRTBackend(int8=True, timer="cpu")
  prepared = [b.prepare_network(s, 1) for s in specs]
  return [t.latency_ms for t in timing.time_interleaved(
      prepared, warmup=20, repeats=200, timer="cpu")]


def section_networks(w: pathlib.Path, seeds: list[int],
                     workdir: pathlib.Path) -> list[str]:
  s = space_lib.load("har")
  table = load_table("litert-int8/har")
  cost = make_cost_fn(table, s)
  best = arch_lib.load(w / "search" / "best.json")
  target = cost(best)
  mbv2 = hand_design.largest_under(s, "mobilenetv2", cost, target)
  nets = [("searched (quickstart)", best),
          ("MobileNetV2 1-D, scaled to the same latency", mbv2),
          ("CNN (DeepConvLSTM without the LSTM)", None)]
  specs = [arch_lib.decode(s, a) if a is not None else deepconv_cnn()
           for _, a in nets]
  measured = _time(specs)
  timed_load = _load()
  ds = data.load("watch")
  rows = []
  for (name, a), spec, ms in zip(nets, specs, measured):
    accs = []
    for seed in seeds:
      tag = name.split()[0].lower()
      res = _train(spec, seed, workdir / f"{tag}_s{seed}", ds)
      accs.append(res["test/accuracy"])
    c = counting.count(spec)
    rows.append((name, a, spec, ms, accs, c))
  out = ["### Searched network beside HAR baselines (same recipe, same "
         "split)", "",
         f"Trained from scratch with `hwnas train`'s default recipe (1000 "
         f"steps, batch 64, SGD-Nesterov, cosine) on subjects 1-6, seeds "
         f"{', '.join(map(str, seeds))}; test accuracy on subjects 9-10 "
         "(773 windows: a small test set, one recording is about 3.6% of "
         "it). Latency: full-int8 TFLite, one LiteRT thread, timed "
         f"together in this run (process CPU time, {timed_load} when "
         "timed; compare within the table only).", "",
         "| network | window | MACs | params | table µs | measured µs | "
         "test accuracy (mean; per seed) |",
         "|---|---:|---:|---:|---:|---:|---|"]
  for name, a, spec, ms, accs, c in rows:
    pred = f"{cost(a) * 1e3:.1f}" if a is not None else "n/a"
    label = name + (f" `{arch_lib.to_string(a)}`" if a is not None else "")
    out.append(f"| {label} | {spec.resolution} | {c.macs / 1e6:.2f}M | "
               f"{c.params / 1e3:.1f}k | {pred} | {ms * 1e3:.1f} | "
               f"{np.mean(accs):.3f}; "
               + ", ".join(f"{x:.3f}" for x in accs) + " |")
  (_, _, _, ms_s, acc_s, c_s), (_, _, _, ms_m, acc_m, _), (
      _, _, _, ms_c, acc_c, c_c) = rows
  spread = max(max(r[4]) - min(r[4]) for r in rows)
  out += ["", f"Reading: at {ms_m / ms_s:.2f}x the searched network's "
          f"measured latency, the scaled 1-D MobileNetV2 scores "
          f"{100 * (np.mean(acc_m) - np.mean(acc_s)):+.1f} points against "
          "it (mean of the seeds); the DeepConvLSTM convolutions take "
          f"{ms_c / ms_s:.1f}x its latency and {c_c.macs / c_s.macs:.1f}x "
          f"its MACs for {100 * (np.mean(acc_c) - np.mean(acc_s)):+.1f} "
          f"points. Seeds of one network differ by up to {100 * spread:.1f} "
          "points on this test set, so differences of a point or two are "
          "within seed noise."]
  out += ["", "For context, the feature baselines of "
          "`benchmarks/results/watch.md` (logistic regression on 30 "
          "per-window statistics: 82.0% test).", ""]
  return out


def main() -> None:
  ap = argparse.ArgumentParser()
  ap.add_argument("--quickstart", required=True,
                  help="workdir of `hwnas quickstart --space har`")
  ap.add_argument("--seeds", type=int, nargs="+", default=[0])
  ap.add_argument("--workdir", default="/tmp/bench_har",
                  help="where the standalone trainings go")
  args = ap.parse_args()
  t0 = time.time()
  w = pathlib.Path(args.quickstart)
  s = space_lib.load("har")
  lines = ["## Activity recognition: the 1-D `har` space on `watch`", "",
           f"Command: `python benchmarks/bench_har.py --quickstart W "
           f"--seeds {' '.join(map(str, args.seeds))}` (run "
           f"{datetime.date.today().isoformat()} on {_cpu()}, 2 cores "
           f"shared with other jobs; {_load()} at the start).", ""]
  lines += section_tables(s)
  lines += section_quickstart(w)
  lines += section_networks(w, args.seeds, pathlib.Path(args.workdir))
  lines += [f"Wall time {time.time() - t0:.0f} s.", ""]
  text = "\n".join(lines)
  print(text)
  OUT.write_text(text)


if __name__ == "__main__":
  main()
