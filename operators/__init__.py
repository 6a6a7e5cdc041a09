"""What fnbench measures: operators and networks as ``nn.Module`` builders with analytic costs.

Every built-in operator (and network, where present) is registered in :data:`OPERATORS` /
:data:`NETWORKS` the first time either registry, or :class:`PConv` / :class:`TConv`, is taken from
this package (``from operators import OPERATORS``): that imports the modules that register them,
and torch with them. Importing the package alone, or :class:`ConfigError`, :class:`Entry`,
:class:`Registry` and :class:`Cost`, stays cheap: a command that only reads result files never
pays for torch.
"""

from __future__ import annotations

import importlib

from .analytic import Cost
from .registry import ConfigError, Entry, Registry

__all__ = ["Cost", "PConv", "TConv", "OPERATORS", "NETWORKS", "ConfigError", "Entry", "Registry"]

#: The modules whose import registers the built-in operators and networks, in registration order.
_BUILTIN = ("conv", "fasternet", "pconv", "zoo")
#: Names that need the built-ins registered, and the module each comes from.
_REGISTERED = {"OPERATORS": "registry", "NETWORKS": "registry", "PConv": "pconv", "TConv": "pconv"}


def __getattr__(name: str):
    if name not in _REGISTERED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    for module in _BUILTIN:
        importlib.import_module(f".{module}", __name__)
    value = getattr(importlib.import_module(f".{_REGISTERED[name]}", __name__), name)
    globals()[name] = value  # asked once: later lookups find it without this function
    return value
