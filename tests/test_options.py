"""RunOptions: fnbench run's options once, the same keys on the command line, in the plan and back."""

import subprocess
import sys

from fnbench.cli.run import NOT_OPTIONS, run, run_options
from fnbench.options import DEFAULT_BUDGET_S, DEFAULT_PASSES, DEFAULT_PRECISION, DEFAULT_WORKERS, RunOptions

#: The ``cli`` block of a plan as fnbench wrote it before RunOptions (defaults as None and []).
OLD_PLAN = {
    "device": "cpu",
    "targets": ["pconv", "conv"],
    "shape": "8x8x8",
    "layers": 1,
    "budget": 0.3,
    "passes": 1,
    "workers": 0,
    "suite": None,
    "batch": None,
    "n_div": None,
    "groups": None,
    "k": None,
    "stride": None,
    "padding": None,
    "forward": None,
    "opt": [],
    "runtimes": [],
    "memory_format": "contiguous",
    "dtype": "float32",
    "threads": None,
    "precision": None,
    "allocators_": [],
}


def test_an_old_plan_reads_back_with_the_defaults_and_keeps_its_keys():
    o = RunOptions.from_dict(OLD_PLAN)
    assert o.targets == ("pconv", "conv") and o.shape == "8x8x8" and o.layers == 1
    assert (o.budget_s, o.passes, o.workers) == (0.3, 1, 0)
    assert o.precision == DEFAULT_PRECISION and o.runtimes == ("eager",) and o.allocators == ("tuned",)
    assert o.threads is None and o.batch is None  # the device's defaults, decided when the run starts
    none = dict.fromkeys(("n_div", "groups", "k", "stride", "padding", "forward"))
    assert o.target_kwargs == {**none, "opt": ()}
    assert set(o.to_dict()) == set(OLD_PLAN) | {"seed"}


def test_round_trip_and_defaults():
    o = RunOptions(device="cpu", targets=("pconv",), target_options=(("n_div", 2), ("opt", ("a=1",))), threads=2)
    assert RunOptions.from_dict(o.to_dict()) == o
    assert o.to_dict()["opt"] == ["a=1"] and o.to_dict()["n_div"] == 2  # JSON values, operator options flat
    d = RunOptions()
    assert (d.budget_s, d.precision, d.passes, d.workers) == (DEFAULT_BUDGET_S, DEFAULT_PRECISION, DEFAULT_PASSES, 1)
    assert d.workers == DEFAULT_WORKERS and hash(d) == hash(RunOptions())


def test_run_parameters_are_the_options_keys():
    """Every ``fnbench run`` parameter but --out, --resume and --json is a key of RunOptions, and back."""
    ctx = run.make_context("run", ["--device", "cpu", "--target", "pconv", "--budget", "2", "--allocator", "system"])
    options = run_options(ctx.params)
    assert options.budget_s == 2.0 and options.allocators == ("system",) and options.targets == ("pconv",)
    params = {p.name for p in run.params} - set(NOT_OPTIONS)
    assert set(options.to_dict()) == params | {"seed"}


def test_help_loads_no_torch():
    """``fnbench --help`` and ``fnbench run --help`` take their defaults from fnbench.options, which imports no torch."""
    code = (
        "import sys; from fnbench.cli import main; "
        "rc = main(['--help']) + main(['run', '--help']); print('torch' in sys.modules, rc)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "False 0"
