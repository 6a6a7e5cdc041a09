"""Make Ray unimportable, as on a machine without the ``cluster`` extra.

Put this folder first on PYTHONPATH: ``PYTHONPATH=tests/no_ray:. fnbench campaign --local``.
"""

import sys


class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".", 1)[0] == "ray":
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by tests/no_ray)", name=name)
        return None


sys.meta_path.insert(0, _Blocker())
