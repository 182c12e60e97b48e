import pytest

from mimsa.config import ConfigError, parse_override, preset_names, resolve_config


def test_defaults_and_presets():
    cfg = resolve_config()
    assert cfg["model"]["name"] == "late_fusion" and cfg["data"]["name"] == "synthetic"
    assert cfg["train"]["epochs"] == 15  # from late_fusion_synthetic.yaml
    assert {"late_fusion", "late_fusion_synthetic"} <= set(preset_names())


def test_overrides_are_typed_and_layered(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 4\nmodel:\n  hidden: 8\n")
    cfg = resolve_config("late_fusion", "synthetic", path,
                         ["train.lr=0.01", "model.hidden=16", "data.modalities=ta"])
    assert cfg["train"]["epochs"] == 4 and cfg["train"]["lr"] == 0.01
    assert cfg["model"]["hidden"] == 16 and cfg["data"]["modalities"] == "ta"
    assert parse_override("train.stages=[]") == (["train", "stages"], [])


def test_unknown_keys_list_valid_ones(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'train.epoch'.*epochs"):
        resolve_config(overrides=["train.epoch=3"])
    with pytest.raises(ConfigError, match="unknown config key 'trian'"):
        resolve_config(overrides=["trian.epochs=3"])
    with pytest.raises(ConfigError, match="expected key=value"):
        resolve_config(overrides=["train.epochs"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml is not valid YAML"):
        resolve_config(config_file=bad)


def test_model_and_dataset_from_set():
    cfg = resolve_config(overrides=["model.name=ef_lstm"])
    assert cfg["model"]["name"] == "ef_lstm" and cfg["model"]["step_dim"] == 32
