"""Law math: closed forms, paper identities and properties (hypothesis)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlscale.core.errors import UsageError
from rlscale.core.identity import label as group_key
from rlscale.core.laws.data import Filter, parse_size, parse_where, same_group
from rlscale.core.laws.fit import huber, point_weights
from rlscale.core.laws.forms import (
    LN10,
    decomposition_loss,
    decomposition_slope_at_d0,
    get_law,
    saturating_k,
    sigmoid_pass_rate,
)
from rlscale.core.laws.model import interpolate_in_log_n
from rlscale.core.laws.registry import LAWS

sizes = st.floats(min_value=1e6, max_value=1e13)
positive = st.floats(min_value=1e-3, max_value=10.0)


# --- saturating efficiency (T25 Eq. 2) ---------------------------------------------------------


@given(k_max=positive, n_0=sizes)
def test_k_is_half_of_k_max_at_n0(k_max, n_0):
    assert saturating_k(k_max, n_0, n_0) == pytest.approx(k_max / 2, rel=1e-12)


@given(k_max=positive, n_0=sizes, a=sizes, b=sizes)
def test_k_rises_with_n_and_stays_below_k_max(k_max, n_0, a, b):
    lo, hi = sorted((a, b))
    assert saturating_k(k_max, n_0, lo) <= saturating_k(k_max, n_0, hi) < k_max


def test_k_matches_the_table_6_per_model_values():
    # method notes §3.2, Base C Intra row: K_max 0.1349, N_0 13.09B
    expected = [0.0050, 0.0139, 0.0252, 0.0470, 0.0697, 0.0957, 0.1141]
    got = [saturating_k(0.1349, 13.09e9, n) for n in (0.5e9, 1.5e9, 3e9, 7e9, 14e9, 32e9, 72e9)]
    assert got == pytest.approx(expected, abs=6e-5)


@given(k=st.floats(min_value=0.0, max_value=1.0), e=st.floats(min_value=-3, max_value=3),
       x=st.floats(min_value=1.0, max_value=1e22))
def test_log_base_changes_intercept_by_ln10_only(k, e, x):
    # log10 L = -k log10 x + E10  <=>  ln L = -k ln x + E10 * ln 10 (T25 §1.6)
    via_10 = 10 ** (e - k * math.log10(x))
    via_e = math.exp(e * LN10 - k * math.log(x))
    assert via_e == pytest.approx(via_10, rel=1e-9)


# --- Appendix D (check A-L1) ------------------------------------------------------------------


def test_decomposition_limits_and_slope_at_d0():
    l_inf, n_0, alpha, beta, lam, d_0, n = 0.25, 1e9, 1.0, 2.0, 0.3, 4000.0, 4e9  # L_inf+G = 0.5
    g = (n_0 / n) ** alpha
    assert decomposition_loss(l_inf, n_0, alpha, beta, lam, d_0, n, 0.0) == pytest.approx(
        l_inf + g + lam)
    assert decomposition_loss(l_inf, n_0, alpha, beta, lam, d_0, n, 1e30) == pytest.approx(
        l_inf + g, abs=1e-12)
    # numerical -dlogL/dlogD at D_0 equals (beta/2)/(1 + 2(L_inf+G)/lambda): 0.230769
    h = 1e-6
    up = decomposition_loss(l_inf, n_0, alpha, beta, lam, d_0, n, d_0 * math.exp(h))
    down = decomposition_loss(l_inf, n_0, alpha, beta, lam, d_0, n, d_0 * math.exp(-h))
    slope = -(math.log(up) - math.log(down)) / (2 * h)
    assert slope == pytest.approx(0.230769, abs=1e-6)
    assert decomposition_slope_at_d0(l_inf + g, lam, beta) == pytest.approx(slope, abs=1e-6)
    # the maximum slope over D is at least the value at D_0: 0.23393 at D ~ 1.125 D_0
    d = d_0 * np.exp(np.linspace(-2, 2, 40001))
    logl = np.log(decomposition_loss(l_inf, n_0, alpha, beta, lam, d_0, n, d))
    slopes = -np.gradient(logl, np.log(d))
    assert slopes.max() == pytest.approx(0.23393, abs=2e-5)
    assert d[np.argmax(slopes)] / d_0 == pytest.approx(1.125, abs=0.01)


@given(beta=st.floats(0.1, 8.0), floor=st.floats(0.01, 1.0), lam=st.floats(0.01, 1.0))
def test_decomposition_slope_never_exceeds_beta_half(beta, floor, lam):
    assert 0 < decomposition_slope_at_d0(floor, lam, beta) < beta / 2


# --- ScaleRL sigmoid --------------------------------------------------------------------------


@given(r0=st.floats(0.0, 0.4), a=st.floats(0.5, 1.0), b=st.floats(0.1, 5.0),
       c_mid=st.floats(1e15, 1e22))
def test_sigmoid_is_half_way_at_c_mid_and_tends_to_a(r0, a, b, c_mid):
    assert sigmoid_pass_rate(r0, a, c_mid, b, c_mid) == pytest.approx((r0 + a) / 2)
    # between R_0 and A, rising in C, and within (A - R_0) t^-B of A at C = t C_mid
    values = sigmoid_pass_rate(r0, a, c_mid, b, c_mid * np.array([1e-3, 1.0, 1e3]))
    assert r0 <= values[0] <= values[1] <= values[2] <= a
    assert a - values[2] <= (a - r0) * 1e3 ** -b + 1e-12


# --- helpers ----------------------------------------------------------------------------------


@given(a=st.floats(-5, 5), b=st.floats(-5, 5), n=st.floats(1e7, 1e13))
def test_interpolation_in_log_n_reproduces_a_line(a, b, n):
    known = np.array([1e8, 3e9, 7e10])
    values = a + b * np.log10(known)
    assert interpolate_in_log_n(known, values, n) == pytest.approx(a + b * math.log10(n),
                                                                   abs=1e-9)


def test_interpolation_extrapolates_from_the_two_nearest_sizes():
    # the paper's 72B intercept: linear in log10 N from the 14B and 32B values (§1.12)
    known = np.array([7e9, 14e9, 32e9])
    values = np.array([0.7045, 1.0848, 1.5359])
    slope = (1.5359 - 1.0848) / math.log10(32 / 14)
    expected = 1.5359 + slope * math.log10(72 / 32)
    assert interpolate_in_log_n(known, values, 72e9) == pytest.approx(expected, rel=1e-12)


@given(groups=st.lists(st.integers(0, 4), min_size=1, max_size=60),
       power=st.sampled_from([0.0, 0.5]))
def test_group_equal_weights_give_every_group_the_same_total(groups, power):
    gidx = np.array(groups)
    present = np.unique(gidx)
    x = np.arange(1, len(gidx) + 1, dtype=float)
    w = point_weights(gidx, 5, x, "group-equal", power)
    assert w.mean() == pytest.approx(1.0)
    totals = np.bincount(gidx, weights=w, minlength=5)[present]
    assert np.allclose(totals, totals[0])


@given(r=st.lists(st.floats(-10, 10), min_size=1, max_size=20), delta=st.floats(0.01, 5))
def test_huber_is_quadratic_inside_and_below_square_outside(r, delta):
    r = np.array(r)
    h = huber(r, delta)
    inside = np.abs(r) <= delta
    assert np.allclose(h[inside], r[inside] ** 2)
    assert np.all(h[~inside] <= r[~inside] ** 2 + 1e-12)
    assert np.all(h >= 0)


@given(value=st.floats(min_value=1e-3, max_value=1e15))
def test_group_key_and_parse_size_round_trip(value):
    key = group_key(value)
    assert parse_size(key) == pytest.approx(value, rel=1e-12)
    assert same_group(key, value)


@pytest.mark.parametrize("label,value", [("7B", 7e9), ("0.5B", 5e8), ("72b", 72e9),
                                         ("350M", 3.5e8), ("1.5e9", 1.5e9), ("2T", 2e12)])
def test_parse_size_reads_model_size_labels(label, value):
    assert parse_size(label) == value


@given(field=st.from_regex(r"[a-z_][a-z0-9_@]{0,8}", fullmatch=True),
       op=st.sampled_from(["=", "==", "!=", "<", "<=", ">", ">="]),
       value=st.from_regex(r"[a-z0-9.]{1,8}", fullmatch=True))
def test_parse_where_round_trip(field, op, value):
    if op in ("<", "<=", ">", ">=") and parse_size(value) is None:
        # ordering a text value used to match nothing, silently; now it is a usage error
        with pytest.raises(UsageError, match="compares numbers"):
            parse_where(f"{field}{op}{value}")
        return
    assert parse_where(f"{field}{op}{value}") == Filter(field, op, value)


@pytest.mark.parametrize("expression", ["N>>5", "N=>5", "N<<3", "N==>1", "N!==2"])
def test_parse_where_refuses_a_mistyped_operator(expression):
    with pytest.raises(UsageError, match="cannot read the operator"):
        parse_where(expression)


def test_where_filters_compare_numbers_numerically():
    record = {"N": 7000000000, "model": "base", "step": 12}
    assert parse_where("N=7e9").matches(record)
    assert parse_where("N=7B").matches(record)
    assert parse_where("model=base").matches(record)
    assert parse_where("model!=instruct").matches(record)
    assert parse_where("step>=12").matches(record) and not parse_where("step>12").matches(record)
    assert not parse_where("missing=1").matches(record)
    with pytest.raises(UsageError, match="expected FIELD=VALUE"):
        parse_where("N")


def test_every_law_is_declared_with_citation_bounds_and_a_predict_function():
    for name in LAWS:
        law = get_law(name)
        assert law.name == name and law.citation and callable(law.predict)
        assert len({p.name for p in law.params}) == len(law.params)
    with pytest.raises(ValueError, match="unknown law"):
        get_law("chinchilla")
    with pytest.raises(ValueError, match="--intercept applies only"):
        get_law("loglinear", intercept="saturating")


@pytest.mark.parametrize("module", ["data", "fit", "forms", "model", "registry", "synthetic",
                                    "uncertainty"])
def test_docstring_examples(module):
    import doctest
    import importlib

    mod = importlib.import_module(f"rlscale.core.laws.{module}")
    failures, tried = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failures == 0
