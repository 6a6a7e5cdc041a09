"""fnbench: is an "efficient" operator actually faster on this hardware, and why?

Library entry points (the CLI is a thin layer over these):

- :func:`fnbench.targets.resolve` — a target name + shape → module, input, analytic cost
- :func:`fnbench.counting.count` — counted MACs (fvcore and FlopCounterMode) and bytes moved
- :func:`fnbench.measure` (:func:`fnbench.timing.measure`) — latency in rounds over fresh
  allocations, as a :class:`fnbench.Measurement` with raw samples, median, IQR, p90 and a 95 % CI
- :func:`fnbench.runner.run_suite` — count, measure and record a list of targets
- :func:`fnbench.load_results` — result files and directories → one pandas DataFrame
- :func:`fnbench.count`, :func:`fnbench.run`, :func:`fnbench.compare` (:mod:`fnbench.api`) — the
  commands for notebooks; a target may be a name, ``FILE.py:NAME`` or a zero-argument callable

The layers (a module imports only from its own layer or below; ``tests/test_import_layers.py``
checks it, and that no two modules import each other, directly or around a loop):

3. presentation — ``cli/`` (one module per command, each with its terminal printer; ``app``: the
   group, ``main`` and exit codes; ``params``: shared options; ``reexec``: the allocator
   re-exec; ``console``: terminal tables, footnotes, progress bars) and ``report/`` (HTML, CSV
   and figures from stored records).
2. engine — what is measured and how:

   - targets and their cost: ``targets``, ``usertargets`` (the user's ``FILE.py:NAME``,
     ``package.module:NAME`` and ``.onnx`` targets, below ``targets``), ``suites`` (every named
     suite), ``catalog`` (what ``fnbench list`` shows), ``counting`` (the dispatch counter),
     ``target_cost``;
   - taking a latency: ``timing`` (one measurement in this process), ``runtimes`` (one registry:
     eager, compile, ONNX Runtime, OpenVINO, ExecuTorch), ``conditions`` (the run policy and a
     target prepared under it),
     ``workers`` (fresh processes; they import ``conditions``, never the run loop),
     ``passes`` (a suite measured in passes, each interleaving its targets' rounds), ``runner`` (the run loop), ``probe``,
     ``compare``, ``layers`` (per-layer breakdown), ``api`` (the notebook API over them),
     ``campaign`` (ordinary runs on the nodes of a Ray cluster, their records streamed home);
   - records and what they say: ``results`` (schema, record builders, crash-safe files),
     ``validation`` (what a stored record must satisfy before a number is derived from it),
     ``merge`` (records into frames), ``verdicts`` (the paper's claims judged).
     Reading and reporting (these and ``report/``) import none of the measuring modules
     (``timing``, ``layers``, ``counting``, ``runtimes``) and no torch, not even lazily: a report
     is made from stored records, and importing torch alone would cost it seconds.
1. foundation — ``errors``, ``units`` (quantities and their formatting), ``stats``,
   ``allocators``, ``devices``, ``reference`` (the paper's numbers, Table 1's maps and operators,
   its headline peers and its ARM core), ``checks``, ``options`` (what a run is measured with, and
   the defaults the commands show: no torch, so that ``--help`` loads none), ``opkinds`` (the one
   table of aten op kinds: the counter's data movement, the breakdown's kinds), ``peaks`` (the
   clock of a theoretical peak, and when one may be shown), ``measurement`` (what a measurement
   is: raw samples in rounds, processes, passes and cycles, their statistics, merging, and its
   record), ``pairing`` (the paired bootstrap of rows measured in the same cycles).
0. ``operators`` — the operators and networks themselves (PConv, FasterNet, the zoo of peers)
   and their closed-form costs (``operators.analytic``); they know nothing of fnbench.
"""

__version__ = "0.1.0"

__all__ = ["load_results", "measure", "Measurement", "count", "run", "compare", "__version__"]


def __getattr__(name: str):
    """``fnbench.measure``, ``fnbench.Measurement`` and the notebook API (``fnbench.count``, ``fnbench.run``,
    ``fnbench.compare``, :mod:`fnbench.api`), imported on first use (they import torch)."""
    if name in ("measure", "Measurement"):
        from . import timing

        return getattr(timing, name)
    if name in ("count", "run"):
        from . import api

        return getattr(api, name)
    if name == "compare":  # the submodule, callable as the API (see fnbench.compare._CallableModule)
        import importlib

        return importlib.import_module(".compare", __name__)
    raise AttributeError(f"module 'fnbench' has no attribute {name!r}")


def load_results(paths="results", *, rows="measurements"):
    """Load result files/directories into a ``pandas.DataFrame`` (see :func:`fnbench.results.load_results`).

    Probe records come back only with ``rows="probes"`` or ``rows="all"``. Imported lazily so
    that ``import fnbench`` stays cheap for the CLI.
    """
    from .results import load_results as _load

    return _load(paths, rows=rows)
