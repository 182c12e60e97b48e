"""Importing mimsa has no process-wide side effect on the environment (HF_HUB_OFFLINE included):
offline loading is explicit (local_files_only=True) wherever mimsa loads weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys

SCRIPT = """
import importlib, json, os, pkgutil
before = dict(os.environ)
import mimsa
names = sorted(m.name for m in pkgutil.walk_packages(mimsa.__path__, "mimsa."))
for name in names:
    importlib.import_module(name)
after = dict(os.environ)
changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
print(json.dumps({"modules": names, "changed": changed}))
"""


def test_importing_every_module_leaves_the_environment_unchanged() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert "mimsa.encoders.text" in result["modules"] and "mimsa.cli" in result["modules"]
    assert result["changed"] == []
