"""numpy's functions for rules, in pure Python, give numpy's results (issue 11, item 4).

Each function is compared with numpy itself on random flat lists of ints, of floats and of
both (hypothesis), and on scalars: the same value (exactly, or up to rounding where numpy
sums pairwise and we sum exactly) and the same kind of number (a float where numpy gives a
float array, an int where it gives an int one), never a numpy type. Then the edge cases where
we differ on purpose (README: D-numpy-subset): empty lists, nested lists, strings, None.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from micado.policy import rule_numeric as rn
from micado.policy.rule_errors import RuleLimit
from micado.policy.rule_numeric import FUNCTIONS, RuleArray

INTS = st.integers(min_value=-10**6, max_value=10**6)
FLOATS = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
NUMBERS = st.one_of(INTS, FLOATS)
# ints only, floats only, or both mixed (numpy then makes them all floats)
LISTS = st.one_of(st.lists(INTS, min_size=1, max_size=40), st.lists(FLOATS, min_size=1,
                                                                    max_size=40),
                  st.lists(NUMBERS, min_size=1, max_size=40))
EXAMPLES = settings(max_examples=60, deadline=None)


def tolerance(values: list[Any]) -> float:
    """What summing `values` pairwise (numpy) and exactly (fsum) may differ by."""
    return 1e-12 * (sum(abs(float(v)) for v in values) + 1) * max(1, len(values))


def same_number(ours: Any, theirs: Any, tol: float = 0.0, *, int_ok: bool = False) -> None:
    assert type(ours) in (int, float, bool), f"not a plain number: {type(ours)}"
    theirs_float = isinstance(theirs, np.floating | float)
    if theirs_float and not int_ok:
        assert isinstance(ours, float), f"numpy gives a float ({theirs!r}), we gave {ours!r}"
    if not theirs_float:
        assert isinstance(ours, int), f"numpy gives an int ({theirs!r}), we gave {ours!r}"
    if math.isnan(float(theirs)):
        assert math.isnan(ours)
    else:
        assert abs(ours - theirs) <= tol, (ours, theirs)


def same(ours: Any, theirs: Any, tol: float = 0.0, *, int_ok: bool = False) -> None:
    """`ours` has numpy's value: a number, or a RuleArray of numpy's values for an array."""
    if isinstance(theirs, np.ndarray) and theirs.ndim == 1:
        assert isinstance(ours, RuleArray), f"numpy gives an array, we gave {ours!r}"
        assert len(ours) == len(theirs)
        for mine, its in zip(ours, theirs.tolist(), strict=True):
            same_number(mine, its if theirs.dtype.kind == "f" else int(its), tol, int_ok=int_ok)
    else:
        same_number(ours, theirs[()] if isinstance(theirs, np.ndarray) else theirs, tol,
                    int_ok=int_ok)


# --- reductions -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["mean", "average", "std", "var", "nansum"])
@EXAMPLES
@given(values=LISTS)
def test_summing_reductions_match_numpy_up_to_rounding(name: str, values: list[Any]) -> None:
    spread = tolerance(values) * (max(abs(float(v)) for v in values) + 1)
    same(FUNCTIONS[name](values), getattr(np, name)(values), spread)


@pytest.mark.parametrize("name", ["median", "amax", "amin", "ptp", "argmax", "argmin",
                                  "nanmax", "nanmin"])
@EXAMPLES
@given(values=LISTS)
def test_order_reductions_match_numpy_exactly(name: str, values: list[Any]) -> None:
    same(FUNCTIONS[name](values), getattr(np, name)(values))


@EXAMPLES
@given(values=LISTS, q=st.one_of(st.integers(0, 100), st.floats(0, 100),
                                 st.lists(st.floats(0, 100), min_size=1, max_size=5)))
def test_percentile_matches_numpy_linear_interpolation(values: list[Any], q: Any) -> None:
    same(rn.percentile(values, q), np.percentile(values, q))


@EXAMPLES
@given(values=LISTS, ddof=st.integers(0, 3))
def test_std_and_var_with_ddof(values: list[Any], ddof: int) -> None:
    if len(values) <= ddof:
        with pytest.raises(ValueError, match="ddof"):
            rn.std(values, ddof=ddof)
        return
    spread = tolerance(values) * (max(abs(float(v)) for v in values) + 1) ** 2
    same(rn.var(values, ddof=ddof), np.var(values, ddof=ddof), spread)
    same(rn.std(values, ddof=ddof), np.std(values, ddof=ddof), math.sqrt(spread))


@EXAMPLES
@given(values=st.lists(st.integers(-20, 20), min_size=1, max_size=12))
def test_prod_of_ints_is_exact(values: list[int]) -> None:
    same(rn.prod(values), np.prod(values))


@EXAMPLES
@given(values=st.lists(st.floats(-10, 10, allow_nan=False), min_size=1, max_size=12),
       weights=st.lists(st.integers(1, 5), min_size=12, max_size=12))
def test_prod_of_floats_and_weighted_average(values: list[float], weights: list[int]) -> None:
    same(rn.prod(values), np.prod(values), 1e-9 * (abs(float(np.prod(values))) + 1))
    weights = weights[:len(values)]
    same(rn.average(values, weights=weights), np.average(values, weights=weights),
         tolerance(values) * 10)


def test_median_of_even_count_is_the_mean_of_the_middle_two() -> None:
    assert rn.median([4, 1, 3, 2]) == 2.5 == np.median([4, 1, 3, 2])
    assert rn.median([7]) == 7.0 and isinstance(rn.median([7]), float)


def test_nan_propagates_as_in_numpy() -> None:
    values = [1.0, math.nan, 3.0]
    for name in ("mean", "median", "amax", "amin", "std", "percentile"):
        args = (values, 50) if name == "percentile" else (values,)
        assert math.isnan(FUNCTIONS[name](*args)), name
    assert rn.nanmax(values) == 3.0 and rn.nanmin(values) == 1.0 and rn.nansum(values) == 4.0
    assert rn.argmax(values) == 1 == np.argmax(values)


# --- functions that give lists ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["cumsum", "cumprod", "diff", "sort", "unique"])
@EXAMPLES
@given(values=LISTS)
def test_list_functions_match_numpy(name: str, values: list[Any]) -> None:
    if name == "cumprod":
        values = [v % 7 if isinstance(v, int) else v % 3 for v in values][:10]
    same(FUNCTIONS[name](values), getattr(np, name)(values))


@EXAMPLES
@given(values=LISTS, low=NUMBERS, high=NUMBERS)
def test_clip_matches_numpy(values: list[Any], low: Any, high: Any) -> None:
    same(rn.clip(values, low, high), np.clip(values, low, high))
    same(rn.clip(values[0], low, None), np.clip(values[0], low, None))


@EXAMPLES
@given(knots=st.lists(st.integers(-1000, 1000), min_size=1, max_size=10, unique=True),
       heights=st.lists(NUMBERS, min_size=10, max_size=10),
       x=st.lists(st.floats(-1200, 1200), min_size=1, max_size=10))
def test_interp_matches_numpy(knots: list[int], heights: list[Any], x: list[float]) -> None:
    knots.sort()
    heights = heights[:len(knots)]
    same(rn.interp(x, knots, heights), np.interp(x, knots, heights))
    same(rn.interp(x[0], knots, heights), np.interp(x[0], knots, heights))


@EXAMPLES
@given(start=st.one_of(st.integers(-50, 50), st.floats(-50, 50)),
       stop=st.one_of(st.integers(-50, 50), st.floats(-50, 50)),
       step=st.one_of(st.integers(1, 7), st.integers(-7, -1), st.floats(0.1, 7),
                      st.floats(-7, -0.1)))
def test_arange_matches_numpy(start: Any, stop: Any, step: Any) -> None:
    same(rn.arange(start, stop, step), np.arange(start, stop, step))


@EXAMPLES
@given(start=NUMBERS, stop=NUMBERS, num=st.integers(0, 60), endpoint=st.booleans())
def test_linspace_matches_numpy(start: Any, stop: Any, num: int, endpoint: bool) -> None:
    same(rn.linspace(start, stop, num, endpoint=endpoint),
         np.linspace(start, stop, num, endpoint=endpoint))


def test_diff_n_times_as_numpy() -> None:
    assert rn.diff([1, 4, 9, 16], 2) == [2, 2] == np.diff([1, 4, 9, 16], 2).tolist()
    assert rn.diff([1, 2], 10**12) == [] == np.diff([1, 2], 10).tolist()  # no 10**12 rounds


def test_arange_with_one_argument() -> None:
    assert rn.arange(4) == [0, 1, 2, 3] and rn.arange(0) == [] and rn.arange(2.0) == [0.0, 1.0]


# --- element-wise functions -------------------------------------------------------------------

POSITIVE = st.one_of(st.integers(1, 10**6), st.floats(1e-6, 1e9))


@pytest.mark.parametrize(("name", "domain"), [
    ("abs", NUMBERS), ("fabs", NUMBERS), ("sqrt", st.one_of(st.integers(0, 10**6),
                                                          st.floats(0, 1e9))),
    ("exp", st.floats(-50, 50)), ("log", POSITIVE), ("log10", POSITIVE), ("log2", POSITIVE),
    ("sign", NUMBERS), ("square", NUMBERS), ("isnan", NUMBERS), ("isinf", NUMBERS),
    ("isfinite", NUMBERS),
])
@EXAMPLES
@given(data=st.data())
def test_elementwise_functions_match_numpy(name: str, domain: Any, data: Any) -> None:
    values = data.draw(st.lists(domain, min_size=1, max_size=10))
    func, reference = FUNCTIONS[name], getattr(np, name)
    tol = 1e-15 * max(abs(float(reference(v))) for v in values)
    if name in ("isnan", "isinf", "isfinite"):
        assert func(values) == reference(values).tolist()
        assert func(values[0]) is bool(reference(values[0]))
        return
    same(func(values), reference(values), tol)
    same(func(values[0]), reference(values[0]), tol)


@pytest.mark.parametrize("name", ["ceil", "floor", "trunc"])
@EXAMPLES
@given(values=st.lists(NUMBERS, min_size=1, max_size=10))
def test_ceil_floor_trunc_give_numpys_values_as_ints(name: str, values: list[Any]) -> None:
    same(FUNCTIONS[name](values), getattr(np, name)(values), int_ok=True)
    assert all(isinstance(v, int) for v in FUNCTIONS[name](values))


@EXAMPLES
@given(values=st.lists(NUMBERS, min_size=1, max_size=10), decimals=st.integers(-4, 6))
def test_round_matches_numpy(values: list[Any], decimals: int) -> None:
    same(rn.round_(values, decimals), np.round(values, decimals))
    same(rn.round_(values[0], decimals), np.round(values[0], decimals))
    same(rn.round_(values), np.round(values), int_ok=True)


def test_round_is_half_to_even_and_scales_as_numpy() -> None:
    assert [rn.round_(v) for v in (0.5, 1.5, 2.5, -2.5)] == [0, 2, 2, -2]
    assert rn.round_(2.675, 2) == 2.68 == np.round(2.675, 2)  # Python's round gives 2.67
    assert rn.round_(1250, -2) == 1200 and FUNCTIONS["around"](1350, -2) == 1400


@pytest.mark.parametrize("name", ["maximum", "minimum", "fmax", "fmin"])
@EXAMPLES
@given(left=LISTS, right=NUMBERS)
def test_maximum_minimum_match_numpy(name: str, left: list[Any], right: Any) -> None:
    func, reference = FUNCTIONS[name], getattr(np, name)
    same(func(left, right), reference(left, right))
    same(func(right, left[0]), reference(right, left[0]))
    same(func(left, left[::-1]), reference(left, left[::-1]))


def test_maximum_lets_nan_win_and_fmax_ignores_it() -> None:
    assert math.isnan(FUNCTIONS["maximum"](1.0, math.nan))
    assert FUNCTIONS["fmax"](1.0, math.nan) == 1.0 == np.fmax(1.0, math.nan)


def test_constants() -> None:
    assert rn.CONSTANTS["pi"] == np.pi and rn.CONSTANTS["e"] == np.e
    assert rn.CONSTANTS["inf"] == np.inf and math.isnan(rn.CONSTANTS["nan"])


# --- edge cases and clear errors --------------------------------------------------------------

@pytest.mark.parametrize("name", ["mean", "average", "median", "std", "var", "percentile",
                                  "amax", "amin", "ptp", "argmax", "argmin", "nanmax",
                                  "nanmin"])
def test_empty_list_is_an_error_naming_the_function(name: str) -> None:
    args: tuple[Any, ...] = ([], 50) if name == "percentile" else ([],)
    with pytest.raises(ValueError, match=rf"^{name}\(\) of an empty list"):
        FUNCTIONS[name](*args)


def test_empty_list_where_numpy_has_an_answer() -> None:
    assert rn.prod([]) == 1.0 == np.prod([]) and rn.nansum([]) == 0.0 == np.nansum([])
    for name in ("cumsum", "cumprod", "diff", "sort", "unique", "ceil", "sqrt"):
        assert FUNCTIONS[name]([]) == [] == getattr(np, name)([]).tolist(), name


def test_one_element_and_scalars_as_numpy() -> None:
    assert rn.mean([3]) == 3.0 and rn.std([3]) == 0.0 and rn.percentile([3], 90) == 3.0
    assert rn.mean(4) == 4.0 == np.mean(4) and rn.amax(4) == 4
    assert rn.percentile((1, 2, 3, 4), [25, 75]) == [1.75, 3.25]  # tuples as lists


def test_ints_stay_ints_and_a_float_makes_all_floats() -> None:
    assert rn.amax([3, 1]) == 3 and isinstance(rn.amax([3, 1]), int)
    assert rn.amax([3, 2.5]) == 3.0 and isinstance(rn.amax([3, 2.5]), float)  # as numpy
    assert rn.cumsum([1, 2]) == [1, 3] and rn.cumsum([1, 2.0]) == [1.0, 3.0]
    assert isinstance(rn.mean([1, 2]), float) and isinstance(rn.median([1, 3]), float)
    assert rn.mean([True, False, True]) == pytest.approx(2 / 3)  # booleans count as 0 and 1


@pytest.mark.parametrize(("args", "fragment"), [
    (([1, [2, 3]],), "mean(): element 1 of the values is a list: nested lists are not"),
    ((["1", "2"],), "mean(): element 0 of the values is a str, not a number"),
    (("12",), "mean(): the values must be a number or a list of numbers, not str"),
    (([1, None],), "mean(): element 1 of the values is None, not a number (a query with no"),
    (({"a": 1},), "mean(): the values must be a number or a list of numbers, not dict"),
])
def test_non_numbers_are_clear_type_errors(args: tuple[Any, ...], fragment: str) -> None:
    with pytest.raises(TypeError) as info:
        rn.mean(*args)
    assert fragment in str(info.value)


@pytest.mark.parametrize(("call", "error", "fragment"), [
    (lambda: rn.percentile([1, 2], 101), ValueError, "q must be in the range [0, 100]"),
    (lambda: FUNCTIONS["sqrt"](-1), ValueError, "sqrt(): -1 is outside its domain"),
    (lambda: FUNCTIONS["log"](0), ValueError, "log(): 0 is outside its domain"),
    (lambda: FUNCTIONS["ceil"](math.inf), ValueError, "ceil(): no finite result for inf"),
    (lambda: rn.arange(0, 5, 0), ZeroDivisionError, "step must not be zero"),
    (lambda: rn.diff(3), ValueError, "diff(): needs a list"),
    (lambda: rn.linspace(0, 1, 2.5), TypeError, "num must be a whole number"),
    (lambda: rn.average([1, 2], weights=[1]), ValueError, "2 values but 1 weights"),
    (lambda: FUNCTIONS["maximum"]([1, 2], [1, 2, 3]), ValueError, "different lengths"),
    (lambda: rn.mean([2**2000, 1]), ValueError, "mean(): an integer among the values is too"),
    (lambda: rn.amax([2**2000, 1.0]), ValueError, "amax(): an integer in the values is too"),
])
def test_bad_arguments_are_clear_errors(call: Callable[[], Any], error: type[Exception],
                                        fragment: str) -> None:
    with pytest.raises(error) as info:
        call()
    assert fragment in str(info.value)


def test_lists_refuse_numpys_element_wise_arithmetic() -> None:
    values = rn.cumsum([1, 2, 3])
    # what a rule writes, so concatenation on purpose (a list on the left included)
    for operation in (lambda: values * 2, lambda: 2 * values,
                      lambda: values + [1],  # noqa: RUF005
                      lambda: values > 1, lambda: [0] + values):  # noqa: RUF005
        with pytest.raises(TypeError, match="element-wise arithmetic"):
            operation()
    with pytest.raises(ValueError, match="ambiguous"):
        bool(values)
    assert values[-1] == 6 and len(values) == 3 and sorted(values) == [1, 3, 6]
    assert bool(rn.cumsum([0])) is False and bool(rn.cumsum([])) is False


@pytest.mark.parametrize("call", [
    lambda: rn.arange(10**9), lambda: rn.arange(0, 1, 1e-9), lambda: rn.arange(-10**40, 0),
    lambda: rn.linspace(0, 1, 10**7), lambda: rn.mean(range(10**12)),
])
def test_made_lists_are_capped(call: Callable[[], Any]) -> None:
    with pytest.raises(RuleLimit, match=f"at most {rn.MAX_ARRAY_LENGTH}") as info:
        call()
    assert info.value.kind == "value"


def test_exact_int_results_are_bounded_like_other_rule_numbers() -> None:
    with pytest.raises(RuleLimit, match="over 4096 bits"):
        rn.prod([10**100] * 50)


def test_unavailable_names_message_lists_what_is_available() -> None:
    message = rn.unavailable_message("fft")
    assert message is not None
    assert message.startswith("numpy's `fft` is not available in rules; available: abs, amax,")
    assert "mean, median" in message and "percentile" in message
    assert str(rn.unavailable_message("factorial")).startswith("math's `factorial` is not")
    for name in ("mean", "sum", "all", "round", "missing_query", "LOAD"):
        assert rn.unavailable_message(name) is None, name
