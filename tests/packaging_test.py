"""A non-editable install must carry the shipped data inside the wheel."""

import pathlib
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_contains_search_spaces_and_tables(tmp_path):
  r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                      "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
                     capture_output=True, text=True)
  assert r.returncode == 0, r.stderr[-2000:]
  (wheel,) = tmp_path.glob("hwnas-*.whl")
  names = zipfile.ZipFile(wheel).namelist()
  for y in (ROOT / "search_spaces").glob("*.yaml"):
    assert f"hwnas/_data/search_spaces/{y.name}" in names
  assert any(n.startswith("hwnas/_data/search_spaces/references/")
             for n in names)
  assert "hwnas/resources.py" in names
  assert "hwnas/energy/eyeriss_v1.yaml" in names   # default accelerator
  assert "hwnas/_data/latency_tables/energy/tiny.json" in names
