import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fnbench_cmd():
    """The real console script of this environment (falls back to ``python -m fnbench``)."""
    exe = Path(sys.executable).with_name("fnbench")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "fnbench"]


@pytest.fixture
def cli_env(tmp_path):
    env = dict(os.environ)
    env["PYTHONWARNINGS"] = "ignore"
    return env
