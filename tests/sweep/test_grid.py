"""Grid files: naming, override order, documents, and one-line errors before any run starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from mimsa.errors import ConfigError
from mimsa.sweep.grid import load_grid
from mimsa.sweep.plan import load_grids, plan_runs
from mimsa.sweep.runner import default_out, prepare

from .sweep_helpers import TINY_GRID, write

BENCH_GRIDS = sorted((Path(__file__).parents[2] / "bench" / "grids").glob("*.yaml"))
FROZEN = "[encoder.name=minilm, encoder.freeze=true, encoder.pooling=mean]"


def test_names_and_override_order(tmp_path: Path) -> None:
    grid = write(tmp_path / "g.yaml", f"""
models: {{late_fusion: [], mmim: [train.lr=0.002]}}
datasets: {{poria: mosi-poria, mosi: mosi}}
encoders: {{minilm-frozen: {FROZEN}}}
variants: {{"": [], js: [penalty.kind=js]}}
seeds: [1111, 1112]
sets: [train.epochs=30]
""")
    runs = {r.name: r for r in load_grid(grid)}
    assert set(runs) == {f"{d}_{m}{v}_minilm-frozen" for d in ("poria", "mosi")
                         for m in ("late_fusion", "mmim") for v in ("", "-js")}
    run = runs["poria_mmim-js_minilm-frozen"]
    assert (run.model, run.dataset, run.seeds) == ("mmim", "mosi-poria", (1111, 1112))
    # encoder, then model, then variant, then the grid's sets
    assert run.overrides == ("encoder.name=minilm", "encoder.freeze=true",
                             "encoder.pooling=mean", "train.lr=0.002", "penalty.kind=js",
                             "train.epochs=30")
    assert "train.lr=0.002" not in runs["poria_late_fusion_minilm-frozen"].overrides
    command = run.train_command(Path("runs/x"))
    assert command.startswith("mimsa train -m mmim -d mosi-poria --set encoder.name=minilm ")
    assert command.endswith("--seeds 1111 1112 --out runs/x/poria_mmim-js_minilm-frozen")


def test_no_encoders_no_encoder_part(tmp_path: Path) -> None:
    runs = load_grid(write(tmp_path / "g.yaml", TINY_GRID))
    assert [r.name for r in runs] == ["synthetic_late_fusion", "synthetic_text_only"]


def test_later_documents_take_missing_keys_from_the_first(tmp_path: Path) -> None:
    grid = write(tmp_path / "g.yaml", f"""
models: [late_fusion]
datasets: [mosi]
encoders: {{minilm-frozen: {FROZEN}}}
seeds: [1111]
---
models: [mmim]
variants: {{noba: [train.term_weights.lld=0]}}
""")
    runs = {r.name: r for r in load_grid(grid)}
    assert set(runs) == {"mosi_late_fusion_minilm-frozen", "mosi_mmim-noba_minilm-frozen"}
    assert runs["mosi_mmim-noba_minilm-frozen"].seeds == (1111,)
    assert runs["mosi_mmim-noba_minilm-frozen"].document == 2


@pytest.mark.parametrize(("text", "expected"), [
    ("models: [late_fusion]\ndatasets: [mosi]\nseeds: [1]\nepochs: 3\n", "unknown key 'epochs'"),
    ("models: []\ndatasets: [mosi]\nseeds: [1]\n", "models is empty"),
    ("models: [late_fusion]\ndatasets: {}\nseeds: [1]\n", "datasets is empty"),
    ("models: [late_fusion]\ndatasets: [mosi]\nencoders: {}\nseeds: [1]\n", "encoders is empty"),
    ("models: [late_fusion]\ndatasets: [mosi]\nseeds: [1]\nsets: []\n", "sets is empty"),
    ("models: [late_fusion]\ndatasets: [mosi]\nseeds: []\n", "seeds is empty"),
    ("models: [late_fusion]\ndatasets: [mosi]\nseeds: [-1]\n", "seeds: '-1' is not a seed"),
    ("models: [late_fusion]\ndatasets: [mosi]\nseeds: [x]\n", "seeds: 'x' is not a seed"),
    ("models: [late_fusion]\ndatasets: [mosi]\nseeds: [1, 1]\n", "1 is given twice"),
    ("models: [late_fusion]\ndatasets: [mosi]\nseeds: 1\n", "seeds must be a list"),
    ("models: [late_fusion]\ndatasets: [mosi]\n", "'seeds' is missing"),
    ("models: [late_fusion]\ndatasets: [mosi]\nseeds: [1]\nsets: [train.epohcs=3]\n",
     "sets: unknown config key 'train.epohcs'"),
    ("models: [late_fusion]\ndatasets: [mosi]\nseeds: [1]\nsets: [train.epochs]\n",
     "sets: --set 'train.epochs': expected key=value"),
    ("models: {mmim: [nope=1]}\ndatasets: [mosi]\nseeds: [1]\n",
     "models.mmim: unknown config key 'nope'"),
    ("models: [late_fusion]\ndatasets: [data/x.pkl]\nseeds: [1]\n", "give it a label"),
    ("models: [late_fusion]\ndatasets: [mosi]\nvariants: {a_b: []}\nseeds: [1]\n",
     "variants: 'a_b' is not a label"),
    ("models: [late_fusion]\ndatasets: [mosi]\nseeds: [1]\n---\nmodels: [late_fusion]\n",
     "run name 'mosi_late_fusion' appears twice"),
    ("models: [late_fusion]\nmodels: [mmim]\ndatasets: [mosi]\nseeds: [1]\n",
     "appears twice in one mapping"),
    ("- models\n", "must be a mapping"),
    ("", "is empty"),
])
def test_bad_grids_are_one_line_errors_naming_file_and_key(tmp_path: Path, text: str,
                                                            expected: str) -> None:
    grid = write(tmp_path / "bad.yaml", text)
    with pytest.raises(ConfigError) as err:
        load_grid(grid)
    message = str(err.value)
    assert expected in message
    assert str(grid) in message and "\n" not in message


@pytest.mark.parametrize(("sets", "expected"), [
    ("[train.epochs=-1]", "train.epochs"),
    ("[model.no_such_option=1]", "no_such_option"),
    ("[penalty.weight=0.5]", "penalty.weight=0.5 has no effect"),
    ("[model.hidden=0]", "model.hidden=0 is not allowed"),  # an option's range, not only its type
    ("[model.dropout=1.5]", "model.dropout=1.5 is not allowed"),
])
def test_every_run_is_resolved_before_any_starts(tmp_path: Path, sets: str,
                                                 expected: str) -> None:
    grid = write(tmp_path / "g.yaml",
                 f"models: [late_fusion, text_only]\ndatasets: [synthetic]\nseeds: [1]\n"
                 f"sets: {sets}\n")
    with pytest.raises(ConfigError) as err:
        prepare([grid], tmp_path / "out")
    message = str(err.value)
    assert expected in message and f"grid {grid}, run synthetic_late_fusion" in message
    assert "\n" not in message
    assert not (tmp_path / "out").exists()


def test_unknown_model_and_dataset_are_refused(tmp_path: Path) -> None:
    model = write(tmp_path / "m.yaml", "models: [no_model]\ndatasets: [synthetic]\nseeds: [1]\n")
    with pytest.raises(ConfigError, match="run synthetic_no_model"):
        prepare([model], tmp_path / "out")
    data = write(tmp_path / "d.yaml", "models: [late_fusion]\ndatasets: [nodata]\nseeds: [1]\n")
    with pytest.raises(ConfigError, match="dataset 'nodata' is neither a registered"):
        prepare([data], tmp_path / "out")


def test_grids_share_identical_runs_and_refuse_conflicting_ones(tmp_path: Path) -> None:
    first = write(tmp_path / "a.yaml", TINY_GRID)
    same = write(tmp_path / "b.yaml", TINY_GRID)
    assert [r.name for r in load_grids([first, same])] == [r.name for r in load_grid(first)]
    other = write(tmp_path / "c.yaml", TINY_GRID.replace("train.epochs=2", "train.epochs=3"))
    with pytest.raises(ConfigError, match="is also in grid .*a.yaml with other settings"):
        load_grids([first, other])
    with pytest.raises(ConfigError, match="several grid files need --out"):
        default_out([first, same])
    assert default_out([first]) == Path("runs/sweep-a")


def test_only_selects_runs_by_pattern(tmp_path: Path) -> None:
    grid = write(tmp_path / "g.yaml", TINY_GRID)
    assert [r.name for r in prepare([grid], tmp_path, only=["*text*"])] == \
        ["synthetic_text_only"]
    with pytest.raises(ConfigError, match="--only 'mmim' matches no run"):
        prepare([grid], tmp_path, only=["mmim"])


def test_data_root_is_absolute_and_given(tmp_path: Path, monkeypatch) -> None:
    grid = write(tmp_path / "g.yaml", "models: [late_fusion]\ndatasets: [mosi]\nseeds: [1]\n")
    monkeypatch.chdir(tmp_path)
    (run,) = plan_runs(load_grid(grid), Path("out"), data_root=Path("data"))
    assert run.cfg["data"]["root"] == str(tmp_path / "data")
    assert run.given["data.root"] == str(tmp_path / "data")
    assert run.given["model.name"] == "late_fusion" and "seed" not in run.given


@pytest.mark.skipif(not BENCH_GRIDS, reason="bench/grids is not in this checkout")
def test_bench_grids_plan(tmp_path: Path) -> None:
    # the grids behind BENCHMARKS.md stay valid as configs and models change
    runs = prepare(BENCH_GRIDS, tmp_path / "grid")
    names = [r.name for r in runs]
    assert len(names) == len(set(names))
    assert all(n.split("_", 1)[0] in ("mosi", "poria", "mosei") for n in names)
    assert all(r.spec.seeds == (1111, 1112, 1113, 1114, 1115) for r in runs)
