import json

from typer.testing import CliRunner

from mimsa.cli import app

runner = CliRunner()
TINY = ["--set", "data.synthetic_sizes={train: 64, valid: 32, test: 32}",
        "--set", "train.epochs=2", "--quiet"]


def test_train_evaluate_roundtrip(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "-m", "ef_lstm", "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    assert "Non0_acc_2" in result.output and "MAE" in result.output
    reported = json.loads((out / "metrics.json").read_text())
    result = runner.invoke(app, ["evaluate", str(out)])
    assert result.exit_code == 0, result.output
    assert f"{reported['test']['MAE']:.4f}" in result.output


def test_multi_seed_prints_summary(tmp_path):
    out = tmp_path / "seeds"
    result = runner.invoke(app, ["train", "--seeds", "1", "2", "--out", str(out),
                                 *TINY])
    assert result.exit_code == 0, result.output
    assert "mean ± std (n=2)" in result.output
    assert (out / "seed-1" / "metrics.json").exists() and (out / "summary.csv").exists()


def test_unknown_names_list_valid_ones(tmp_path):
    result = runner.invoke(app, ["train", "-m", "nope", "--out", str(tmp_path / "x"), *TINY])
    assert result.exit_code == 2
    assert "unknown model 'nope'" in result.output and "late_fusion" in result.output
    result = runner.invoke(app, ["train", "-d", "nope", "--out", str(tmp_path / "y"), *TINY])
    assert result.exit_code == 2 and "synthetic" in result.output
    result = runner.invoke(app, ["train", "--set", "train.epoch=1", "--quiet"])
    assert result.exit_code == 2 and "epochs" in result.output
    assert "Traceback" not in result.output


def test_models_and_datasets_listing():
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0 and "late_fusion" in result.output
    assert "ef_lstm" in result.output and "text_only" in result.output
    result = runner.invoke(app, ["datasets"])
    assert result.exit_code == 0 and "synthetic" in result.output
    assert "z_s" in result.output


def test_evaluate_missing_run_is_one_line(tmp_path):
    result = runner.invoke(app, ["evaluate", str(tmp_path)])
    assert result.exit_code == 2 and "no run found" in result.output


def test_printed_results_show_legacy_and_context_markers(capsys):
    # "[protocol: ...]" and "[with context: ...]" look like rich markup tags: they must be
    # printed, not swallowed (the README promises every output of such a run says so)
    from mimsa.cli import _print_metrics

    scores = {"MAE": 1.0, "Corr": 0.5}
    _print_metrics({"valid": scores, "test": scores, "protocol": "legacy",
                    "context": {"before": 2, "after": 1}}, "late_fusion on mosi [x]")
    printed = " ".join(capsys.readouterr().out.split())
    assert "late_fusion on mosi [x]" in printed
    assert "[protocol: legacy (test-informed)]" in printed
    assert "[with context: before 2, after 1]" in printed
