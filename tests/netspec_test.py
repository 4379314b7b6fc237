"""Network specs and reference networks."""

import json

import pytest

from hwnas import errors, netspec, references
from hwnas.netspec import Layer, NetSpec


@pytest.mark.parametrize("name", references.names())
def test_shipped_reference_files_match_builders(name):
  assert references.load(name) == references.BUILDERS[name]()


def test_reference_structure_mobilenet_v3_large():
  spec = references.load("mobilenet_v3_large_1.0")
  blocks = spec.blocks
  assert len(blocks) == 15
  assert [b.mid_channels for b in blocks][:4] == [16, 64, 72, 72]
  assert sum(b.se_channels > 0 for b in blocks) == 8
  assert blocks[3].se_channels == 24          # make_divisible(72 / 4)
  assert [l.type for l in spec.layers[-4:]] == ["conv", "pool", "fc", "fc"]
  assert spec.layers[-2].out_channels == 1280


def test_reference_structure_edgetpu():
  spec = references.load("mobilenet_edgetpu_1.0")
  types = [b.type for b in spec.blocks]
  assert types[:9] == ["fused_ibn"] * 9 and set(types[9:]) == {"ibn"}
  assert not spec.blocks[0].has_expand         # slim skips expansion 1
  assert not spec.blocks[13].residual          # residual=False in slim
  assert all(b.activation == "relu" and not b.se_channels
             for b in spec.blocks)


def test_effnet_edgetpu_scaling():
  s, m, l = (references.load(f"efficientnet_edgetpu_{v}") for v in "SML")
  assert (s.resolution, m.resolution, l.resolution) == (224, 240, 300)
  assert len(s.blocks) == 18 and len(m.blocks) == 24
  assert l.layers[0].out_channels == 40        # round_filters(32 * 1.2)


def test_spec_must_chain():
  a = Layer("conv", 32, 3, 8, kernel=3, stride=2, activation="relu")
  bad = Layer("pool", 32, 8, 8)
  with pytest.raises(errors.SpecError, match=r"layers\[1\].*expects input "
                     "32x32x8 but receives 16x16x8"):
    NetSpec("x", 32, 3, (a, bad, Layer("fc", 1, 8, 10)))


@pytest.mark.parametrize("kw,msg", [
    (dict(type="ibn", input_size=8, in_channels=8, out_channels=8),
     "mid_channels must be positive"),
    (dict(type="conv", input_size=8, in_channels=8, out_channels=8,
          mid_channels=4), "mid_channels applies"),
    (dict(type="ibn", input_size=8, in_channels=8, out_channels=16,
          mid_channels=8, residual=True), "a residual needs"),
    (dict(type="conv", input_size=8, in_channels=8, out_channels=8,
          activation="gelu"), "activation 'gelu' is unknown"),
    (dict(type="conv", input_size=0, in_channels=8, out_channels=8),
     "input_size must be a positive integer"),
])
def test_layer_validation(kw, msg):
  with pytest.raises(errors.SpecError, match=msg):
    Layer(**kw)


def test_netspec_file_errors_name_the_file(tmp_path):
  p = tmp_path / "n.json"
  d = references.load("mobilenet_v2_1.0").to_dict()
  d["layers"][3]["colour"] = 1
  p.write_text(json.dumps(d))
  with pytest.raises(errors.SpecError, match=rf"{p}: layers\[3\]: unknown "
                     "key"):
    netspec.load(p)
  p.write_text("{")
  with pytest.raises(errors.SpecError, match="invalid JSON"):
    netspec.load(p)


def test_layer_keys_are_unique_per_signature():
  spec = references.load("mobilenet_v3_large_1.0")
  keys = {l.key(): l for l in spec.layers}
  for k, l in keys.items():
    assert l.key() == k
  assert "ibn-i56x56x24-o24-m72-k3-s1-se0-relu-res" in keys
