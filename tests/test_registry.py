import pytest

from operators import OPERATORS, Registry


def test_duplicate_names_are_refused():
    reg = Registry("operator")
    reg.register("a", summary="first")(lambda c: None)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", summary="second")(lambda c: None)
    assert reg.get("a").summary == "first"


def test_builtin_duplicate_is_refused():
    with pytest.raises(ValueError):
        OPERATORS.register("pconv", summary="again")(lambda c: None)


def test_fnmatch_listing():
    assert OPERATORS.names("pconv*") == ["pconv", "pconv_pwconv"]
    assert OPERATORS.names("*_pwconv") == ["dwconv_pwconv", "gconv_pwconv", "pconv_pwconv"]
    assert set(OPERATORS.names()) >= {"conv", "gconv", "dwconv", "pwconv", "pconv", "tconv"}
