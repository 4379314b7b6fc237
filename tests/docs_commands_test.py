"""Every fenced shell command in README.md and docs/*.md works as written.

Commands are taken from ```bash / ```sh / ```shell blocks and from the
`hwnas` / `python` / `pip` lines of unlabelled blocks (a line ending in a
backslash continues on the next; `# ...` comments are dropped) and run in
document order, per document, in one temporary directory that holds links
to the repository's `search_spaces/`, `latency_tables/` and `tests/`, so a
command may use a file an earlier command of the same document wrote.
`hwnas ...` commands run in-process (`hwnas.cli.main`): the whole module
takes seconds. A command passes when it exits 0.

Commands that need a GPU, a Coral, the internet, or more than a few
seconds are not run: they match a pattern of `SKIP` below, each with the
reason. A new docs command either runs quickly and works, or gets a
pattern here (the cheapest way to keep it honest: write it so it runs).
"""

import pathlib
import re
import shlex

import pytest

from hwnas.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]

# (pattern searched in the command, why it is not run here)
SKIP = [
    (r"^pip ", "installs packages (network)"),
    (r"^python -m pytest", "the test suite itself"),
    (r"^python -c .*download_and_prepare", "downloads a data set (internet)"),
    (r"^python benchmarks/", "benchmark: minutes of timing"),
    (r"--backend edgetpu(\s|$)", "needs a Coral Edge TPU"),
    (r"tfds:", "needs a prepared tensorflow-datasets set"),
    (r"folder:/", "needs the user's image folder"),
    (r"runs/|\.\.\.", "uses the outputs of an earlier long run"),
    (r"^hwnas (quickstart|supernet train|train|search|export)\b",
     "a training / search / export run: minutes"),
    (r"^hwnas table (measure|validate)\b(?!.*--backend edgetpu-model)",
     "times real networks: minutes"),
]


def commands(path: pathlib.Path) -> list[str]:
  """The shell commands of a markdown file's bash/sh blocks, in order."""
  out = []
  text = path.read_text(encoding="utf-8")
  for m in re.finditer(r"^```(bash|sh|shell|)\n(.*?)^```", text,
                       re.M | re.S):
    body = re.sub(r"\s*\\\n\s*", " ", m.group(2))
    for line in body.splitlines():
      line = re.sub(r"\s+#.*$", "", line.strip())
      if not line or line.startswith("#"):
        continue
      if m.group(1) or re.match(r"(hwnas|python|pip) ", line):
        out.append(line)   # unlabelled blocks: only the command lines
  return out


def skip_reason(cmd: str) -> str | None:
  for pattern, why in SKIP:
    if re.search(pattern, cmd):
      return why
  return None


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_docs_commands_run(doc, tmp_path, monkeypatch, capsys):
  for name in ("search_spaces", "latency_tables", "tests"):
    (tmp_path / name).symlink_to(ROOT / name)
  monkeypatch.chdir(tmp_path)
  ran = 0
  for cmd in commands(doc):
    if skip_reason(cmd):
      continue
    argv = shlex.split(cmd)
    assert argv[0] == "hwnas", (
        f"{doc.name}: `{cmd}`: only `hwnas ...` commands run here; give it "
        "a SKIP pattern with the reason")
    assert not set(argv) & {">", "|", "&&", ";"}, (
        f"{doc.name}: `{cmd}`: shell syntax; write it with --out instead")
    code = main(argv[1:])
    out, err = capsys.readouterr()
    assert code == 0, f"{doc.name}: `{cmd}` exited {code}:\n{err[-2000:]}"
    ran += 1
  if doc.name in ("README.md", "spaces.md", "tables.md"):
    assert ran, f"{doc.name}: no command ran; is the parser broken?"


def test_parser_and_skip_list():
  md = ("text\n```bash\nhwnas space show tiny   # a comment\n"
        "hwnas table show \\\n  xla/tiny\n# only a comment\n```\n"
        "```python\nhwnas not shell\n```\n")
  import tempfile  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as d:
    f = pathlib.Path(d) / "x.md"
    f.write_text(md)
    assert commands(f) == ["hwnas space show tiny",
                           "hwnas table show xla/tiny"]
  assert skip_reason("hwnas table measure --space tiny --backend xla "
                     "--out t.json")
  assert not skip_reason("hwnas table measure --space tiny --backend "
                         "edgetpu-model --out t.json")
  assert skip_reason("hwnas table measure --space edgetpu --backend edgetpu "
                     "--out c.json") == "needs a Coral Edge TPU"
  assert skip_reason("hwnas arch stats a.json") is None
