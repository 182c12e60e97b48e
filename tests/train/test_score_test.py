"""`train_run(score_test=False)` never touches the test split; `on_epoch_end(epoch, row)` gets
the epoch's history row."""

from __future__ import annotations

import json

import pytest

from mimsa.errors import ConfigError
from mimsa.train import trainer as trainer_mod
from mimsa.train.run import train_run


def test_score_test_false_never_predicts_test(tiny_cfg, tmp_path, monkeypatch):
    seen = []
    original = trainer_mod.Trainer.predict_split

    def spy(self, split):
        seen.append(split)
        return original(self, split)

    monkeypatch.setattr(trainer_mod.Trainer, "predict_split", spy)
    metrics = train_run(tiny_cfg, tmp_path / "run", score_test=False)
    assert "test" not in seen and seen.count("valid") == 3 + 1
    assert metrics["test"] is None and metrics["valid"]["MAE"] > 0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test"] is None
    splits = {line.rsplit(",", 1)[1]
              for line in (tmp_path / "run" / "predictions.csv").read_text().splitlines()[1:]}
    assert splits == {"train", "valid"}


def test_score_test_false_keeps_the_valid_results(tiny_cfg, tmp_path):
    full = train_run(tiny_cfg, tmp_path / "full")
    blind = train_run(tiny_cfg, tmp_path / "blind", score_test=False)
    assert blind["valid"] == full["valid"] and blind["best_epoch"] == full["best_epoch"]


def test_score_test_false_refuses_legacy(tiny_cfg, tmp_path):
    with pytest.raises(ConfigError, match="legacy") as err:
        train_run({**tiny_cfg, "protocol": "legacy"}, tmp_path / "run", score_test=False)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()


def test_on_epoch_end_gets_the_history_row(tiny_cfg, tmp_path):
    rows = []
    train_run(tiny_cfg, tmp_path / "run", on_epoch_end=lambda epoch, row: rows.append(
        (epoch, row)))
    history = [json.loads(line)
               for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert [epoch for epoch, _ in rows] == [1, 2, 3]
    assert [row for _, row in rows] == history
    assert all("valid/MAE" in row for _, row in rows)
