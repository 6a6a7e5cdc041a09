"""How the numbers are shown: ``build_report(paths, out_dir)`` writes HTML, CSV and figures.

Layout of ``out_dir`` after :func:`build_report`::

    index.html            self-contained (inline CSS, figures as base64 PNG); opens from disk; it opens
                          with the forest plot of every claim and the compact table under it
    results.csv           one row per device × runtime × target × shape (units in column names)
    verdicts.csv          the paper's claims per device and runtime (fnbench.verdicts.claim_table):
                          direction verdict, reproduction verdict, measured / paper, the answer sentence
    claims_compact.csv    the compact table: claim · device · ratio [CI] · paper · direction · reproduction
    paper_vs_device.csv   every cell the paper reports next to the measured value and their ratio
    failures.csv          measurements with status failed / unsupported and their reason
    ceilings.csv          peak GFLOP/s and bandwidth GB/s from probe records (may be empty)
    environment.csv       the environment fingerprint of each device
    forest.png/.svg, table1.png/.svg, latency_vs_macs.png/.svg, flops_vs_flops.png/.svg, roofline.png/.svg

Results from several machines merge into one report, one panel / column group per device
(``device_key``). Repeats of a measurement on the same device are pooled (see
:mod:`fnbench.merge`). The parts live apart: :mod:`.tables` (DataFrames), :mod:`.figures`
(matplotlib), :mod:`.html` (rendering); :data:`.build.SECTIONS` lists the page's sections, each
one :class:`.sections.Section` that builds its CSVs, figures and HTML from them. Figures already
drawn for the same result files and code are taken from a cache (:mod:`.cache`), so a second
report of a folder draws nothing. Reading and reporting import no torch.

Example::

    >>> summary = build_report(["results"], "reports")  # doctest: +SKIP
    >>> summary.index  # doctest: +SKIP
    PosixPath('reports/index.html')
"""

from .build import ReportSummary, build_report

__all__ = ["ReportSummary", "build_report"]
