import pytest

from mimsa.config import (
    ConfigError,
    explicit_values,
    load_yaml,
    parse_override,
    preset_names,
    render_with_sources,
    resolve_config,
    resolve_with_sources,
)
from mimsa.errors import MimsaError


def test_defaults_and_presets():
    cfg = resolve_config()
    assert cfg["model"]["name"] == "late_fusion" and cfg["data"]["name"] == "synthetic"
    assert cfg["train"]["epochs"] == 15  # from the dataset layer, synthetic.yaml
    assert {"late_fusion", "synthetic", "mosi", "mmim_mosi"} <= set(preset_names())


def test_layers_apply_dataset_then_model_then_model_dataset():
    _, sources = resolve_with_sources("mmim", "mosi")
    assert sources["data.length_bucketing"] == "preset mosi.yaml"
    assert sources["train.epochs"] == "preset mmim.yaml"  # the model's budget beats mosi's 8
    assert sources["model.audio_hidden"] == "preset mmim_mosi.yaml"
    assert resolve_config("late_fusion", "mosi")["train"]["epochs"] == 8


def test_overrides_are_typed_and_layered(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 4\nmodel:\n  hidden: 8\n")
    cfg, sources = resolve_with_sources("late_fusion", "synthetic", path,
                                        ["train.lr=0.01", "model.hidden=16",
                                         "data.modalities=ta"])
    assert cfg["train"]["epochs"] == 4 and cfg["train"]["lr"] == 0.01
    assert cfg["model"]["hidden"] == 16 and cfg["data"]["modalities"] == "ta"
    assert parse_override("train.stages=[]") == (["train", "stages"], [])
    assert sources["train.epochs"] == f"file {path}" and sources["model.hidden"] == "--set"
    assert sources["model.name"] == "-m" and sources["train.patience"] == "preset synthetic.yaml"
    given = explicit_values(cfg, sources)
    assert given == {"model.name": "late_fusion", "data.name": "synthetic", "train.epochs": 4,
                     "model.hidden": 16, "train.lr": 0.01, "data.modalities": "ta"}
    text = render_with_sources(cfg, sources)
    assert "epochs: 4" in text and f"# file {path}" in text and "# --set" in text


def test_yaml_strings_become_the_declared_type():
    cfg = resolve_config(overrides=["train.lr=1e-3", "train.epochs=5"])
    assert cfg["train"]["lr"] == pytest.approx(0.001) and isinstance(cfg["train"]["lr"], float)


def test_unknown_keys_list_valid_ones(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'train.epoch'.*epochs"):
        resolve_config(overrides=["train.epoch=3"])
    with pytest.raises(ConfigError, match="unknown config key 'trian'"):
        resolve_config(overrides=["trian.epochs=3"])
    with pytest.raises(ConfigError, match="expected key=value"):
        resolve_config(overrides=["train.epochs"])


@pytest.mark.parametrize(("override", "named"), [
    ("train.epochs=abc", "train.epochs='abc'"),
    ("train.epochs=0", "train.epochs=0"),
    ("data.batch_size=0", "data.batch_size=0"),
    ("data.batch_size=-4", "data.batch_size=-4"),
    ("train.lr=-1", "train.lr=-1"),
    ("data.nan_policy=bogus", "'error' or 'zero'"),
    ("protocol=legacyy", "'clean' or 'legacy'"),
    ("train.loss=l3", "'l1', 'mse' or 'smooth_l1'"),
    ("train.select_metric=Acc", "train.select_metric='Acc'"),
    ("data.modalities=tx", "subset of 't', 'a', 'v'"),
    ("penalty.kind=mine", "'kl', 'js' or 'wasserstein'"),
    ("train.stages=[]", "train.stages=[]"),
    ("train.stages=[{name: m, fraction: 2}]", "train.stages.0.fraction=2"),
    ("train.stages=[{name: m, terms: {task: x}}]", "train.stages.0.terms.task='x'"),
    ("train.optimizers={mi: {lr: -1}}", "train.optimizers.mi.lr=-1"),
    ("encoder.pooling=max", "'cls', 'mean' or 'segment'"),
    ("penalty.critic_steps=0", "penalty.critic_steps=0"),
    ("data.synthetic_sizes={train: 0}", "data.synthetic_sizes.train=0"),
])
def test_bad_values_are_one_line_naming_key_and_value(override, named):
    with pytest.raises(ConfigError) as err:
        resolve_config(overrides=[override])
    message = str(err.value)
    assert named in message and "\n" not in message


def test_settings_without_effect_are_refused():
    with pytest.raises(ConfigError, match="penalty.weight=0.5 has no effect without"):
        resolve_config(overrides=["penalty.weight=0.5"])
    with pytest.raises(ConfigError, match="data.synthetic_sizes applies to the synthetic"):
        resolve_config(dataset="mosi", overrides=["data.synthetic_sizes={train: 3}"])


def test_config_files_the_user_gets_wrong_are_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: [1, 2\n  lr: 3\n")
    with pytest.raises(ConfigError, match="bad.yaml is not valid YAML: .* at line") as err:
        resolve_config(config_file=bad)
    assert "\n" not in str(err.value)
    noise = tmp_path / "noise.yaml"
    noise.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ConfigError, match="noise.yaml is not text"):
        load_yaml(noise)
    with pytest.raises(ConfigError, match="is a folder"):
        load_yaml(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(tmp_path / "missing.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_yaml(listing)


def test_config_errors_belong_to_the_family():
    assert issubclass(ConfigError, MimsaError) and issubclass(ConfigError, ValueError)


def test_model_and_dataset_from_set():
    cfg = resolve_config(overrides=["model.name=ef_lstm"])
    assert cfg["model"]["name"] == "ef_lstm" and cfg["model"]["step_dim"] == 32


def test_a_dataset_path_never_reads_a_preset(tmp_path):
    cfg = resolve_config("late_fusion", str(tmp_path / "mosi"))
    assert cfg["train"]["epochs"] == 30  # the code default: no preset for a path


def test_the_schema_selects_on_exactly_the_metrics_mimsa_computes():
    # config_schema.py sits below metrics.py in the layers, so it restates the metric keys;
    # this keeps the two lists from drifting apart.
    from mimsa.config_schema import SELECT_METRICS
    from mimsa.metrics import METRIC_KEYS

    assert set(SELECT_METRICS) == {*METRIC_KEYS, "loss"}


@pytest.mark.parametrize("override, expected", [
    ("data.context={before: 1, foo: 2}", "data.context has no key foo; valid keys: before, after"),
    ("train.stages=[{name: main, foo: 1}]", "train.stages.0 has no key foo; valid keys: name, "),
    ("train.optimizers={mi: {foo: 1}}", "train.optimizers.mi has no key foo; valid keys: lr, "),
    ("data.context=2", "data.context=2 is not allowed: input should be a valid dictionary"),
])
def test_a_bad_nested_section_names_its_keys_not_the_schema_class(override, expected):
    with pytest.raises(ConfigError) as err:
        resolve_config("late_fusion", "synthetic", None, [override])
    message = str(err.value)
    assert expected in message and "Section" not in message and "extra inputs" not in message


def test_null_removes_an_objective_a_preset_configured():
    assert "ulgm" in resolve_config("self_mm", "synthetic")["objectives"]
    cfg = resolve_config("self_mm", "synthetic", None, [
        "objectives.ulgm=null", "train.stages=[{name: main, optimizer: main, terms: {task: 1}}]"])
    assert cfg["objectives"] == {}
