"""Quantities and their formatting (fnbench.units), checked against closed-form numbers."""

import math

import numpy as np
import pytest

from fnbench import units


def test_gmacs_per_s_is_macs_over_seconds_in_billions():
    assert units.gmacs_per_s(2e9, 0.5) == pytest.approx(4.0)
    assert units.gflops_per_s(2e9, 0.5) == pytest.approx(8.0)


def test_gmacs_interval_inverts_the_latency_interval():
    low, high = units.gmacs_per_s_ci(2e9, 0.4, 0.8)  # latency CI 0.4–0.8 s
    assert (low, high) == (pytest.approx(2.5), pytest.approx(5.0))  # the slow end gives the low rate
    assert low < units.gmacs_per_s(2e9, 0.5) < high


def test_missing_macs_or_time_gives_none():
    assert units.gmacs_per_s(None, 0.5) is None
    assert units.gmacs_per_s(2e9, 0.0) is None
    assert units.gmacs_per_s(2e9, None) is None
    assert units.gmacs_per_s_ci(None, 0.4, 0.8) == (None, None)
    assert units.gmacs_per_s_ci(2e9, 0.0, 0.8) == (pytest.approx(2.5), None)
    assert units.gflops_per_s(None, 0.5) is None
    assert units.per_second(32, 0.5) == 64.0 and units.per_second(None, 0.5) is None
    assert units.per_second(32, 0) is None


def test_gmacs_of_bootstrap_draws_is_elementwise():
    draws = np.array([0.5, 1.0, 2.0])
    np.testing.assert_allclose(units.gmacs_per_s(2e9, draws), [4.0, 2.0, 1.0])


def test_intensity_is_two_flops_per_mac_over_bytes():
    assert units.intensity(1000, 500) == 4.0
    assert units.intensity(1000, 0) is None and units.intensity(1000, None) is None
    assert units.intensity(None, 500) is None


def test_milliseconds():
    assert units.ms(0.0123) == pytest.approx(12.3)
    assert math.isnan(units.ms(None)) and math.isnan(units.ms(float("nan")))
    assert units.fmt_ms(0.0123) == "12.300"
    assert units.fmt_ms(None) == "–" and units.fmt_ms(float("nan"), none="—") == "—"
    assert units.fmt_pct(0.1234) == "12.3%" and units.fmt_pct(None) == "–"


@pytest.mark.parametrize(
    "value, kwargs, text",
    [
        (4.21e9, {}, "4.21G"),
        (1.5e12, {}, "1.5e+03G"),  # the terminal tables stop at G
        (999, {}, "999"),
        (-2500, {"unit": "B"}, "-2.5kB"),
        (None, {}, "–"),
        (1.23456e12, {"digits": 5, "sep": " ", "largest": "T"}, "1.2346 T"),
        (12.0, {"digits": 5, "sep": " ", "largest": "T"}, "12"),
        (12.0, {"unit": "B", "sep": " "}, "12 B"),
        (None, {"none": "—"}, "—"),
        (3.2e15, {"unit": "B", "sep": " ", "largest": "P"}, "3.2 PB"),
    ],
)
def test_si(value, kwargs, text):
    unit = kwargs.pop("unit", "")
    assert units.si(value, unit, **kwargs) == text
