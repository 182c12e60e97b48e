"""The `mimsa` command: train, evaluate, datasets, models, data."""

from __future__ import annotations

import functools
import inspect
import os
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

try:  # typer vendors its own click; its exceptions are the ones raised here
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - typer versions that use click itself
    from click import exceptions as click_errors

from mimsa import config as config_mod
from mimsa.config_schema import SEED_RANGE
from mimsa.errors import (
    ConfigError,
    MimsaError,
    MissingExtraError,
    RunError,
    raised_by_interrupt,
)
from mimsa.metrics import format_metrics_table

app = typer.Typer(help="Multimodal sentiment analysis with information-theoretic fusion.\n\n"
                  "Errors you can fix (a setting, a file, a run directory) are one red line and "
                  "exit code 2; anything else is a bug in mimsa, printed with its traceback "
                  "(exit code 1). --debug shows every traceback.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console()
err_console = Console(stderr=True)


ISSUES_URL = "https://github.com/mimsa-project/mimsa/issues"
_DEBUG = {"on": False}  # set by the --debug option of this process's command line


@app.callback()
def main(debug: Annotated[bool, typer.Option(
        "--debug", help="show the full traceback of every error (for bug reports)")] = False,
         ) -> None:
    """Multimodal sentiment analysis with information-theoretic fusion.

    Errors you can fix (a bad setting, file or run directory) are one red line and exit code
    2; anything else is a bug in mimsa and prints its traceback (exit code 1).
    """
    _DEBUG["on"] = debug


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Print a warning as one yellow line (`warning: ...`) instead of Python's file:line form;
    --debug keeps Python's form."""
    del category, filename, lineno, file, line
    err_console.print(f"[yellow]warning:[/yellow] {escape(' '.join(str(message).split()))}",
                      highlight=False, soft_wrap=True)


def interrupted() -> NoReturn:
    """Report a Ctrl-C in one line and exit with 130."""
    err_console.print("[yellow]interrupted[/yellow]: what was finished is kept; a training run "
                      "continues with --resume")
    raise typer.Exit(130) from None


def friendly_errors(fn):
    """Turn `MimsaError` (an error the user can fix) into one red line on stderr and exit
    code 2; any other exception is a bug: one line saying so, then the traceback (exit 1).
    With --debug every error shows its traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with warnings.catch_warnings():
                if not _DEBUG["on"]:
                    warnings.simplefilter("default")
                    warnings.showwarning = _one_line_warning
                return fn(*args, **kwargs)
        except MimsaError as err:
            if raised_by_interrupt(err):
                interrupted()
            if _DEBUG["on"]:
                err_console.print_exception()
            message = " ".join(str(err.args[0] if err.args else err).split())
            err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False,
                              soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            interrupted()
        except (typer.Exit, typer.Abort, click_errors.ClickException):
            raise
        except Exception as err:
            if raised_by_interrupt(err):
                interrupted()
            err_console.print(f"[red]error: this is a bug in mimsa[/red] (not in your input); "
                              f"please report it at {ISSUES_URL} with the command you ran and "
                              f"the traceback below", highlight=False, soft_wrap=True)
            traceback.print_exc(file=sys.stderr)
            raise typer.Exit(1) from None

    return wrapper


def _display(quiet: bool):
    from mimsa.train.display import QuietDisplay, RichDisplay

    if quiet or os.environ.get("CI"):
        return QuietDisplay()
    return RichDisplay(err_console)


@app.command(context_settings={"allow_extra_args": True})
@friendly_errors
def train(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option("-m", "--model", help="model name")] = None,
    dataset: Annotated[str | None, typer.Option("-d", "--dataset",
                                                help="dataset name or path")] = None,
    seeds: Annotated[list[int] | None, typer.Option(
        "--seeds", help="one run per seed: --seeds 1111 1112 1113 1114 1115")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="run directory")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML config file")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="override a config key: --set train.epochs=5")] = None,
    data_root: Annotated[Path | None, typer.Option(
        "--data-root", help="where real datasets live (default $MIMSA_DATA)")] = None,
    resume: Annotated[bool, typer.Option("--resume",
                                         help="continue an interrupted run in --out")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress display")] = False,
) -> None:
    """Train a model (default: late_fusion on the embedded synthetic data)."""
    from mimsa.eval.aggregate import write_seed_summary
    from mimsa.train.run import check_run_config, train_run, train_seeds

    seed_list = list(seeds or []) + _extra_seeds(ctx.args, bool(seeds))
    overrides = list(set_ or [])
    if data_root is not None:
        overrides.append(f"data.root={data_root}")
    if resume and out is None:
        raise ConfigError("--resume needs --out RUN_DIR (the run to continue)")
    if resume and config is None:  # --set values are checked against the run's own model
        model, dataset = _saved_names(out, model, dataset)
    cfg, sources = config_mod.resolve_with_sources(model, dataset, config, overrides)
    check_run_config(cfg)
    given = config_mod.explicit_values(cfg, sources)
    _check_seeds(seed_list, out, resume)
    _absolute_data_paths(cfg)
    if seed_list and "seed" in given and [given["seed"]] != seed_list:
        raise ConfigError(f"seed={given['seed']} is set and --seeds {' '.join(map(str, seed_list))}"
                          f" is given; give the seeds in one place")
    name = f"{cfg['model']['name']}_{Path(str(cfg['data']['name'])).name}"
    out = out or Path("runs") / f"{name}_{time.strftime('%Y%m%d-%H%M%S')}"
    display = _display(quiet)
    if len(seed_list) > 1:
        given.pop("seed", None)
        results = train_seeds(cfg, seed_list, out, resume=resume, display=display, given=given)
        write_seed_summary(out, cfg, results)
        console.print((out / "summary.md").read_text(), markup=False)
        console.print(f"runs and summary in {out}")
        return
    if seed_list:
        cfg["seed"] = given["seed"] = seed_list[0]
    metrics = train_run(cfg, out, resume=resume, display=display, given=given)
    saved = config_mod.load_yaml(out / "config.yaml")  # on --resume, the settings that ran
    _print_metrics(metrics, f"{saved['model']['name']} on {saved['data']['name']}, seed "
                   f"{metrics.get('seed')}, best epoch {metrics.get('best_epoch')}")
    console.print(f"run saved in {out}")


def _saved_names(out: Path, model: str | None, dataset: str | None
                 ) -> tuple[str | None, str | None]:
    """Return (model, dataset): those given, else those of the run in `out` being resumed
    (its config.yaml, or its first seed's), so a --set meets the run's model and presets."""
    saved_files = [out / "config.yaml", *sorted(out.glob("seed-*/config.yaml"))]
    saved_file = next((f for f in saved_files if f.is_file()), None)
    if saved_file is None:
        return model, dataset
    saved = config_mod.load_yaml(saved_file)
    return (model or saved.get("model", {}).get("name"),
            dataset or saved.get("data", {}).get("name"))


def _check_seeds(seeds: list[int], out: Path | None, resume: bool) -> None:
    """Raise ConfigError for seeds numpy/torch cannot take, a seed given twice, or --seeds
    resuming a single-seed run directory."""
    low, high = SEED_RANGE
    bad = [s for s in seeds if not low <= s <= high]
    if bad:
        raise ConfigError(f"--seeds {bad[0]}: a seed must be in [{low}, {high}]")
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise ConfigError(f"--seeds: seed {twice[0]} is given twice; give each seed once")
    if resume and out is not None and len(seeds) > 1 and (out / "config.yaml").is_file():
        raise ConfigError(f"{out} holds a single-seed run; resume it without --seeds (or "
                          f"with its one seed), or start the multi-seed run with another --out")


def _absolute_data_paths(cfg: dict) -> None:
    """Store a dataset given as a path, and data.root, as absolute paths, so the run can be
    loaded from any working directory."""
    from mimsa.data.registry import list_datasets

    name = str(cfg["data"]["name"])
    if name not in {entry.name for entry in list_datasets()} and Path(name).exists():
        cfg["data"]["name"] = str(Path(name).resolve())
    if cfg["data"]["root"] is not None:
        cfg["data"]["root"] = str(Path(cfg["data"]["root"]).expanduser().resolve())


def _extra_seeds(extra: list[str], after_seeds: bool) -> list[int]:
    """Return the seeds given as `--seeds 1111 1112 ...` (click keeps all but the first as
    extra arguments); anything else is an error."""
    if not extra:
        return []
    if not after_seeds or not all(a.lstrip("-").isdigit() for a in extra):
        raise ConfigError(f"unexpected argument(s): {' '.join(extra)} (train takes options "
                         f"only; seeds go after --seeds)")
    return [int(a) for a in extra]


def _run_marker(protocol: str, context: dict | None) -> str:
    """Return the marks a result carries beside its title: a test-informed (legacy) protocol
    and conversational context, so neither is read as a clean single-utterance result."""
    marker = "  [protocol: legacy (test-informed)]" if protocol == "legacy" else ""
    if context:
        marker += f"  [with context: before {context['before']}, after {context['after']}]"
    return marker


def _print_metrics(metrics: dict, title: str) -> None:
    marker = _run_marker(metrics.get("protocol", "clean"), metrics.get("context"))
    console.print(f"[bold]{escape(title)}[/bold]{escape(marker)}")  # "[...]" is not markup
    console.print(format_metrics_table({k: metrics[k] for k in ("valid", "test")}),
                  highlight=False)


@app.command()
@friendly_errors
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="a finished run (or multi-seed) directory")],
    drop: Annotated[list[str] | None, typer.Option(
        "--drop", help="modality to remove at test time: a, v, t or a combination (av); "
                       "repeatable")] = None,
    fill: Annotated[str, typer.Option(
        "--fill", help="what replaces a dropped modality: zero, or mean (its training-split "
                       "mean feature vector; not for token-id text)")] = "zero",
) -> None:
    """Re-evaluate a finished run's selected checkpoint on valid and test.

    A run trained with the `ulgm` objective (self_mm) also gets RUN/unimodal_labels.csv: the
    unimodal labels it generated for the training split.
    """
    from mimsa.encoders.cache import EncoderCache
    from mimsa.eval.evaluate import evaluate_run
    from mimsa.eval.unimodal_labels import write_unimodal_labels

    transform = None
    if drop:
        from mimsa.data.drop import ModalityDrop

        transform = ModalityDrop(drop, fill)
    elif fill != "zero":
        from mimsa.data.drop import ModalityDrop

        ModalityDrop("a", fill)  # an unknown --fill is named as such
        raise ConfigError(f"--fill {fill} fills a dropped modality; give --drop a|v|t with it")
    runs = sorted(run_dir.glob("seed-*")) if not (run_dir / "config.yaml").exists() else [
        run_dir]
    if not runs:
        raise RunError(f"{run_dir}: no run found (expected config.yaml or seed-*/)")
    cache = EncoderCache()  # shared by the seeds: a frozen encoder encodes each text once
    for run in runs:
        title = str(run) + (f"  (dropped {transform.drop}, fill {fill})" if transform else "")
        metrics = evaluate_run(run, transform=transform, cache=cache)
        if transform is not None and run == runs[0]:
            console.print(f"[bold]{transform.describe()}[/bold]", highlight=False)
        _print_metrics(metrics, title)
        labels = write_unimodal_labels(run)
        if labels is not None:
            console.print(f"generated unimodal labels of the training split: {labels}")


@app.command()
@friendly_errors
def dependency(
    run_dir: Annotated[Path, typer.Argument(help="a finished run trained with a penalty")],
    split: Annotated[str, typer.Option("--split", help="train, valid or test")] = "test",
    top: Annotated[int, typer.Option("--top", help="samples shown at each end")] = 10,
    out: Annotated[Path | None, typer.Option(
        "--out", help="CSV file (default RUN_DIR/dependency_<split>.csv)")] = None,
) -> None:
    """Score every sample by how strongly its modalities agree (the trained critic T)."""
    from rich.markup import escape
    from rich.table import Table

    from mimsa.eval.dependency import dependency_report, extremes

    if top < 1:
        raise ConfigError(f"--top {top}: give the number of samples shown at each end, >= 1")
    rows, path, name = dependency_report(run_dir, split, out)
    highest, lowest = extremes(rows, top)
    for title, chosen in ((f"highest {name} scores (modalities agree most)", highest),
                          (f"lowest {name} scores (modalities agree least)", lowest)):
        table = Table(title=title, title_justify="left", show_lines=False)
        for column, justify in (("id", "left"), ("score", "right"), ("label", "right"),
                                ("prediction", "right"), ("text", "left")):
            table.add_column(column, justify=justify, overflow="fold")
        for r in chosen:
            table.add_row(escape(r.id), f"{r.score:.4f}", f"{r.label:.2f}",
                          f"{r.prediction:.2f}", escape(r.text))
        console.print(table)
    console.print(f"{len(rows)} {split} samples scored; written to {path}", highlight=False)


@app.command()
@friendly_errors
def robustness(
    run_dirs: Annotated[list[str], typer.Argument(
        help="finished run directories (single- or multi-seed) to compare", metavar="RUN_DIR",
        show_default=False)],
    corruption: Annotated[str, typer.Option(
        "--corruption", "-c", help="text_missing, text_shuffle, frame_drop, visual_blur, "
                                   "feature_noise or modality_drop")],
    rates: Annotated[list[str] | None, typer.Option(
        "--rates", help="rates in [0, 1]: --rates 0 0.1 0.3 0.5 0.7 0.9 (or 0,0.1,0.3); rate "
                        "0 is always evaluated")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="output folder (default RUN_DIR/robustness for one run)")] = None,
    seed: Annotated[int, typer.Option("--seed", help="corruption seed")] = 0,
    split: Annotated[str, typer.Option("--split", help="train, valid or test")] = "test",
    option: Annotated[list[str] | None, typer.Option(
        "--option", help="corruption option key=value, e.g. --option mode=delete; "
                         "repeatable")] = None,
) -> None:
    """Metrics of runs on inputs corrupted at increasing rates: table, CSV, AUC, plot."""
    from mimsa.eval.robustness import robustness as measure
    from mimsa.eval.robustness import write_report

    paths, rate_list = _runs_and_rates(run_dirs, list(rates or []))
    options = {}
    for item in option or []:
        key, value = config_mod.parse_override(item, "--option")
        options[".".join(key)] = value
    if out is None:
        if len(paths) != 1:
            raise ConfigError("several runs: choose the output folder with --out DIR")
        out = paths[0] / "robustness"
    _check_output_folder(out)
    result = measure(paths, corruption, rate_list, seed=seed, split=split, options=options)
    written = write_report(result, out)
    console.print(written["md"].read_text(), highlight=False, soft_wrap=True)
    console.print(f"written: {', '.join(str(p) for p in written.values())}", highlight=False,
                  soft_wrap=True)


def _check_output_folder(folder: Path) -> None:
    """Raise ConfigError before any work when `folder` (an output folder) is a file or lies
    under a file."""
    for parent in (folder, *folder.parents):
        if parent.exists() and not parent.is_dir():
            raise ConfigError(f"--out {folder}: {parent} is a file, not a folder; choose "
                              f"another --out")


def _runs_and_rates(positionals: list[str], rates: list[str]) -> tuple[list[Path], list[float]]:
    """Return (run directories, rates). `--rates 0 0.1 0.3` leaves all but the first number
    among the positional arguments: a positional that is a number and not an existing path is
    a rate. A --rates value may also list several rates separated by commas."""
    paths: list[Path] = []
    values: list[float] = []
    for item in rates:
        for part in str(item).replace(",", " ").split():
            values.append(_number(part, "--rates"))
    for item in positionals:
        if not Path(item).exists() and _is_number(item):
            if not rates:
                raise ConfigError(f"unexpected number '{item}': rates go after --rates")
            values.append(float(item))
        else:
            paths.append(Path(item))
    if not paths:
        raise ConfigError("give at least one run directory: mimsa robustness RUN_DIR ...")
    if not values:
        raise ConfigError("give the rates: --rates 0 0.1 0.3 0.5 0.7 0.9")
    return paths, values


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _number(text: str, option: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{option} '{text}' is not a number; use rates in [0, 1]") from None


@app.command()
@friendly_errors
def compare(
    run_dirs: Annotated[list[str], typer.Argument(
        help="finished runs (multi- or single-seed); the first is the reference",
        metavar="RUN_DIR", show_default=False)],
    metrics: Annotated[list[str] | None, typer.Option(
        "--metrics", help="metrics to show: --metrics MAE Corr Non0_acc_2 (or MAE,Corr); "
                          "default MAE Corr Has0_acc_2 Non0_acc_2 Non0_F1_score "
                          "Mult_acc_7")] = None,
    draws: Annotated[int, typer.Option("--draws", help="bootstrap draws")] = 10_000,
    seed: Annotated[int, typer.Option("--seed", help="bootstrap seed")] = 0,
    split: Annotated[str, typer.Option("--split", help="valid or test")] = "test",
    label: Annotated[list[str] | None, typer.Option(
        "--label", help="a run's name in the tables, one per run in order; repeatable")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Markdown file")] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="CSV file")] = None,
) -> None:
    """Compare runs with the first: mean ± std, paired t-test over seeds, paired bootstrap
    over test samples (95% intervals, p-values; Holm-adjusted for more than two runs)."""
    from mimsa.eval import compare as compare_mod

    names = [m for item in metrics or [] for m in item.replace(",", " ").split()]
    paths: list[Path] = []
    for item in run_dirs:  # `--metrics MAE Corr` leaves Corr among the positionals
        if metrics and not Path(item).exists() and not Path(item).is_symlink():
            if item not in compare_mod.METRIC_KEYS:
                raise ConfigError(f"'{item}' is neither a run directory nor a metric; valid "
                                  f"metrics: {compare_mod.valid_metrics_text()}")
            names.append(item)
        else:
            paths.append(Path(item))
    compare_mod.check_metrics(names)
    for path, option in ((out, "--out"), (csv_out, "--csv")):
        if path is not None:
            compare_mod.check_output_file(path, option)
    result = compare_mod.compare(paths, names, split=split, draws=draws, seed=seed,
                                 labels=list(label or []))
    typer.echo(compare_mod.render_markdown(result), nl=False)  # plain Markdown, unstyled
    written = compare_mod.write_comparison(result, out, csv_out)
    if written:
        err_console.print(f"written: {', '.join(str(p) for p in written)}", highlight=False,
                          soft_wrap=True, markup=False)


@app.command()
@friendly_errors
def ensemble(
    run_dir: Annotated[Path, typer.Argument(help="a finished multi-seed run (seed-*/)")],
    json_out: Annotated[Path | None, typer.Option(
        "--json", help="also write the metrics to this JSON file")] = None,
) -> None:
    """Score the mean of a multi-seed run's predictions (a seed ensemble) on valid and test.

    Every seed keeps its own validation-selected checkpoint; the ensemble is several models,
    so report it as its own labelled row, never beside single-model results as one of them.
    """
    from mimsa.eval.compare import check_output_file
    from mimsa.eval.ensemble import seed_ensemble, write_ensemble
    from mimsa.metrics import format_metrics_table

    if json_out is not None:
        check_output_file(json_out, "--json")
    result = seed_ensemble(run_dir)
    marker = _run_marker(result.protocol, result.context)
    console.print(f"[bold]{escape(str(run_dir))}: ensemble of {len(result.seeds)} seeds "
                  f"({', '.join(map(str, result.seeds))}), mean prediction[/bold]"
                  f"{escape(marker)}")
    console.print(format_metrics_table(result.metrics), highlight=False)
    console.print("a seed ensemble is several models: report it as its own row", style="dim")
    if json_out is not None:
        err_console.print(f"written: {write_ensemble(result, json_out)}", highlight=False,
                          soft_wrap=True, markup=False)


@app.command()
@friendly_errors
def datasets(
    data_root: Annotated[Path | None, typer.Option("--data-root")] = None,
    load: Annotated[bool, typer.Option(
        "--load/--no-load", help="load each dataset to show its full card")] = True,
) -> None:
    """List the registered datasets with their cards."""
    from mimsa.data.registry import list_datasets, load_dataset

    for entry in list_datasets():
        console.print(f"[bold]{entry.name}[/bold]: {entry.summary}", highlight=False)
        if not load:
            continue
        try:
            card = load_dataset(entry.name, data_root).card
        except MimsaError as err:
            console.print(f"  [yellow]not loadable here[/yellow]: {escape(str(err))}",
                          highlight=False)
            continue
        console.print("\n".join(card.render().splitlines()[1:]), highlight=False,
                      soft_wrap=True)


@app.command()
@friendly_errors
def models() -> None:
    """List the registered models with their options."""
    from mimsa.models.base import list_models, model_options

    for name, cls in list_models().items():
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        module_doc = (sys.modules[cls.__module__].__doc__ or "").strip().splitlines()[0]
        console.print(f"[bold]{name}[/bold]: {module_doc or doc}", highlight=False)
        options = ", ".join(f"{k}={v}" for k, v in model_options(name).items())
        console.print(f"  options: {options}", highlight=False)


@app.command()
@friendly_errors
def objectives() -> None:
    """List the registered objectives: their terms, optimizer and options.

    Options are configured under objectives.<name>, e.g. --set objectives.cpc.modalities=ta.
    """
    from mimsa.objectives.base import list_objectives, objective_options

    for name, cls in list_objectives().items():
        module_doc = (sys.modules[cls.__module__].__doc__ or "").strip().splitlines()
        console.print(f"[bold]{name}[/bold]: {module_doc[0] if module_doc else ''}",
                      highlight=False, soft_wrap=True)
        options = ", ".join(f"{k}={v}" for k, v in objective_options(name).items())
        console.print(f"  terms: {', '.join(cls.terms)}; optimizer: {cls.optimizer}; "
                      f"options: {options or '(none)'}", highlight=False, soft_wrap=True)


@app.command("config")
@friendly_errors
def show_config(
    model: Annotated[str | None, typer.Option("-m", "--model", help="model name")] = None,
    dataset: Annotated[str | None, typer.Option("-d", "--dataset",
                                                help="dataset name or path")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML config file")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="override a config key: --set train.epochs=5")] = None,
    data_root: Annotated[Path | None, typer.Option(
        "--data-root", help="where real datasets live (default $MIMSA_DATA)")] = None,
) -> None:
    """Print the resolved configuration and where each value came from.

    Every value is checked as `mimsa train` would check it; nothing is trained or written.
    """
    from mimsa.objectives.penalty_config import apply_penalty
    from mimsa.train.run import check_run_config

    overrides = list(set_ or [])
    if data_root is not None:
        overrides.append(f"data.root={data_root}")
    cfg, sources = config_mod.resolve_with_sources(model, dataset, config, overrides)
    check_run_config(cfg)
    console.print(config_mod.render_with_sources(cfg, sources), highlight=False,
                  soft_wrap=True, markup=False)
    expanded = apply_penalty(cfg)
    if expanded is not cfg:
        console.print(f"# penalty.kind={cfg['penalty']['kind']} rewrites these sections when "
                      f"the run is built (config.yaml keeps the penalty: section as given; "
                      f"see mimsa/objectives/penalty_config.py):", highlight=False,
                      markup=False)
        shown = {"objectives": expanded["objectives"],
                 "train": {k: expanded["train"][k] for k in ("optimizers", "stages")}}
        console.print(config_mod.dump(shown), highlight=False, markup=False)


@app.command()
@friendly_errors
def extract(
    video_dir: Annotated[Path, typer.Argument(help="folder of clips: VIDEO_ID/CLIP_ID.mp4 or "
                                                   "VIDEO_ID_CLIP_ID.mp4")],
    labels: Annotated[Path, typer.Option("--labels", help="label.csv: video_id, clip_id, text, "
                                                          "label, mode (or id, text, ...)")],
    to: Annotated[Path, typer.Option("--to", help="the dataset folder to build")],
    audio: Annotated[list[str] | None, typer.Option(
        "--audio", help="audio extractor(s), repeatable or comma-separated: librosa "
                        "(default), egemaps_lld, egemaps_functionals; none for no audio")] = None,
    visual: Annotated[list[str] | None, typer.Option(
        "--visual", help="visual extractor(s): fer_emotion (default), mediapipe_mesh; none "
                         "for no video")] = None,
    asr: Annotated[bool, typer.Option("--asr", help="transcribe clips whose text is empty "
                                                    "(offline whisper; needs .\\[asr])")] = False,
    aligned: Annotated[bool, typer.Option(
        "--aligned", help="one feature row per ASR word (runs ASR on every clip)")] = False,
    workers: Annotated[int, typer.Option("--workers", help="clips extracted in parallel")] = 1,
    backend: Annotated[str, typer.Option("--backend", help="local (process pool) or ray "
                                                           "(needs .\\[sweep])")] = "local",
    fps: Annotated[float, typer.Option("--fps", help="video frames sampled per second")] = 10.0,
    overwrite: Annotated[bool, typer.Option("--overwrite",
                                            help="rebuild an existing dataset")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
) -> None:
    """Build a dataset from raw clips with offline feature extractors (needs .\\[features]).

    Per-clip failures go to DATASET_DIR/failures.csv; an interrupted run resumes when the same
    command is run again.
    """
    from mimsa.features.extract import ProgressBar, extract_dataset, parse_names

    bar = ProgressBar(err_console, enabled=not (quiet or os.environ.get("CI")))
    try:
        with bar:
            result = extract_dataset(
                video_dir, labels, to, audio=parse_names(audio, ["librosa"]),
                visual=parse_names(visual, ["fer_emotion"]), asr=asr, aligned=aligned,
                workers=workers, backend=backend, fps=fps, overwrite=overwrite,
                progress=bar.update)
    except KeyboardInterrupt:
        err_console.print(f"[yellow]interrupted[/yellow]: extracted clips are cached in "
                          f"{escape(str(to))}/.extract; run the same command again to resume")
        raise typer.Exit(130) from None
    rate = result.video_seconds / max(result.seconds, 1e-9)
    console.print(f"dataset written to {result.target}: {result.kept} clips kept, "
                  f"{len(result.failures)} failed (see {result.target / 'failures.csv'}), "
                  f"{result.from_cache} from the cache; {result.seconds:.1f} s for "
                  f"{result.video_seconds:.1f} s of video ({rate:.2f}x real time)",
                  highlight=False, soft_wrap=True)
    for clip, stage, reason in result.failures[:10]:
        console.print(f"  failed {escape(clip)} at {stage}: {escape(reason)}", highlight=False,
                      soft_wrap=True)


@app.command()
@friendly_errors
def predict(
    run_dir: Annotated[Path, typer.Argument(help="a finished run (or multi-seed) directory")],
    clips: Annotated[list[Path], typer.Argument(help="video or audio clips", metavar="CLIP")],
    text: Annotated[list[str] | None, typer.Option(
        "--text", help="the transcript (one per clip, in order); default: offline speech "
                       "recognition (needs .\\[asr])")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="one JSON object per clip")] = False,
) -> None:
    """Score clips with a trained run: score in [-3, 3], 7- and 2-class labels, and the score
    with each modality dropped."""
    import json

    from mimsa.predict import Predictor, check_inputs, format_result

    texts = list(text) if text else [None] * len(clips)
    check_inputs(clips, texts)  # every clip and text before the first result is printed
    predictor = Predictor(run_dir)
    for clip, given in zip(clips, texts, strict=True):
        result = predictor.predict_clip(clip, given)
        if json_out:
            print(json.dumps(result, ensure_ascii=False), flush=True)
        else:
            console.print(format_result(result), highlight=False, markup=False,
                          soft_wrap=True)


@app.command()
@friendly_errors
def tune(
    model: Annotated[str, typer.Option("-m", "--model", help="model name")],
    dataset: Annotated[str, typer.Option("-d", "--dataset", help="dataset name or path")],
    trials: Annotated[int, typer.Option(
        "--trials", help="the study ends with this many finished (complete + pruned) trials; "
                         "re-running the command continues a stopped study")],
    space: Annotated[Path | None, typer.Option(
        "--space", help="search space YAML (default: the model's, mimsa/configs/spaces/"
                        "MODEL.yaml)")] = None,
    backend: Annotated[str, typer.Option(
        "--backend", help="local (trials one after another here) or ray (Ray Tune trials; "
                          "needs the sweep extra)")] = "local",
    jobs: Annotated[int, typer.Option(
        "--jobs", help="ray: trials at once (the CPUs of a local Ray cluster)")] = 1,
    storage: Annotated[str | None, typer.Option(
        "--storage", help="SQLAlchemy URL of the study database (default sqlite:///OUT/"
                          "study.db); workers sharing it share the study")] = None,
    study: Annotated[str | None, typer.Option(
        "--study", help="study name (default MODEL_DATASET)")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="output folder (default runs/tune/STUDY)")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="fixed setting of every trial: --set train.epochs=20")] = None,
    seed: Annotated[int, typer.Option(
        "--seed", help="the training seed of every trial and the sampler's seed")] = 1111,
    data_root: Annotated[Path | None, typer.Option(
        "--data-root", help="where real datasets live (default $MIMSA_DATA)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress display")] = False,
) -> None:
    """Tune hyperparameters with Optuna on the validation split (test is never scored).

    Writes OUT/best.yaml (for mimsa train --config), trials.csv, history.png and
    importances.png, and one run per trial under OUT/trials/.
    """
    from mimsa.data.registry import list_datasets
    from mimsa.sweep.tune import TuneRequest, shown_url
    from mimsa.sweep.tune import tune as run_study

    if dataset not in {entry.name for entry in list_datasets()} and Path(dataset).exists():
        dataset = str(Path(dataset).resolve())  # trials may run in other folders (Ray)
    overrides = list(set_ or [])
    if data_root is not None:
        overrides.append(f"data.root={data_root.expanduser().resolve()}")
    request = TuneRequest(model=model, dataset=dataset, trials=trials, out=Path("."),
                          space=space, sets=overrides, seed=seed, storage=storage,
                          study=study, backend=backend, jobs=jobs)
    request.out = out or Path("runs") / "tune" / request.study_name
    try:
        result = run_study(request, display=_display(quiet), progress=lambda line: console.print(
            line, highlight=False, soft_wrap=True))
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/yellow]: the study is saved in its database; "
                          "run the same command again to continue it")
        raise typer.Exit(130) from None
    for note in result.notes:
        err_console.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False,
                          soft_wrap=True)
    console.print(f"study '{request.study_name}' in {shown_url(request.storage_url)}: "
                  f"{result.finished} finished trials; table {result.written['trials']}",
                  highlight=False, soft_wrap=True)
    if result.best is None:
        console.print("no trial completed (all pruned or failed): no best.yaml yet; re-run with "
                      "more --trials", highlight=False)
        return
    console.print(f"[bold]best trial {result.best.number}[/bold]: validation {result.metric} "
                  f"{result.best.value:.4f}", highlight=False)
    for key, value in result.best.params.items():
        console.print(f"  {key} = {value}", highlight=False)
    console.print(f"best config: {result.written['best']} (train it: mimsa train --config "
                  f"{result.written['best']} --seeds 1111 1112 1113 1114 1115)",
                  highlight=False, soft_wrap=True)


@app.command()
@friendly_errors
def sweep(
    grids: Annotated[list[Path], typer.Argument(help="grid YAML file(s)", metavar="GRID.yaml")],
    out: Annotated[Path | None, typer.Option(
        "--out", help="folder of the runs, one per combination (default runs/sweep-GRID)")] = None,
    backend: Annotated[str, typer.Option(
        "--backend", help="local (one run after another here) or ray (one Ray Tune trial per "
                          "run and seed; needs the sweep extra)")] = "local",
    address: Annotated[str | None, typer.Option(
        "--address", help="ray: a running cluster, HOST:PORT (default: start a local one)")
    ] = None,
    jobs: Annotated[int | None, typer.Option(
        "--jobs", help="ray: the CPUs of the local cluster (with --address: trials at once)")
    ] = None,
    data_root: Annotated[Path | None, typer.Option(
        "--data-root", help="where real datasets live (default $MIMSA_DATA)")] = None,
    only: Annotated[list[str] | None, typer.Option(
        "--only", help="only the runs whose name matches this shell pattern (repeatable)")
    ] = None,
    list_: Annotated[bool, typer.Option(
        "--list", help="print each run's seeds finished so far and its equivalent mimsa "
                       "train command; train nothing")
    ] = False,
) -> None:
    """Train every run of a grid file (models × datasets × encoders × variants × seeds).

    Finished runs are skipped and interrupted ones resume, whichever backend ran them; a failed
    run is reported and the others go on. Each run's status goes to OUT/sweep.csv; the exit
    code is 2 when a run failed.
    """
    from mimsa.sweep.plan import format_status, seed_finished
    from mimsa.sweep.runner import default_out, prepare, run_sweep

    out = out or default_out(grids)
    runs = prepare(grids, out, data_root, only)
    if list_:
        for run in runs:
            done = sum(seed_finished(run.seed_dir(s)) for s in run.spec.seeds)
            console.print(f"{run.name} ({done}/{len(run.spec.seeds)} seeds done): "
                          f"{run.spec.train_command(out, data_root)}",
                          highlight=False, markup=False, soft_wrap=True)
        return
    rows, interrupted = run_sweep(runs, out, backend, address, jobs, report=lambda line: (
        console.print(line, highlight=False, markup=False, soft_wrap=True)))
    console.print(format_status(rows), highlight=False, markup=False, soft_wrap=True)
    console.print(f"status of every run in {out / 'sweep.csv'}", highlight=False)
    if interrupted:
        err_console.print("[yellow]interrupted[/yellow]: finished seeds are kept; run the same "
                          "command again to continue")
        raise typer.Exit(130)
    failed = [row for row in rows if row.status == "failed"]
    if failed:
        err_console.print(f"[red]error:[/red] {len(failed)} of {len(rows)} runs failed (first: "
                          f"{escape(failed[0].run)}: {escape(failed[0].error)}); see "
                          f"{escape(str(out / 'sweep.csv'))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)


def _mount_data_app() -> None:
    """Add `mimsa data`; if its imports fail, `mimsa data` says which package is missing."""
    try:
        from mimsa.data.data_cli import data_app
    except ImportError as err:
        missing, reason = err.name or "a dependency", str(err)

        @app.command("data", context_settings={"allow_extra_args": True,
                                               "ignore_unknown_options": True})
        @friendly_errors
        def data_unavailable(ctx: typer.Context) -> None:
            """Read and convert the field's dataset formats (unavailable: see the error)."""
            del ctx
            raise MissingExtraError(f"mimsa data cannot start: the package '{missing}' does "
                                    f"not import ({reason}); reinstall mimsa with its "
                                    f"dependencies: pip install -e .")

        return
    for command in data_app.registered_commands:
        command.callback = friendly_errors(command.callback)
    app.add_typer(data_app, name="data")


_mount_data_app()


def _reflowed(doc: str) -> str:
    """Return `doc` with each paragraph on one line: typer keeps the line breaks of every
    paragraph after the first, which then break mid-sentence in narrow terminals."""
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


for _command in app.registered_commands:
    if _command.callback is not None and _command.callback.__doc__:
        _command.callback.__doc__ = _reflowed(_command.callback.__doc__)

def main_entry() -> None:
    """The `mimsa` console script: `app` with click's usage errors (an unknown command or
    option, a value of the wrong type) printed as one red line with exit code 2, like every
    other error a user can fix."""
    try:
        code = app(standalone_mode=False)  # an Exit comes back as its code in this mode
    except click_errors.NoArgsIsHelpError as err:
        err_console.print(err.ctx.get_help() if err.ctx else str(err), highlight=False)
        sys.exit(0)
    except click_errors.UsageError as err:
        command = err.ctx.command_path if err.ctx is not None else "mimsa"
        message = " ".join(err.format_message().split())
        err_console.print(f"[red]error:[/red] {escape(message)} (see {command} --help)",
                          highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as err:
        sys.exit(err.exit_code)
    except typer.Abort:
        err_console.print("[yellow]interrupted[/yellow]")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main_entry()
