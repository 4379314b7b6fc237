"""Messages that point the right way: every suggested fix exists and none
writes into the installed package (fast)."""

import json

from hwnas.configs import loader
from hwnas.configs import train as train_config
from hwnas.export import sources
from hwnas.latency import load_table
from hwnas.netspec import Layer

import pytest
from hwnas import errors


def test_set_typo_says_did_you_mean_and_names_no_checkout_path():
  c = loader.load(None)
  with pytest.raises(errors.HwnasError) as e:
    loader.override(c, ["optimizer.learnig_rate=0.1"],
                    source="hwnas/configs/train.py")
  msg = str(e.value)
  assert "did you mean 'optimizer.learning_rate'?" in msg
  assert "hwnas/configs" not in msg and "import hwnas.configs.train" in msg


def test_missing_signature_of_a_shipped_table_suggests_a_copy():
  t = load_table("edgetpu-usb3/tiny")
  msg = t.missing_message([Layer("conv", 7, 3, 5, kernel=3, stride=1,
                                 activation="relu")])
  out = msg.split("--out ")[1].split("`")[0]
  assert "latency_tables" not in out and "site-packages" not in out
  assert f"cp {t.path} {out}" in msg


def test_export_of_a_train_workdir_uses_its_dataset(tmp_path):
  config = train_config.get_config(None)
  config.dataset = "digits"
  config.val_fraction = 0.2
  (tmp_path / "checkpoints").mkdir()
  (tmp_path / "config.json").write_text(json.dumps(
      {"config": config.to_dict()}))
  ds = sources.train_workdir_dataset(tmp_path)
  assert ds.info.name.startswith("digits")
  assert sources.train_workdir_dataset(tmp_path / "checkpoints") is None
