"""The import layers hold: operators below fnbench's engine, the engine below report and cli, no cycles.

Every ``import`` and ``from … import`` in the packages is read from the source (function-level ones
too: a lazy import is still a dependency), so the test needs no torch and fails on the line that
breaks a rule. The layers are the map in ``fnbench/__init__.py``'s docstring.
"""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Layer of each fnbench module (operators is layer 0); a module may import its own layer or below.
FOUNDATION = {
    "errors",
    "units",
    "stats",
    "allocators",
    "devices",
    "reference",
    "checks",
    "options",
    "opkinds",
    "peaks",
    "measurement",
    "pairing",
}
PRESENTATION = {"cli", "__main__"}  # cli is a package: its modules (commands, console) too


def layer_of(module: str) -> int:
    parts = module.split(".")
    if parts[0] == "operators":
        return 0
    if parts[1:2] == ["report"] or (len(parts) > 1 and parts[1] in PRESENTATION):
        return 3
    if len(parts) == 1 or parts[1] in FOUNDATION:  # the package's own __init__ imports lazily only
        return 1
    return 2


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[str, int]]:
    """``(imported module, line)`` for every import of fnbench or operators in ``path``."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for a in node.names:  # `from . import x` and `from .pkg import mod` name modules
                candidate = f"{mod}.{a.name}"
                out.append((candidate if _is_module(candidate) else mod, node.lineno))
    return [(m, line) for m, line in out if m.split(".")[0] in ("fnbench", "operators")]


def _is_module(dotted: str) -> bool:
    p = ROOT.joinpath(*dotted.split("."))
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def _resolve(dotted: str) -> str:
    """The module a dotted import names (a name inside a module resolves to that module)."""
    while dotted and not _is_module(dotted):
        dotted = dotted.rsplit(".", 1)[0] if "." in dotted else ""
    return dotted


def graph() -> dict[str, dict[str, int]]:
    edges: dict[str, dict[str, int]] = {}
    for pkg in ("fnbench", "operators"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            src = module_name(path)
            for dst, line in imports_of(path):
                dst = _resolve(dst)
                if dst and dst != src:
                    edges.setdefault(src, {}).setdefault(dst, line)
            edges.setdefault(src, {})
    return edges


def test_every_import_goes_down_or_sideways():
    bad = []
    for src, dsts in graph().items():
        for dst, line in dsts.items():
            if (
                src in ("fnbench", "operators")
                or dst == "fnbench"
                or (dst == "operators" and src.startswith("operators"))
            ):
                continue  # a package's __init__ is its facade: it re-exports (lazily) what lies below it
            if layer_of(dst) > layer_of(src):
                bad.append(f"{src}:{line} imports {dst} (layer {layer_of(dst)} above {layer_of(src)})")
    assert not bad, "\n".join(bad)


def test_operators_never_import_fnbench():
    bad = [
        f"{s} imports {d}"
        for s, ds in graph().items()
        if s.startswith("operators")
        for d in ds
        if d.startswith("fnbench")
    ]
    assert not bad


def find_cycle(edges: dict[str, dict[str, int]]) -> list[str] | None:
    """A cycle in ``edges`` as a list of modules (first repeated at the end), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in edges.get(n, {}):
            if m in ("fnbench", "operators"):
                continue  # package __init__ files: re-exports, not layers
            if state.get(m) == 1:
                return stack[stack.index(m) :] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_no_import_cycles():
    cycle = find_cycle(graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": 1}, "b": {}, "c": {"a": 1}}) is None


def test_the_reader_sees_lazy_and_relative_imports():
    edges = graph()
    assert "fnbench.passes" in edges["fnbench.runner"]  # module level, relative
    assert "fnbench.conditions" in edges["fnbench.workers"]
    assert "fnbench.report" in edges["fnbench.cli.report"]  # function level
    assert "fnbench.cli.run" in edges["fnbench.cli"]  # `from . import run`: a module, not a name


@pytest.mark.parametrize(
    "module, layer",
    [
        ("operators.zoo", 0),
        ("fnbench.errors", 1),
        ("fnbench.options", 1),
        ("fnbench.timing", 2),
        ("fnbench.report.html", 3),
        ("fnbench.cli", 3),
        ("fnbench.cli.run", 3),
        ("fnbench.cli.console", 3),
    ],
)
def test_layer_map(module, layer):
    assert layer_of(module) == layer


# -- reading and reporting stay apart from measuring -------------------------------------------------
#: Modules that read stored records and show them; ``fnbench.report`` stands for everything under it.
READING = ("fnbench.results", "fnbench.merge", "fnbench.verdicts", "fnbench.validation", "fnbench.report")
#: Modules that take measurements (they import torch).
MEASURING = ("fnbench.timing", "fnbench.layers", "fnbench.counting", "fnbench.runtimes")
#: Third-party packages a reading module must not import.
HEAVY = ("torch", "torchvision", "timm")


def heavy_imports() -> dict[str, tuple[str, int]]:
    """``module -> (package, line)`` for the first import of a :data:`HEAVY` package in each module's source."""
    out = {}
    for pkg in ("fnbench", "operators"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    names = [node.module or ""]
                else:
                    continue
                for n in names:
                    if n.split(".")[0] in HEAVY:
                        out.setdefault(module_name(path), (n, node.lineno))
    return out


def chains_from(edges: dict[str, dict[str, int]], start: str) -> dict[str, list[str]]:
    """Every module ``start`` imports, directly or through others, with one import chain leading to it.

    Package facades (``fnbench``, ``operators``) are not followed: their ``__init__`` imports lazily,
    on attribute access, what lies below them.
    """
    chains = {start: [start]}
    todo = [start]
    while todo:
        src = todo.pop(0)
        for dst in edges.get(src, {}):
            if dst in ("fnbench", "operators") or dst in chains:
                continue
            chains[dst] = chains[src] + [dst]
            todo.append(dst)
    return chains


def _reading(module: str) -> bool:
    return any(module == r or module.startswith(r + ".") for r in READING)


def test_reading_and_reporting_import_no_measuring_module_and_no_torch():
    edges = graph()
    heavy = heavy_imports()
    bad = []
    for start in sorted(m for m in edges if _reading(m)):
        for mod, chain in chains_from(edges, start).items():
            if mod in MEASURING:
                bad.append(f"{' -> '.join(chain)} (a measuring module)")
            elif mod in heavy:
                pkg, line = heavy[mod]
                bad.append(f"{' -> '.join(chain)}, which imports {pkg} at line {line}")
    assert not bad, "\n".join(bad)


def test_the_closure_follows_lazy_imports_through_other_modules():
    edges = {"fnbench.report.x": {"fnbench.merge": 1}, "fnbench.merge": {"fnbench.timing": 9}, "fnbench.timing": {}}
    assert chains_from(edges, "fnbench.report.x")["fnbench.timing"] == [
        "fnbench.report.x",
        "fnbench.merge",
        "fnbench.timing",
    ]
    assert "fnbench.timing" in heavy_imports()  # the source scan sees torch where it is imported


def test_reading_and_reporting_load_without_torch():
    """In a fresh interpreter: importing the report and the record readers leaves torch unimported."""
    code = (
        "import fnbench.report.build, fnbench.results, fnbench.merge, fnbench.verdicts, sys; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
