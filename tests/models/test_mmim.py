import json

import pytest

from mimsa import config as config_mod
from mimsa.train.run import train_run


def history(run_dir) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "history.jsonl").read_text().splitlines()]


def test_ablations_by_term_weights_and_text_only_data(mmim_cfg, tmp_path):
    mmim_cfg["train"]["epochs"] = 1
    mmim_cfg["train"]["term_weights"] = {"nce": 0}
    train_run(mmim_cfg, tmp_path / "no_cpc")
    row = history(tmp_path / "no_cpc")[0]
    assert "mi/lld" in row and "main/nce" not in row and "main/H" in row

    text = {**mmim_cfg, "data": {**mmim_cfg["data"], "modalities": "t"},
            "train": {**mmim_cfg["train"], "term_weights": {}}}
    with pytest.raises(ValueError, match="optimizer 'mi', which has no parameters"):
        train_run(text, tmp_path / "text_fails")
    text["train"]["term_weights"] = {"lld": 0, "H": 0}  # what mmim_mosei.yaml does
    train_run(text, tmp_path / "text")
    row = history(tmp_path / "text")[0]
    assert "main/nce" in row and not any(k.startswith("mi/") for k in row)
    assert config_mod.resolve_config("mmim", "mosei")["train"]["term_weights"] == {"lld": 0,
                                                                                   "H": 0}
