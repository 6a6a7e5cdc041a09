"""fnbench: is an "efficient" operator actually faster on this hardware, and why?

Library entry points (the CLI is a thin layer over these):

- :func:`fnbench.targets.resolve` — a target name + shape → module, input, analytic cost
- :func:`fnbench.counting.count` — counted MACs (fvcore and FlopCounterMode) and bytes moved
"""

__version__ = "0.1.0"
