"""Make fvcore (and the packages only it needs) unimportable, as on a machine that lacks them.

Put this folder first on PYTHONPATH to run the suite, or fnbench, as there:

    PYTHONPATH=tests/no_fvcore:. python -m pytest -q tests

Subprocesses and worker processes inherit PYTHONPATH, so they are blocked too.
"""

import sys

BLOCKED = ("fvcore", "iopath", "yacs", "termcolor")


class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".", 1)[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by tests/no_fvcore)", name=name)
        return None


sys.meta_path.insert(0, _Blocker())
