"""What fnbench measures: operators and networks as ``nn.Module`` builders with analytic costs.

Importing this package registers every built-in operator (and network, where present) in
:data:`OPERATORS` / :data:`NETWORKS`.
"""

from . import conv, fasternet, pconv, zoo  # noqa: F401  (registration side effects)
from .analytic import Cost
from .pconv import PConv, TConv
from .registry import NETWORKS, OPERATORS, ConfigError, Entry, Registry

__all__ = ["Cost", "PConv", "TConv", "OPERATORS", "NETWORKS", "ConfigError", "Entry", "Registry"]
