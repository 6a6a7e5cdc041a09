import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent

# Property tests explore new examples on a developer's machine (where a new hole is welcome) and
# replay one fixed, derandomized set under CI, so that a green build is reproducible by running
# `CI=true make test` and a submission does not fail on an example nobody has seen.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def pytest_collection_modifyitems(config, items):
    """``@pytest.mark.cuda`` tests run only where torch sees a GPU."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch sees none here)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def has_fvcore() -> bool:
    """Whether fvcore imports here (it is optional: counting works without its cross-check)."""
    try:
        import fvcore.nn  # noqa: F401
    except ImportError:
        return False
    return True


#: For tests of fvcore's own figures: a skip, not a failure, where fvcore is not installed.
needs_fvcore = pytest.mark.skipif(not has_fvcore(), reason="fvcore is not installed (optional)")


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


@pytest.fixture(autouse=True, scope="session")
def _figure_cache(tmp_path_factory):
    """Reports drawn by the tests keep their figures in a folder of this session, not the user's cache."""
    old = os.environ.get("FNBENCH_CACHE_DIR")
    os.environ["FNBENCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("fnbench-cache"))
    yield
    if old is None:
        os.environ.pop("FNBENCH_CACHE_DIR", None)
    else:
        os.environ["FNBENCH_CACHE_DIR"] = old
