"""Layering (DESIGN.md "Layout"): a module imports only its own layer and the layers below it.

Lowest first:
  base        errors.py, atomic.py, config.py, config_schema.py, packaged.py, locking.py (they
              import nothing of mimsa but each other; config is here, not just below train,
              because objectives/penalty_config.py reads its DEFAULTS and config.py needs no
              layer; packaged.py (weights from pip parts, shared by features/asr.py and
              encoders/weights.py) and locking.py (the one-writer file lock, shared by
              features/extract.py and train/lock.py) are here because features sits below
              encoders and train)
  data, features, encoders, models, objectives, metrics.py, train, eval, sweep, predict.py, cli

Every `import mimsa.x` / `from mimsa.x import y` / relative import counts: at module level,
inside functions, and under `if TYPE_CHECKING:` too. A lower layer that needs a higher layer's
type takes it as a plain parameter (duck-typed) instead: a type-only import is still a
dependency in the wrong direction, and it becomes a real import the day someone needs the
class at run time. The test parses the source with `ast`; nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import mimsa

ORDER = ("base", "data", "features", "encoders", "models", "objectives", "metrics", "train",
         "eval", "sweep", "predict", "cli")
# first name under mimsa → layer; a module not listed here fails the test until it is placed
LAYER_OF = {"": "base", "errors": "base", "atomic": "base", "config": "base",
            "config_schema": "base", "configs": "base", "packaged": "base", "locking": "base",
            **{name: name for name in ORDER if name != "base"}, "__main__": "cli"}


def module_name(root: Path, path: Path) -> str:
    """Return the dotted name of the module in `path` under the package directory `root`."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """Return (line, dotted name) of every import anywhere in `tree` (relative ones resolved
    against `module`); `from a import b` yields a.b, which is a.b's module when b is one."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return sorted(found)


def layer(name: str, top: str, layers: dict[str, str]) -> str | None:
    """Return the layer of module `name` inside package `top` (None: not in the map)."""
    parts = name.split(".")
    return layers.get(parts[1] if len(parts) > 1 else "")


def upward_imports(root: Path, layers: dict[str, str] = LAYER_OF,
                   order: tuple[str, ...] = ORDER) -> list[str]:
    """Return one line per import of a higher layer (file:line, the two modules and layers),
    and per module missing from `layers`, for the package whose directory is `root`."""
    top, rank = root.name, {name: i for i, name in enumerate(order)}
    problems = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(root, path)
        own = layer(module, top, layers)
        where = path.relative_to(root.parent)
        if own is None:
            problems.append(f"{where}: module {module} has no layer; add it to LAYER_OF in "
                            f"tests/test_layers.py (see DESIGN.md Layout)")
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, target in imported_modules(tree, module, path.name == "__init__.py"):
            if target != top and not target.startswith(f"{top}."):
                continue
            theirs = layer(target, top, layers)
            if theirs is None:
                problems.append(f"{where}:{line}: {module} imports {target}, which has no "
                                f"layer; add it to LAYER_OF in tests/test_layers.py")
            elif rank[theirs] > rank[own]:
                problems.append(f"{where}:{line}: {module} ({own}) imports {target} "
                                f"({theirs}), a higher layer; move the piece to the layer it "
                                f"belongs to, or have the caller pass it in")
    return problems


def test_no_module_imports_a_higher_layer() -> None:
    root = Path(mimsa.__file__).parent
    problems = upward_imports(root)
    assert not problems, "upward imports:\n" + "\n".join(problems)


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_checker_finds_upward_imports(tmp_path) -> None:
    pkg = _write(tmp_path / "pkg", {
        "__init__.py": "",
        "errors.py": "",
        "data/__init__.py": "",
        "data/ok.py": "import os\nfrom pkg.errors import E\nfrom . import ok\n",
        "data/bad.py": ("from typing import TYPE_CHECKING\n"
                        "if TYPE_CHECKING:\n"
                        "    from pkg.train.run import Run\n"
                        "def f():\n"
                        "    import pkg.eval.x\n"
                        "    from ..train import run\n"),
        "train/__init__.py": "",
        "train/run.py": "from pkg.data.ok import x\nfrom pkg import errors\n",
        "eval/__init__.py": "from pkg.train.run import Run\n",
        "eval/x.py": "from .. import train\n",
        "stray.py": "",
    })
    layers = {"": "base", "errors": "base", "data": "data", "train": "train", "eval": "eval"}
    problems = upward_imports(pkg, layers, ("base", "data", "train", "eval"))
    assert problems == [
        "pkg/data/bad.py:3: pkg.data.bad (data) imports pkg.train.run.Run (train), a higher "
        "layer; move the piece to the layer it belongs to, or have the caller pass it in",
        "pkg/data/bad.py:5: pkg.data.bad (data) imports pkg.eval.x (eval), a higher layer; "
        "move the piece to the layer it belongs to, or have the caller pass it in",
        "pkg/data/bad.py:6: pkg.data.bad (data) imports pkg.train.run (train), a higher "
        "layer; move the piece to the layer it belongs to, or have the caller pass it in",
        "pkg/stray.py: module pkg.stray has no layer; add it to LAYER_OF in "
        "tests/test_layers.py (see DESIGN.md Layout)",
    ]


def test_relative_imports_resolve_against_the_package(tmp_path) -> None:
    tree = ast.parse("from . import a\nfrom ..b import c\nfrom .d.e import f\n")
    assert imported_modules(tree, "pkg.x.y", is_package=False) == [
        (1, "pkg.x.a"), (2, "pkg.b.c"), (3, "pkg.x.d.e.f")]
    assert imported_modules(tree, "pkg.x", is_package=True) == [
        (1, "pkg.x.a"), (2, "pkg.b.c"), (3, "pkg.x.d.e.f")]
