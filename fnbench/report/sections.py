"""What a report section is: one object with its id, title and a build that yields its CSVs, figures and HTML.

The page is :data:`fnbench.report.build.SECTIONS`, a list of :class:`Section`; adding a section
to the report is adding one object there. A section's ``build(inputs, draw)`` reads the shared
:class:`~fnbench.report.build.Inputs` (the merged frame, the claims, …) and returns a
:class:`Part`: the tables to write as ``<name>.csv`` and the section's HTML. Each figure is a
:class:`Plot` (file name, title, caption, and how to draw it) handed to ``draw``, which writes
``<name>.png`` and ``<name>.svg`` and returns the PNG for the page (or, as a string, why the
figure was not drawn); the section's HTML is made with what ``draw`` returned.

Example (a section with one table and no figure)::

    >>> def devices(inputs, draw):
    ...     return Part(csv={"devices": inputs.devices}, html=html.devices(inputs.devices))
    >>> Section("devices", "Devices", devices)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["Plot", "Part", "Section", "Draw"]


@dataclass(frozen=True)
class Plot:
    """One figure: ``name`` (its files ``<name>.png`` and ``.svg``), title, caption, and how to draw it.

    ``draw()`` returns a matplotlib figure, or a string saying why there is nothing to draw. It is
    called only when the figure is not already drawn for the same result files and code
    (:mod:`fnbench.report.cache`).
    """

    name: str
    title: str
    caption: str
    draw: Callable[[], Any] = field(repr=False, compare=False)


#: What a section hands each of its figures to: the PNG for the page, or why the figure is not drawn.
Draw = Callable[[Plot], "bytes | str"]


@dataclass
class Part:
    """What a section contributes: tables written as ``<name>.csv`` (in this order) and its HTML."""

    html: str
    csv: dict[str, pd.DataFrame] = field(default_factory=dict)


@dataclass(frozen=True)
class Section:
    """One section of the report: ``id`` (the page anchor), ``title``, and ``build(inputs, draw) -> Part``.

    A ``lead`` section opens the page, above the contents and without a heading (the claims at a
    glance); the others follow in the list's order, each under its title and listed in the contents.
    A lead section sums the others up and is built after them (its figures are listed last among
    those not drawn, as ``fnbench report`` prints them).
    """

    id: str
    title: str
    build: Callable[[Any, Draw], Part] = field(repr=False, compare=False)
    lead: bool = False
