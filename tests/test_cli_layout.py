"""The CLI package stays readable: one module per command, no function over 60 statements.

Statements are counted as the AST has them (every ``ast.stmt`` inside a function, nested ones
included), so a printer that grows a table at a time is split before it becomes a wall.
"""

import ast
from pathlib import Path

import pytest

from fnbench.cli import cli

CLI = Path(__file__).resolve().parents[1] / "fnbench" / "cli"
MAX_STATEMENTS = 60


def _functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node, sum(isinstance(n, ast.stmt) for n in ast.walk(node)) - 1


@pytest.mark.parametrize("path", sorted(CLI.glob("*.py")), ids=lambda p: p.name)
def test_no_function_over_the_limit(path):
    long = [f"{path.name}:{f.lineno} {f.name} ({n})" for f, n in _functions(path) if n > MAX_STATEMENTS]
    assert not long, f"split these into named steps: {long}"


def test_every_command_is_its_own_module():
    for name, command in cli.commands.items():
        assert command.callback.__module__ == f"fnbench.cli.{'list_' if name == 'list' else name}", name
