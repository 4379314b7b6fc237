"""1-D (time-series) search spaces: the `input` key, network specs of
height 1, counting checked by hand, layer keys that never meet 2-D ones."""

import json
import pathlib

import numpy as np
import pytest
import yaml

from hwnas import arch as arch_lib
from hwnas import counting, errors, netspec
from hwnas import space as space_lib
from hwnas.cli import main as cli_main
from hwnas.netspec import Layer

MICRO = "tests/testdata/micro1d.yaml"


def test_har_space_is_timeseries_and_old_image_spaces_are_images():
  har = space_lib.load("har")
  assert (har.kind, har.dims, har.input_channels) == ("timeseries", 1, 6)
  assert har.resolutions == (64, 96, 128)
  assert har.num_classes == 7
  assert {k for st in har.stages for k in st.kernels} == {3, 5, 7, 9}
  tiny = space_lib.load("tiny")
  assert (tiny.kind, tiny.dims) == ("image", 2)


def test_space_round_trips_through_dump(tmp_path):
  s = space_lib.load(MICRO)
  space_lib.dump(s, tmp_path / "again.yaml")
  d = yaml.safe_load((tmp_path / "again.yaml").read_text())
  assert d["input"] == {"kind": "timeseries", "channels": 3,
                        "lengths": [16, 24]}
  assert "resolutions" not in d and "input_channels" not in d
  again = space_lib.load(tmp_path / "again.yaml")
  assert again.to_dict() == s.to_dict() and again.kind == "timeseries"
  # An image space writes the old keys, as before.
  tiny = space_lib.load("tiny").to_dict()
  assert "input" not in tiny and tiny["resolutions"] == [24, 32]


@pytest.mark.parametrize("edit,key,msg", [
    ({"input": {"kind": "audio", "channels": 3, "lengths": [16]}},
     "input.kind", "allowed: image, timeseries"),
    ({"input": {"kind": "timeseries", "channels": 3}},
     "input.lengths", "missing required key"),
    ({"input": {"kind": "timeseries", "channels": 3, "resolutions": [16]}},
     "input.resolutions", "not allowed for kind timeseries"),
    ({"input": {"kind": "timeseries", "channels": 3, "lengths": [4]}},
     "input.lengths[0]", "out of range"),
    ({"input": {"kind": "timeseries", "channels": 3, "lengths": [16],
                "rate": 50}}, "input.rate", "unknown key"),
    ({"resolutions": [16]}, "resolutions", "not allowed beside `input`"),
])
def test_bad_input_is_one_line_naming_file_and_key(tmp_path, edit, key, msg):
  d = yaml.safe_load(pathlib.Path(MICRO).read_text())
  d.update(edit)
  p = tmp_path / "bad.yaml"
  p.write_text(yaml.safe_dump(d))
  with pytest.raises(errors.SpaceError) as e:
    space_lib.load(p)
  assert str(e.value).startswith(f"{p}: {key}: ") and msg in str(e.value)
  assert "\n" not in str(e.value)


def test_image_space_with_input_key_equals_the_old_keys(tmp_path):
  d = yaml.safe_load(pathlib.Path("search_spaces/tiny.yaml").read_text())
  d["input"] = {"kind": "image", "channels": d.pop("input_channels"),
                "resolutions": d.pop("resolutions")}
  p = tmp_path / "tiny.yaml"
  p.write_text(yaml.safe_dump(d))
  s = space_lib.load(p)
  assert s.to_dict() == space_lib.load("tiny").to_dict()


def _hand_spec():
  """stem conv k5/2 3->8 at T=24; ibn 8->16 mid 32 k7/2 SE 8; ibn 16->16 mid
  32 k3 (residual); head 1x1 16->16; pool; fc 16->5."""
  s = space_lib.load(MICRO)
  b = lambda t, k, e, se: arch_lib.BlockChoice(t, k, e, se, "relu")
  a = arch_lib.canonicalize(s, arch_lib.ArchChoice(
      "micro1d", 24, (16,), (2,),
      ((b("ibn", 7, 4, True), b("ibn", 3, 2, False)),)))
  return arch_lib.decode(s, a)


def test_counting_by_hand():
  spec = _hand_spec()
  assert spec.dims == 1 and spec.kind == "timeseries"
  assert spec.input_shape == (1, 24, 3)
  keys = [l.key() for l in spec.layers]
  assert keys == [
      "conv-t24x3-o8-k5-s2-relu",
      "ibn-t12x8-o16-m32-k7-s2-se8-relu-nores",
      "ibn-t6x16-o16-m32-k3-s1-se0-relu-res",
      "conv-t6x16-o16-k1-s1-relu",
      "pool-t6x16-o16",
      "fc-t1x16-o5-none"]
  # MACs by hand: a 1-D conv costs T_out * k * C_in * C_out.
  stem = 12 * 5 * 3 * 8                        # T_out 12
  ibn1 = (12 * 8 * 32                          # expand 1x1 at T 12
          + 6 * 7 * 32                         # depthwise k7 /2 -> T 6
          + 32 * 8 + 8 * 32                    # SE
          + 6 * 32 * 16)                       # project
  ibn2 = 6 * 16 * 32 + 6 * 3 * 32 + 6 * 32 * 16
  head = 6 * 16 * 16
  fc = 16 * 5
  per_layer = [counting.layer_counts(l).macs for l in spec.layers]
  assert per_layer == [stem, ibn1, ibn2, head, 0, fc]
  params = (5 * 3 * 8 + (8 * 32 + 7 * 32 + 32 * 8 + 8 + 8 * 32 + 32
                         + 32 * 16) + (16 * 32 + 3 * 32 + 32 * 16)
            + 16 * 16 + 16 * 5 + 5)
  assert counting.count(spec).params == params
  # The same network as a 2-D one costs T_out^2 and k^2 instead.
  flat = netspec.NetSpec("2d", 24, 3, tuple(
      Layer(**{**l.to_dict(), "dims": 2}) for l in spec.layers))
  assert counting.layer_counts(flat.layers[0]).macs == 12 * 12 * 25 * 3 * 8


def test_keys_of_1d_layers_never_meet_2d_ones():
  for t, kw in (("conv", dict(kernel=3)), ("pool", {}), ("fc", {}),
                ("ibn", dict(mid_channels=16, kernel=3))):
    for size in (1, 4):
      if t == "fc" and size != 1:
        continue
      one = Layer(t, size, 8, 8, dims=1, **kw)
      two = Layer(t, size, 8, 8, **kw)
      assert one.key() != two.key() and one != two


def test_netspec_json_round_trip_and_old_specs_load_as_images():
  spec = _hand_spec()
  again = netspec.NetSpec.from_json(spec.to_json())
  assert again == spec and again.dims == 1
  assert all(d["dims"] == 1 for d in json.loads(spec.to_json())["layers"])
  old = {"name": "old", "resolution": 8, "in_channels": 3, "layers": [
      {"type": "conv", "input_size": 8, "in_channels": 3, "out_channels": 8,
       "kernel": 3, "stride": 2, "activation": "relu"},
      {"type": "pool", "input_size": 4, "in_channels": 8, "out_channels": 8},
      {"type": "fc", "input_size": 1, "in_channels": 8, "out_channels": 2}]}
  assert netspec.NetSpec.from_dict(old).dims == 2


def test_mixed_dims_and_bad_dims_are_one_line_errors():
  with pytest.raises(errors.SpecError, match="dims must be 1"):
    Layer("conv", 8, 3, 8, dims=3)
  with pytest.raises(errors.SpecError, match="all 1-D or all 2-D"):
    netspec.NetSpec("mixed", 8, 3, (Layer("conv", 8, 3, 8, dims=1),
                                    Layer("pool", 8, 8, 8),
                                    Layer("fc", 1, 8, 2)))


def test_sample_mutate_crossover_encode_stay_valid():
  s = space_lib.load("har")
  rng = np.random.default_rng(0)
  a = arch_lib.sample(rng, s)
  for _ in range(30):
    b = arch_lib.mutate(rng, s, a, 0.3)
    c = arch_lib.crossover(rng, s, a, b)
    for x in (b, c):
      arch_lib.validate(s, x)
      assert arch_lib.from_json(arch_lib.to_json(x)) == x
      assert arch_lib.decode(s, x).dims == 1
    assert arch_lib.encode(s, b).shape == arch_lib.encode(s, a).shape
    a = b


def test_space_show_and_arch_stats_say_time_series(tmp_path, capsys):
  assert cli_main(["space", "show", "har"]) == 0
  out = capsys.readouterr().out
  assert "input time series, 6 channels, 7 classes, window lengths " \
         "[64, 96, 128]" in out
  assert "stem: conv 1x5/2" in out
  p = tmp_path / "a.json"
  assert cli_main(["arch", "sample", "--space", "har", "--seed", "1",
                   "--out", str(p)]) == 0
  capsys.readouterr()
  assert cli_main(["arch", "stats", "--arch", str(p)]) == 0
  out = capsys.readouterr().out
  assert "input time series of" in out and "conv-t" in out


def test_edgetpu_model_sees_1xT_positions_and_k_taps():
  from hwnas.edgetpu import cost_model  # pylint: disable=g-import-not-at-top
  spec = _hand_spec()
  for layer in spec.layers:
    ops = cost_model.layer_ops(layer)
    assert sum(o.macs for o in ops) == counting.layer_counts(layer).macs
  dw = [o for o in cost_model.layer_ops(spec.layers[1])
        if o.kind == "depthwise"][0]
  assert (dw.positions, dw.reduce) == (6, 7)        # T_out 6, 7 taps
  flat = Layer(**{**spec.layers[1].to_dict(), "dims": 2})
  dw2 = [o for o in cost_model.layer_ops(flat) if o.kind == "depthwise"][0]
  assert (dw2.positions, dw2.reduce) == (36, 49)


def test_energy_model_sees_1xT_inputs_and_k_taps():
  from hwnas.energy import network  # pylint: disable=g-import-not-at-top
  spec = _hand_spec()
  for layer in spec.layers:
    convs, _ = network.layer_convs(layer)
    assert sum(c.macs for _, c in convs) == counting.layer_counts(layer).macs
  dw = dict(network.layer_convs(spec.layers[1])[0])["depthwise"]
  assert (dw.h, dw.w, dw.r, dw.s, dw.e, dw.f) == (1, 12, 1, 7, 1, 6)
  flat = Layer(**{**spec.layers[1].to_dict(), "dims": 2})
  dw2 = dict(network.layer_convs(flat)[0])["depthwise"]
  assert (dw2.h, dw2.w, dw2.r, dw2.s, dw2.e, dw2.f) == (12, 12, 7, 7, 6, 6)
