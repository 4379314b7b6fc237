"""Search-space loading and validation."""

import pathlib
import subprocess
import sys

import pytest
import yaml

from hwnas import errors, space

GOOD = {
    "format": 1, "name": "toy", "version": 1, "resolutions": [16, 24],
    "stem": {"channels": 8},
    "stages": [
        {"widths": [8, 16], "stride": 1, "depths": [1, 2],
         "types": ["ibn", "fused_ibn"], "kernels": [3, 5],
         "expansions": [2, 4]},
        {"width_multipliers": [0.5, 1.0], "base_width": 32, "stride": 2,
         "depths": [1, 2], "types": ["ibn", "skip"], "kernels": [3],
         "expansions": [3], "se": [False, True],
         "activations": ["relu", "hswish"]},
    ],
    "head": {"expand_channels": 32},
}


def _write(tmp_path, d, name="s.yaml"):
  p = tmp_path / name
  p.write_text(yaml.safe_dump(d) if not isinstance(d, str) else d)
  return p


def test_shipped_spaces_load():
  names = space.list_spaces()
  assert {"tiny", "mobilenetv3", "edgetpu"} <= set(names)
  for n in names:
    s = space.load(n)
    assert s.name == n and s.num_archs() > 1


def test_mobilenetv3_space_matches_once_for_all():
  s = space.load("mobilenetv3")
  elastic = s.stages[1:]
  assert len(elastic) == 5
  for st in elastic:
    assert st.kernels == (3, 5, 7)
    assert st.expansions == (3, 4, 6)
    assert st.depths == (2, 3, 4)
  assert s.resolutions == tuple(range(128, 225, 16))
  # OFA reports ~2e19 subnets per resolution for this space.
  per_res = s.num_archs() / len(s.resolutions)
  assert 1e19 < per_res < 1e20


def test_edgetpu_space_is_edge_tpu_friendly():
  s = space.load("edgetpu")
  for st in s.stages:
    assert set(st.types) == {"ibn", "fused_ibn"}
    assert st.activations == ("relu",) and st.se == (False,)
  assert any(4 in st.expansions and 8 in st.expansions for st in s.stages)


def test_width_multipliers_round_to_divisible_widths(tmp_path):
  s = space.load(_write(tmp_path, GOOD))
  assert s.stages[1].widths == (16, 32)


def test_roundtrip_through_dump(tmp_path):
  s = space.load(_write(tmp_path, GOOD))
  space.dump(s, tmp_path / "again.yaml")
  s2 = space.load(tmp_path / "again.yaml")
  assert s2.stages == s.stages and s2.head == s.head and s2.stem == s.stem


def _mutated(path, value):
  import copy
  d = copy.deepcopy(GOOD)
  node = d
  for k in path[:-1]:
    node = node[k]
  if value is KeyError:
    del node[path[-1]]
  else:
    node[path[-1]] = value
  return d


@pytest.mark.parametrize("path,value,expect", [
    (("stages", 0, "colour"), "red", "stages[0].colour: unknown key"),
    (("bogus",), 1, "bogus: unknown key"),
    (("stages", 0, "kernels"), [], "stages[0].kernels: the list of choices is empty"),
    (("resolutions",), [], "resolutions: the list of choices is empty"),
    (("stages", 0, "stride"), 3, "stages[0].stride: must be 1 or 2"),
    (("stages", 0, "widths"), [8, -4], "stages[0].widths[1]: must be a positive integer"),
    (("stages", 0, "widths"), [0], "stages[0].widths[0]: must be a positive integer"),
    (("stem", "channels"), 0, "stem.channels: must be a positive integer"),
    (("stages", 0, "types"), ["ibn", "conv9"], "stages[0].types[1]: 'conv9' is not allowed"),
    (("stages", 0, "types"), ["skip"], "stages[0].types: 'skip' alone"),
    (("stages", 1, "activations"), ["gelu"], "stages[1].activations[0]: 'gelu' is not allowed"),
    (("stages", 0, "kernels"), [3, 4], "stages[0].kernels[1]: kernel sizes must be odd"),
    (("stages", 0, "kernels"), [3, 3], "stages[0].kernels: duplicate choices"),
    (("stages", 0, "depths"), KeyError, "stages[0].depths: missing required key"),
    (("stages",), [], "stages: must be a non-empty list"),
    (("format",), 7, "format: unsupported format 7"),
    (("stages", 1, "base_width"), KeyError, "stages[1].base_width: required"),
    (("stages", 0, "se"), ["yes"], "stages[0].se[0]: must be true or false"),
])
def test_bad_space_files_give_one_clear_line(tmp_path, path, value, expect):
  p = _write(tmp_path, _mutated(path, value))
  with pytest.raises(errors.SpaceError) as e:
    space.load(p)
  msg = str(e.value)
  assert msg.startswith(str(p) + ": ")
  assert expect in msg
  assert "\n" not in msg


def test_yaml_syntax_error_names_line(tmp_path):
  p = _write(tmp_path, "format: 1\nname: [unclosed\nversion: 1\n")
  with pytest.raises(errors.SpaceError, match=r"line \d+, column \d+: YAML "
                     "syntax error"):
    space.load(p)


def test_unknown_space_name_lists_shipped():
  with pytest.raises(errors.SpaceError, match="shipped spaces: .*tiny"):
    space.load("no_such_space")


def test_cli_bad_space_exits_nonzero_with_one_line(tmp_path):
  p = _write(tmp_path, _mutated(("stages", 0, "stride"), 5))
  r = subprocess.run([sys.executable, "-m", "hwnas", "space", "show", str(p)],
                     capture_output=True, text=True)
  assert r.returncode == 2
  lines = r.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: ")
  assert "stages[0].stride" in lines[0]
