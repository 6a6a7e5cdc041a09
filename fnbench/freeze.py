"""Imported last by the workers' fork server: collect, then freeze what the server holds.

A worker forked from the server inherits every object the preloaded imports made (torch, timm,
torchvision, dynamo: hundreds of thousands). Its first full garbage collection would walk them
all, touching their pages: measured at 0.27–0.42 s and about 25,000 copy-on-write page faults
per worker (``benchmarks/prepare_cost.py``), inside a round's deep copy. ``gc.freeze()`` moves
them to a permanent generation that collections skip (0.005–0.018 s after it). The fork server
can only import modules before it forks (``multiprocessing``'s ``set_forkserver_preload``), so
this is a module, listed last (:data:`fnbench.workers._PRELOAD`).
"""

import gc

gc.collect()
gc.freeze()
