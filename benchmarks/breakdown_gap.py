"""Why the per-layer sum of a breakdown falls short of the end-to-end latency: cache warmth or harness?

``fnbench breakdown`` times every layer standalone on its recorded input; the sum of those medians
is reported beside the whole network's median. On a CPU the sum comes out below the network, most
for small networks. Two mechanisms could do that:

- **cache warmth**: a layer timed on its own finds its weights and input in L1/L2 on every
  iteration; inside the network the layers before it have evicted them;
- **the network's own code**: container modules' ``forward`` and ``__call__`` (Python, hooks
  checks) run in the network but in no row.

This script separates them with one more measurement, the **chain**: every recorded row replayed
once per iteration, in network order, as one module. The chain runs exactly the rows' code (no
container modules), but each row now follows the others, as in the network, so their data evict
each other. Then, measured interleaved in one process under the same conditions:

- ``sum / chain - 1``: what running alone (hot caches) saves each row: the cache-warmth effect;
- ``chain / network - 1``: what the network's own Python code costs, plus the chain's larger
  footprint (every row keeps its own input copy), which makes the chain if anything colder.

Usage::

    python benchmarks/breakdown_gap.py [NETWORK ...]     # default: the four headline networks + T2, L

Prints one line per network and a summary. Budgets are small (a few seconds per network).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
from torch import nn

from fnbench import allocators
from fnbench.layers import prepare_network, record_layers
from fnbench.targets import TargetSpec, resolve
from fnbench.timing import measure

DEFAULT = ["fasternet_t0", "mobilenetv2", "shufflenetv2_x1_5", "mobilevit_xxs", "fasternet_t2", "fasternet_l"]


class Chain(nn.Module):
    """Every recorded row, replayed once per call in network order (outputs dropped)."""

    def __init__(self, replays: list[nn.Module]):
        super().__init__()
        self.rows = nn.ModuleList(replays)

    def forward(self, _unused=None):
        out = None
        for row in self.rows:
            out = row()
        return out


def one(name: str, *, rounds: int = 3, net_budget_s: float = 1.0, layer_budget_s: float = 0.05) -> dict:
    t = resolve(TargetSpec.make(name))
    module, x = t.build(0), t.example_input()
    net, _ = prepare_network(module, x)
    calls = record_layers(net, x)
    chain = Chain([c.replay for c in calls])
    dummy = torch.zeros(1)
    common = dict(device="cpu", threads=1, fold=False, allocator=None, halve_on_oom=False)
    nets, chains, sums = [], [], []
    for _ in range(rounds):  # interleaved: network, chain, rows; drift hits all three alike
        nets.append(measure(net, x, budget_s=net_budget_s, **common).median_s)
        chains.append(measure(chain, dummy, budget_s=net_budget_s, **common).median_s)
        sums.append(
            sum(measure(c.replay, dummy, budget_s=layer_budget_s, min_rounds=3, **common).median_s for c in calls)
        )
    n, c, s = (float(np.median(v)) for v in (nets, chains, sums))
    return {
        "name": name,
        "rows": len(calls),
        "network_ms": n * 1e3,
        "chain_ms": c * 1e3,
        "sum_ms": s * 1e3,
        "sum_vs_network": s / n - 1,
        "sum_vs_chain": s / c - 1,
        "chain_vs_network": c / n - 1,
        "spread": (max(nets) / min(nets) - 1),
    }


def main(names: list[str]) -> None:
    allocators.apply("tuned")
    torch.set_num_threads(1)
    print(
        f"{'network':<20} {'rows':>4} {'network ms':>10} {'chain ms':>9} {'sum ms':>8} "
        f"{'sum/net-1':>9} {'sum/chain-1':>11} {'chain/net-1':>11} {'net spread':>10}"
    )
    out = []
    for name in names:
        t0 = time.perf_counter()
        r = one(name)
        out.append(r)
        print(
            f"{r['name']:<20} {r['rows']:>4} {r['network_ms']:>10.3f} {r['chain_ms']:>9.3f} {r['sum_ms']:>8.3f} "
            f"{r['sum_vs_network']:>+9.1%} {r['sum_vs_chain']:>+11.1%} {r['chain_vs_network']:>+11.1%} "
            f"{r['spread']:>10.1%}  ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    share = [r["sum_vs_chain"] / r["sum_vs_network"] for r in out if abs(r["sum_vs_network"]) > 0.03]
    if share:
        print(
            f"share of the gap that the chain closes (cache warmth), median over networks with a gap > 3%: "
            f"{np.median(share):.0%}"
        )


if __name__ == "__main__":
    main(sys.argv[1:] or DEFAULT)
