"""`mimsa sweep`: plan a sweep from grid files and run it with a backend; OUT/sweep.csv.

    mimsa sweep GRID.yaml [--out DIR] [--backend local|ray] [--address ADDR] [--jobs N]

See `mimsa.sweep.grid` for the file, `mimsa.sweep.plan` for skip/resume and the status table,
`mimsa.sweep.local` and `mimsa.sweep.ray_backend` for the backends.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from pathlib import Path

from mimsa.errors import ConfigError
from mimsa.sweep.plan import PlannedRun, RunStatus, load_grids, plan_runs, write_status

BACKENDS = ("local", "ray")


def default_out(grids: list[Path]) -> Path:
    """Return the default output folder: runs/sweep-<grid stem> (one grid only)."""
    if len(grids) != 1:
        raise ConfigError("several grid files need --out DIR (one folder for all their runs)")
    return Path("runs") / f"sweep-{Path(grids[0]).stem}"


def prepare(grids: list[Path], out: Path, data_root: Path | None = None,
            only: list[str] | None = None) -> list[PlannedRun]:
    """Return the planned runs of `grids` under `out` (`only`: keep the runs whose name
    matches one of these shell patterns). Everything is checked here (see `plan_runs`)."""
    if not grids:
        raise ConfigError("give a grid file: mimsa sweep GRID.yaml")
    specs = load_grids([Path(g) for g in grids])
    if only:
        unmatched = [p for p in only if not any(fnmatch.fnmatchcase(s.name, p) for s in specs)]
        if unmatched:
            raise ConfigError(f"--only '{unmatched[0]}' matches no run of the grid(s); "
                              f"mimsa sweep ... --list shows the run names")
        specs = [s for s in specs if any(fnmatch.fnmatchcase(s.name, p) for p in only)]
    return plan_runs(specs, Path(out), data_root)


def run_sweep(runs: list[PlannedRun], out: Path, backend: str = "local",
              address: str | None = None, jobs: int | None = None,
              report: Callable[[str], None] = print) -> tuple[list[RunStatus], bool]:
    """Train `runs` with `backend`; write OUT/sweep.csv; return (statuses, interrupted).

    Raises `ConfigError` for an unknown backend, or options the backend does not take
    (--address, --jobs with local), and what the backend raises before its first run."""
    if backend not in BACKENDS:
        raise ConfigError(f"--backend {backend}: choose one of {', '.join(BACKENDS)}")
    if backend == "local":
        for option, value in (("--address", address), ("--jobs", jobs)):
            if value is not None:
                raise ConfigError(f"{option} applies to --backend ray only; drop it or add "
                                  f"--backend ray")
        from mimsa.sweep.local import run_local

        rows, interrupted = run_local(runs, report)
    else:
        from mimsa.sweep.ray_backend import run_ray

        rows, interrupted = run_ray(runs, Path(out), address, jobs, report)
    write_status(Path(out), rows)
    return rows, interrupted
