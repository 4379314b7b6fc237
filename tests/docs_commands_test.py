"""Every command and Python snippet in README.md and docs/*.md does what
the docs say, or is listed here with the reason it cannot run in a test.

Commands are taken from ```bash / ```sh / ```shell blocks and from the
`hwnas` / `python` / `pip` lines of unlabelled blocks (a line ending in a
backslash continues on the next; `# ...` comments are dropped); snippets
are the ```python blocks. Each is looked up in `COMMANDS` (shell commands,
first matching pattern wins) or `SNIPPETS` (by document and position): an
`Expect` runs it and checks its output for what the docs claim; a string
is the reason it is not run here. A command or snippet with no entry
fails the test, and so does an entry that matches nothing in the docs.

Everything of one document runs in document order in one temporary
directory that holds links to the repository's `search_spaces/`,
`latency_tables/` and `tests/`, so a command may use a file an earlier
command wrote. `hwnas ...` commands and snippets run in-process.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
import shlex
from typing import Callable

import pytest

from hwnas import arch as arch_lib
from hwnas import space as space_lib
from hwnas.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]


@dataclasses.dataclass(frozen=True)
class Expect:
  """What a command or snippet must show.

  Attributes:
    out: regular expressions each found in its stdout (multi-line mode).
    files: (file it writes, regular expression found in that file's text).
    check: `check(stdout, source)` with more assertions (`source` is the
      command or the snippet's code).
  """

  out: tuple[str, ...] = ()
  files: tuple[tuple[str, str], ...] = ()
  check: Callable[[str, str], None] | None = None


def _target(source: str) -> float:
  return float(re.search(r"target(?:_ms)?=([\d.]+)", source).group(1))


def _best_within_target(stdout: str, source: str) -> None:
  """A search snippet's printed best architecture meets its target."""
  ms = [float(x) for x in re.findall(r"'latency_ms': ([\d.]+)", stdout)]
  assert ms, "no best architecture printed"
  assert ms[-1] <= _target(source), (ms[-1], _target(source))


def _is_largest(stdout: str, source: str) -> None:
  del stdout, source
  a = arch_lib.load("largest.json")
  assert a == arch_lib.largest(space_lib.load(a.space))


def _reference_json(stdout: str, source: str) -> None:
  d = json.loads(stdout)
  assert d["name"] == source.split("--reference ")[1].split()[0]
  assert d["macs"] > 0 and d["params"] > 0 and d["layers"]


def _energy_table_written(stdout: str, source: str) -> None:
  del stdout
  out = pathlib.Path(source.split("--out ")[1].split()[0])
  assert '"units": "uJ"' in out.read_text()


_ARCH_STATS = (r"# layer\s+MACs\s+params", r"^  total: [\d.]+M MACs")
_LATENCY_PARTS = (r"^  latency: [\d.]+ ms", r"per-layer sum [\d.]+ ms",
                  r"\+ fixed_ms: [\d.]+ ms \(whole-network term\)")
_SPACES = tuple(rf"^{n}\s+v1\s+[\d.e+]+ archs" for n in
                ("edgetpu", "mobilenetv3", "tiny"))
_SHOW_SPACE = (r"stage\s+stride\s+widths\s+depths", r"^  architectures: ",
               r"^  MACs: [\d.]+M \.\. [\d.]+M")
_TABLES = (r"^edgetpu-usb3/tiny$", r"^xla/mobilenetv3$")
_CHECK = (r"(\d+)/\1 signatures covered",
          r"complete: every network of the space can be predicted")
_TRAINS = "trains a supernet or networks, or runs a search: minutes"
_NEEDS_RUN = ("needs the workdir of a training or search run above "
              "(minutes)")

# (pattern searched in a documented shell command, Expect or why not run).
COMMANDS: list[tuple[str, Expect | str]] = [
    # --- run and checked ---
    (r"^hwnas space list$", Expect(out=_SPACES)),
    (r"^hwnas space show (edgetpu|mobilenetv3)$", Expect(out=_SHOW_SPACE)),
    (r"^hwnas space show har$",
     Expect(out=_SHOW_SPACE + (r"^  input time series, 6 channels, 7 classes, "
                               r"window lengths \[64, 96, 128\]",
                               r"^  stem: conv 1x5/2 "))),
    (r"^hwnas space show search_spaces/tiny\.yaml$",
     Expect(out=(r"^space tiny@1\s+\(search_spaces/tiny\.yaml\)",)
            + _SHOW_SPACE)),
    (r"^hwnas arch sample --space (\w+) --seed \d+ --out a\.json$",
     Expect(out=(r"^wrote a\.json: r\d+ ",),
            files=(("a.json", r'"schema": "hwnas/arch@1"'),))),
    (r"^hwnas arch sample --space tiny --largest --out largest\.json$",
     Expect(out=(r"^wrote largest\.json: r32 ",), check=_is_largest)),
    (r"^hwnas arch stats (--arch )?a\.json$", Expect(out=_ARCH_STATS)),
    (r"^hwnas arch sample --space har --seed \d+ --out har\.json$",
     Expect(out=(r"^wrote har\.json: r\d+ ",),
            files=(("har.json", r'"space": "har"'),))),
    (r"^hwnas arch stats --arch har\.json$",
     Expect(out=(r"^  input time series of \d+ samples x 6 channels",
                 r"^    0 conv-t\d+x6-o16-k5-s2-relu ") + _ARCH_STATS)),
    (r"^hwnas arch stats (--arch )?(a|largest)\.json --table edgetpu-usb3/",
     Expect(out=_ARCH_STATS + _LATENCY_PARTS
            + (r"estimated by edgetpu-model",))),
    (r"^hwnas arch stats --reference mobilenet_edgetpu_1\.0 --json$",
     Expect(check=_reference_json)),
    (r"^hwnas arch stats --reference mobilenet_v3_large_1\.0$",
     Expect(out=(r"^mobilenet_v3_large_1\.0$",) + _ARCH_STATS)),
    (r"^hwnas table show$", Expect(out=_TABLES)),
    (r"^hwnas table show (--table )?xla/mobilenetv3$",
     Expect(out=(r"^measured: xla float32 batch 1", r'^  backend: "xla"',
                 r"^entries: \d+"))),
    (r"^hwnas table check --table xla/\w+ --space \w+", Expect(out=_CHECK)),
    (r"^hwnas table measure --backend edgetpu-model --space edgetpu "
     r"--link usb3 --out usb3\.json$",
     Expect(out=(r"^wrote usb3\.json: \d+ entries",
                 r"USB 3\), 500 MHz, python harness"),
            files=(("usb3.json", r'"backend": "edgetpu-model"'),))),
    (r"^hwnas table measure --backend edgetpu-model --space tiny --link "
     r"pcie --option clock=std --out pcie_std\.json$",
     Expect(out=(r"^wrote pcie_std\.json: \d+ entries",
                 r"on PCIe .*250 MHz"))),
    (r"^hwnas table measure --space edgetpu --backend edgetpu-model "
     r"--link usb3 --out est\.json$",
     Expect(out=(r"^wrote est\.json: \d+ entries",),
            files=(("est.json", r'"spaces": \[\s*"edgetpu@1"'),))),
    (r"^hwnas table import --from ofa tests/testdata/ofa_sample\.yaml",
     Expect(out=(r"^wrote imported\.json: \d+ entries mapped from \d+ keys",
                 r"^  not mapped: "),
            files=(("imported.json", r'"kind": "imported"'),))),
    (r"^hwnas table export-csv (--table )?xla/tiny --out tiny\.csv$",
     Expect(files=(("tiny.csv", r'^# backend: "xla"'),))),
    (r"^hwnas table show (--table )?energy/tiny$",
     Expect(out=(r"estimated by eyeriss-rs", r'^  backend: "eyeriss-rs"'))),
    (r"^hwnas table energy --space tiny --out (my_)?tiny_energy\.json$",
     Expect(out=(r"^wrote (my_)?tiny_energy\.json: \d+ entries, estimated "
                 r"by eyeriss-rs",),
            check=_energy_table_written)),
    (r"^hwnas arch sample --space tiny --out a\.json$",
     Expect(out=(r"^wrote a\.json: r\d+ ",))),
    (r"^hwnas arch stats --arch har\.json --table energy/har$",
     Expect(out=_ARCH_STATS + (r"^    0 conv-t\d+x6-o16-k5-s2-relu ",
                               r"^  energy: [\d.]+ µJ per image",
                               r"by level \(µJ\): DRAM [\d.]+"))),
    (r"^hwnas arch stats (--arch )?a\.json --table energy/tiny$",
     Expect(out=_ARCH_STATS + (r"^  energy: [\d.]+ µJ per image",
                               r"by level \(µJ\): DRAM [\d.]+",
                               r"rough latency: [\d,]+ cycles"))),
    (r"^hwnas table calibrate --table xla/tiny --drop --out "
     r"tiny_uncalibrated\.json$",
     Expect(out=(r"^wrote tiny_uncalibrated\.json: .*without its "
                 r"calibration",),
            files=(("tiny_uncalibrated.json", r'"backend": "xla"'),))),
    # --- not run here, with the reason ---
    (r"^pip install ", "installs packages (needs the network)"),
    (r"^hwnas quickstart --space har ", "trains a supernet, searches and "
     "exports: about 10 minutes on 2 shared cores"),
    (r"^python benchmarks/", "a benchmark: minutes of timing (its results "
     "are in benchmarks/RESULTS.md)"),
    (r"^python -c .*download_and_prepare", "downloads a data set (needs "
     "the internet)"),
    (r"--backend edgetpu( |$)", "needs a Coral Edge TPU and its runtime"),
    (r"tfds:", "needs a prepared tensorflow-datasets set (and trains for "
     "hours)"),
    (r"folder:/", "needs the user's image folder"),
    (r"^hwnas table measure .*--backend (xla|litert)",
     "times every block of a space on this CPU: minutes"),
    (r"^hwnas table validate ", "times whole networks against a table the "
     "command before it measured: minutes"),
    (r"^hwnas export --reference mobilenet_edgetpu_1\.0 ",
     "converts, checks and times a 224 px network of 1 G MACs: minutes"),
    (r"^hwnas search \.\.\. ", "an outline (`...` stands for the flags of "
     "the search above)"),
    (r"^hwnas (supernet train|train|search|predictor train|supernet "
     r"rank-check) ", _TRAINS),
    (r"^hwnas (supernet eval|predictor eval|export) .*runs/", _NEEDS_RUN),
    (r"^hwnas arch stats (--arch )?runs/", _NEEDS_RUN),
]

# (document, index of its ```python block) -> Expect or why not run.
SNIPPETS: dict[tuple[str, int], Expect | str] = {
    ("README.md", 0): Expect(
        out=(r"^r\d+ .* Counts\(macs=\d+", r"^[\d.]+ ms; estimated by ",
             r"outputs: .*best\.json"),
        files=(("runs/api_search/best.json", r'"arch"'),),
        check=_best_within_target),
    ("search.md", 0): Expect(out=(r"^\d+ architectures on the front$",),
                             check=_best_within_target),
    ("data.md", 0): Expect(out=(
        r"^timeseries \(128, 6\) \('PEN', ",
        r"'train': 2055, 'val': 777, 'test': 773",
        r"'train': \(1, 2, 3, 4, 5, 6\), 'val': \(7, 8\), 'test': \(9, 10\)",
        r"^\(32, 96, 6\) \(32,\)$")),
    ("edgetpu.md", 0): "an API outline: `spec`, `space` and `space_or_name` "
                       "stand for the caller's values",
}


def blocks(path: pathlib.Path) -> list[tuple[str, str]]:
  """A markdown file's shell commands (`("shell", command)`) and Python
  snippets (`("python", code)`), in document order."""
  out = []
  text = path.read_text(encoding="utf-8")
  for m in re.finditer(r"^```(bash|sh|shell|python|)\n(.*?)^```", text,
                       re.M | re.S):
    if m.group(1) == "python":
      out.append(("python", m.group(2)))
      continue
    body = re.sub(r"\s*\\\n\s*", " ", m.group(2))
    for line in body.splitlines():
      line = re.sub(r"\s+#.*$", "", line.strip())
      if not line or line.startswith("#"):
        continue
      if m.group(1) or re.match(r"(hwnas|python|pip) ", line):
        out.append(("shell", line))   # unlabelled blocks: command lines only
  return out


def commands(path: pathlib.Path) -> list[str]:
  """The shell commands of a markdown file, in order."""
  return [text for kind, text in blocks(path) if kind == "shell"]


def entry(cmd: str) -> Expect | str | None:
  """The `COMMANDS` entry of a shell command (None: not listed)."""
  for pattern, what in COMMANDS:
    if re.search(pattern, cmd):
      return what
  return None


def _items(doc: pathlib.Path
           ) -> list[tuple[str, str, str, Expect | str | None]]:
  """(kind, label, code, entry) of every command and snippet of `doc`."""
  out, n = [], 0
  for kind, text in blocks(doc):
    if kind == "python":
      out.append((kind, f"{doc.name}: python block {n}", text,
                  SNIPPETS.get((doc.name, n))))
      n += 1
    else:
      out.append((kind, f"{doc.name}: `{text}`", text, entry(text)))
  return out


def _check(label: str, what: Expect, stdout: str, source: str) -> None:
  for pattern in what.out:
    assert re.search(pattern, stdout, re.M), (
        f"{label}: output lacks {pattern!r}:\n{stdout[-2000:]}")
  for name, pattern in what.files:
    p = pathlib.Path(name)
    assert p.is_file(), f"{label}: did not write {name}"
    assert re.search(pattern, p.read_text(), re.M), (
        f"{label}: {name} lacks {pattern!r}")
  if what.check:
    what.check(stdout, source)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_docs_commands_do_what_the_docs_say(doc, tmp_path, monkeypatch,
                                            capsys):
  for name in ("search_spaces", "latency_tables", "tests"):
    (tmp_path / name).symlink_to(ROOT / name)
  monkeypatch.chdir(tmp_path)
  for kind, label, code, what in _items(doc):
    assert what is not None, (
        f"{label}: not in tests/docs_commands_test.py; add an Expect "
        "(what its output must show) or the reason it cannot run here")
    if isinstance(what, str):
      continue
    capsys.readouterr()
    if kind == "python":
      # pylint: disable-next=exec-used
      exec(compile(code, label, "exec"), {"__name__": "__main__"})
      rc = 0
    else:
      argv = shlex.split(code)
      assert argv[0] == "hwnas", f"{label}: only `hwnas ...` runs here"
      assert not set(argv) & {">", "|", "&&", ";"}, (
          f"{label}: shell syntax; write it with --out instead")
      rc = main(argv[1:])
    out, err = capsys.readouterr()
    assert rc == 0, f"{label} exited {rc}:\n{err[-2000:]}"
    _check(label, what, out, code)


def test_every_entry_is_documented():
  cmds = [c for d in DOCS for c in commands(d)]
  stale = [p for p, _ in COMMANDS if not any(re.search(p, c) for c in cmds)]
  assert not stale, f"COMMANDS entries that match no documented command: " + (
      f"{stale}")
  snippets = {(d.name, i) for d in DOCS
              for i in range(sum(k == "python" for k, _ in blocks(d)))}
  assert set(SNIPPETS) == snippets, (set(SNIPPETS) ^ snippets)


def test_parser_and_entries():
  md = ("text\n```bash\nhwnas space show tiny   # a comment\n"
        "hwnas table show \\\n  xla/tiny\n# only a comment\n```\n"
        "```python\nprint(1)\n```\n```\nnot a command\nhwnas space list\n```\n")
  import tempfile  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as d:
    f = pathlib.Path(d) / "x.md"
    f.write_text(md)
    assert blocks(f) == [("shell", "hwnas space show tiny"),
                         ("shell", "hwnas table show xla/tiny"),
                         ("python", "print(1)\n"),
                         ("shell", "hwnas space list")]
  assert entry("hwnas table measure --space tiny --backend xla "
               "--out t.json") == ("times every block of a space on this "
                                   "CPU: minutes")
  assert isinstance(entry("hwnas table measure --space edgetpu --backend "
                          "edgetpu-model --link usb3 --out est.json"), Expect)
  assert entry("hwnas table measure --space edgetpu --backend edgetpu "
               "--out c.json") == "needs a Coral Edge TPU and its runtime"
  assert entry("hwnas space frobnicate") is None
