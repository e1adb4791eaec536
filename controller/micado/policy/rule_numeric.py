"""numpy's common numeric functions for scaling rules, in pure Python, bounded in cost.

MiCADO's Policy Keeper ran rules in asteval 0.9.18 with `use_numpy=True` (evaluator.py in
micado-scale/component-policy-keeper, commit 05d61998), so a rule could call numpy's functions
by bare name: `mean(values)`, `percentile(latencies, 95)`. Here the same names give the same
values on what rules have (numbers, flat lists and tuples of numbers) without numpy: results
are plain ints and floats, and lists come back as `RuleArray` (a list that refuses the
arithmetic numpy would do element-wise, instead of silently repeating or concatenating).

Where this differs from numpy (README, `D-numpy-subset`):
- an empty list is an error for the functions numpy answers with nan and a warning (mean,
  median, std, var, average) and for those numpy refuses (amax, argmax, percentile ...);
- nested lists, strings, None and other non-numbers are errors naming the function and element;
- integer results are exact Python ints (numpy wraps at 2**63), up to the sandbox's bit limit;
- sums are correctly rounded (math.fsum) where numpy sums pairwise: equal up to rounding;
- `ceil`, `floor`, `trunc` and `round(x)` give ints (numpy: floats of the same value), and a
  value outside a function's domain (`sqrt(-1)`, `log(0)`) is an error instead of nan/-inf;
- booleans count as 0 and 1 (numpy keeps a bool dtype for all-bool lists).
Any other name asteval took from numpy or math (micado_numpy_names.py) gives an error naming
it and listing what is available (`unavailable_message`).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Any

from .micado_numpy_names import MATH_NAMES, NUMPY_NAMES
from .rule_errors import RuleLimit, check_number

# lists these functions build from scalars (arange, linspace) are capped: 100,000 floats take
# about 3 MB, well inside the sandbox's 64 MiB, and sort in milliseconds
MAX_ARRAY_LENGTH = 100_000

Number = int | float


class RuleArray(list[Any]):
    """A list returned where numpy returns an array.

    Indexing, len, iteration and list methods work as on a list. `+`, `*` and `<`/`>`
    comparisons are refused: numpy does those element-wise, a list would concatenate, repeat
    or compare lexicographically, and a rule must not silently decide differently.
    """

    def _refuse(self, *_: Any) -> Any:
        raise TypeError("element-wise arithmetic and comparison on lists are not available in "
                        "rules (numpy arrays do them, lists do not): use a list comprehension, "
                        "e.g. [v * 2 for v in values]")

    __add__ = __radd__ = __iadd__ = __mul__ = __rmul__ = __imul__ = _refuse
    __lt__ = __le__ = __gt__ = __ge__ = _refuse

    def __bool__(self) -> bool:
        if len(self) > 1:
            raise ValueError("the truth value of a list of more than one number is ambiguous "
                             "(numpy): use any(...), all(...) or len(...)")
        return len(self) == 1 and bool(self[0])


# --- checking the arguments -------------------------------------------------------------------

def _element(fn: str, value: Any, where: str) -> Number:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, list | tuple | range):
        raise TypeError(f"{fn}(): {where} is a list: nested lists are not supported in rules "
                        "(give a flat list of numbers)")
    if value is None:
        raise TypeError(f"{fn}(): {where} is None, not a number (a query with no data?)")
    raise TypeError(f"{fn}(): {where} is a {type(value).__name__}, not a number")


def _values(fn: str, a: Any, what: str = "the values") -> tuple[list[Number], bool]:
    """The numbers of `a` (a number, or a flat list/tuple/range of numbers), promoted as numpy
    promotes them: all floats if any is a float. Also whether `a` was a single number."""
    if isinstance(a, range) and len(a) > MAX_ARRAY_LENGTH:
        raise _too_long(fn, len(a))
    if isinstance(a, list | tuple | range):
        values = [_element(fn, v, f"element {i} of {what}") for i, v in enumerate(a)]
        scalar = False
    elif isinstance(a, int | float) or a is None:
        values, scalar = [_element(fn, a, what)], True
    else:
        raise TypeError(f"{fn}(): {what} must be a number or a list of numbers, "
                        f"not {type(a).__name__}")
    if any(isinstance(v, float) for v in values):
        try:
            values = [float(v) for v in values]
        except OverflowError:
            raise ValueError(f"{fn}(): an integer in {what} is too large for a float") from None
    return values, scalar


def _nonempty(fn: str, a: Any) -> list[Number]:
    values, _ = _values(fn, a)
    if not values:
        raise ValueError(f"{fn}() of an empty list is an error in rules (numpy gives nan with "
                         "a warning, or fails): guard with `if values:`")
    return values


def _count(fn: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{fn}(): {name} must be a whole number, not {type(value).__name__}")
    return value


def _too_long(fn: str, length: int) -> RuleLimit:
    return RuleLimit("value", f"{fn}() would make {length} values; rules may make at most "
                              f"{MAX_ARRAY_LENGTH}")


def _fsum(values: Sequence[float]) -> float:
    """The correctly rounded sum, or what plain addition gives where fsum refuses (inf - inf
    is nan, an intermediate overflow is inf), as numpy gives."""
    try:
        return math.fsum(values)
    except (OverflowError, ValueError):
        return sum(values, 0.0)


def _float_sum(fn: str, values: Sequence[Number]) -> float:
    try:
        return _fsum([float(v) for v in values])
    except OverflowError:
        raise ValueError(f"{fn}(): an integer among the values is too large for a float"
                         ) from None


# --- reductions -------------------------------------------------------------------------------

def mean(a: Any) -> float:
    """Arithmetic mean (numpy.mean)."""
    values = _nonempty("mean", a)
    return _float_sum("mean", values) / len(values)


def average(a: Any, weights: Any = None) -> float:
    """Weighted mean (numpy.average); without weights, the mean."""
    values = _nonempty("average", a)
    if weights is None:
        return _float_sum("average", values) / len(values)
    wvalues, _ = _values("average", weights, "the weights")
    if len(wvalues) != len(values):
        raise ValueError(f"average(): {len(values)} values but {len(wvalues)} weights")
    total = _float_sum("average", wvalues)
    if total == 0:
        raise ZeroDivisionError("average(): the weights sum to zero")
    return _fsum([float(v) * float(w) for v, w in zip(values, wvalues, strict=True)]) / total


def _has_nan(values: Sequence[Number]) -> bool:
    return any(v != v for v in values)


def median(a: Any) -> float:
    """Middle value; the mean of the two middle ones for an even count (numpy.median)."""
    values = _nonempty("median", a)
    if _has_nan(values):
        return math.nan
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[middle])
    return (float(ordered[middle - 1]) + float(ordered[middle])) / 2


def var(a: Any, ddof: int = 0) -> float:
    """Variance, sum of squared deviations over (n - ddof) (numpy.var, ddof=0 by default)."""
    values = _nonempty("var", a)
    ddof = _count("var", "ddof", ddof)
    if len(values) - ddof <= 0:
        raise ValueError(f"var(): ddof={ddof} needs more than {ddof} values, got {len(values)}")
    centre = _float_sum("var", values) / len(values)
    return _fsum([(float(v) - centre) ** 2 for v in values]) / (len(values) - ddof)


def std(a: Any, ddof: int = 0) -> float:
    """Standard deviation, the square root of var (numpy.std, ddof=0 by default)."""
    values = _nonempty("std", a)
    ddof = _count("std", "ddof", ddof)
    if len(values) - ddof <= 0:
        raise ValueError(f"std(): ddof={ddof} needs more than {ddof} values, got {len(values)}")
    return math.sqrt(var(values, ddof))


def _lerp(low: Number, high: Number, t: float) -> float:
    # numpy's _lerp: from the nearer end, so that t = 1 gives `high` exactly
    diff = high - low
    return float(high - diff * (1 - t)) if t >= 0.5 else float(low + diff * t)


def percentile(a: Any, q: Any) -> Any:
    """q-th percentile(s), linear interpolation between the closest ranks (numpy.percentile's
    default method); q a number or a list of numbers in [0, 100]."""
    values = _nonempty("percentile", a)
    qs, scalar = _values("percentile", q, "q")
    if any(not 0 <= p <= 100 for p in qs):
        raise ValueError("percentile(): q must be in the range [0, 100]")
    nan = _has_nan(values)
    ordered = sorted(values)
    last = len(ordered) - 1
    results = []
    for p in qs:
        if nan:
            results.append(math.nan)
            continue
        index = last * (p / 100)
        below = math.floor(index)
        if index >= last:  # numpy takes the last value from both sides
            below = above = last
            gamma = index + 1  # index - (-1), as numpy computes it
        else:
            above, gamma = below + 1, index - below
        results.append(_lerp(ordered[below], ordered[above], gamma))
    return results[0] if scalar else RuleArray(results)


def _extreme(fn: str, a: Any, pick: Callable[..., Number], skip_nan: bool) -> Number:
    values = _nonempty(fn, a)
    if _has_nan(values):
        values = [v for v in values if v == v]
        if not skip_nan or not values:
            return math.nan
    return pick(values)


def amax(a: Any) -> Number:
    """Largest value; nan if any is nan (numpy.amax)."""
    return _extreme("amax", a, max, skip_nan=False)


def amin(a: Any) -> Number:
    """Smallest value; nan if any is nan (numpy.amin)."""
    return _extreme("amin", a, min, skip_nan=False)


def nanmax(a: Any) -> Number:
    """Largest value ignoring nan; nan if all are (numpy.nanmax)."""
    return _extreme("nanmax", a, max, skip_nan=True)


def nanmin(a: Any) -> Number:
    """Smallest value ignoring nan; nan if all are (numpy.nanmin)."""
    return _extreme("nanmin", a, min, skip_nan=True)


def ptp(a: Any) -> Number:
    """Range, largest minus smallest (numpy.ptp)."""
    values = _nonempty("ptp", a)
    return amax(values) - amin(values)


def _arg(fn: str, a: Any, better: Callable[[Number, Number], bool]) -> int:
    values = _nonempty(fn, a)
    best = 0
    for i, v in enumerate(values):
        if v != v:
            return i  # numpy: the first nan
        if better(v, values[best]):
            best = i
    return best


def argmax(a: Any) -> int:
    """Index of the first largest value (numpy.argmax)."""
    return _arg("argmax", a, lambda v, best: v > best)


def argmin(a: Any) -> int:
    """Index of the first smallest value (numpy.argmin)."""
    return _arg("argmin", a, lambda v, best: v < best)


def prod(a: Any) -> Number:
    """Product of the values; 1.0 for an empty list (numpy.prod)."""
    values, _ = _values("prod", a)
    if not values:
        return 1.0
    result: Number = 1
    for v in values:
        result = check_number(result * v)
    return result


def nansum(a: Any) -> Number:
    """Sum ignoring nan; 0.0 for an empty list (numpy.nansum)."""
    values, _ = _values("nansum", a)
    if not values:
        return 0.0
    if isinstance(values[0], float):
        return _fsum([v for v in values if v == v])
    return sum(values)


# --- functions that give lists ----------------------------------------------------------------

def _running(fn: str, a: Any, step: Callable[[Number, Number], Number]) -> RuleArray:
    values, _ = _values(fn, a)
    out = RuleArray()
    for v in values:
        out.append(check_number(step(out[-1], v)) if len(out) else v)
    return out


def cumsum(a: Any) -> RuleArray:
    """Running totals (numpy.cumsum)."""
    return _running("cumsum", a, lambda total, v: total + v)


def cumprod(a: Any) -> RuleArray:
    """Running products (numpy.cumprod)."""
    return _running("cumprod", a, lambda total, v: total * v)


def diff(a: Any, n: int = 1) -> RuleArray:
    """Differences of neighbours, n times (numpy.diff)."""
    values, scalar = _values("diff", a)
    n = _count("diff", "n", n)
    if scalar:
        raise ValueError("diff(): needs a list, not a single number")
    if n < 0:
        raise ValueError(f"diff(): n must be >= 0, got {n}")
    for _ in range(min(n, len(values))):  # after len(values) rounds nothing is left
        values = [y - x for x, y in pairwise(values)]
    return RuleArray(values)


def _nan_last(values: list[Number]) -> list[Number]:
    return sorted(v for v in values if v == v) + [v for v in values if v != v]


def sort(a: Any) -> RuleArray:
    """Sorted copy, nan last (numpy.sort)."""
    values, _ = _values("sort", a)
    return RuleArray(_nan_last(values))


def unique(a: Any) -> RuleArray:
    """Sorted distinct values, one nan last if any (numpy.unique)."""
    values, _ = _values("unique", a)
    distinct = sorted(set(v for v in values if v == v))
    return RuleArray(distinct + ([math.nan] if _has_nan(values) else []))


def clip(a: Any, a_min: Any, a_max: Any) -> Any:
    """Values limited to [a_min, a_max] (numpy.clip; one bound may be None)."""
    values, scalar = _values("clip", a)
    if a_min is None and a_max is None:
        raise ValueError("clip(): give a_min, a_max or both")
    low = None if a_min is None else _element("clip", a_min, "a_min")
    high = None if a_max is None else _element("clip", a_max, "a_max")
    as_float = any(isinstance(v, float) for v in (*values[:1], low, high))
    out = []
    for v in values:
        if low is not None:
            v = v if v != v or v >= low else low
        if high is not None:
            v = v if v != v or v <= high else high
        out.append(float(v) if as_float else v)
    return out[0] if scalar else RuleArray(out)


def interp(x: Any, xp: Any, fp: Any) -> Any:
    """Piecewise-linear interpolation of (xp, fp) at x, xp increasing; the end values outside
    (numpy.interp)."""
    xs, scalar = _values("interp", x, "x")
    knots = [float(v) for v in _values("interp", xp, "xp")[0]]
    heights = [float(v) for v in _values("interp", fp, "fp")[0]]
    if not knots or len(knots) != len(heights):
        raise ValueError("interp(): xp and fp must be non-empty lists of the same length")
    out = []
    for v in map(float, xs):
        j = bisect_right(knots, v) - 1
        if v != v:
            out.append(math.nan)
        elif j < 0:
            out.append(heights[0])
        elif v >= knots[-1]:
            out.append(heights[-1])
        elif v == knots[j]:
            out.append(heights[j])
        else:
            slope = (heights[j + 1] - heights[j]) / (knots[j + 1] - knots[j])
            value = slope * (v - knots[j]) + heights[j]
            if value != value:  # numpy's fallbacks for infinite or equal neighbours
                value = slope * (v - knots[j + 1]) + heights[j + 1]
                if value != value and heights[j] == heights[j + 1]:
                    value = heights[j]
            out.append(value)
    return out[0] if scalar else RuleArray(out)


def arange(start: Any, stop: Any = None, step: Any = 1) -> RuleArray:
    """Evenly spaced values in [start, stop) (numpy.arange; arange(n) is 0 .. n-1)."""
    if stop is None:
        start, stop = 0, start
    first = _element("arange", start, "start")
    end = _element("arange", stop, "stop")
    delta = _element("arange", step, "step")
    if delta == 0:
        raise ZeroDivisionError("arange(): step must not be zero")
    whole = not any(isinstance(v, float) for v in (first, end, delta))
    try:
        length = max(0, -((first - end) // delta) if whole else math.ceil((end - first) / delta))
    except (OverflowError, ValueError):  # an infinite or nan bound
        raise ValueError("arange(): start, stop and step must be finite") from None
    if length > MAX_ARRAY_LENGTH:
        raise _too_long("arange", length)
    if whole:
        return RuleArray(range(first, first + length * delta, delta))
    # numpy fills start, start + step, then start + i * (second - first)
    values = [float(first), float(first) + delta][:length]
    spacing = values[1] - values[0] if length > 1 else 0.0
    values += [values[0] + i * spacing for i in range(2, length)]
    return RuleArray(values)


def linspace(start: Any, stop: Any, num: Any = 50, endpoint: bool = True) -> RuleArray:
    """num evenly spaced values from start to stop, stop included unless endpoint=False
    (numpy.linspace)."""
    first = float(_element("linspace", start, "start"))
    last = float(_element("linspace", stop, "stop"))
    num = _count("linspace", "num", num)
    if num < 0:
        raise ValueError(f"linspace(): num must be >= 0, got {num}")
    if num > MAX_ARRAY_LENGTH:
        raise _too_long("linspace", num)
    div = num - 1 if endpoint else num
    delta = last - first
    step = delta / div if div > 0 else math.nan
    if div > 0 and step == 0:
        values = [i / div * delta + first for i in range(num)]
    elif div > 0:
        values = [i * step + first for i in range(num)]
    else:
        values = [i * delta + first for i in range(num)]
    if endpoint and num > 1:
        values[-1] = last
    return RuleArray(values)


# --- element-wise functions: a number gives a number, a list a RuleArray ----------------------

def _elementwise(fn: str, func: Callable[[Number], Number]) -> Callable[[Any], Any]:
    def apply(a: Any) -> Any:
        values, scalar = _values(fn, a)
        out = []
        for v in values:
            try:
                out.append(func(v))
            except ValueError:
                raise ValueError(f"{fn}(): {v!r} is outside its domain (numpy would give nan; "
                                 "rules get this error)") from None
            except OverflowError:
                raise ValueError(f"{fn}(): no finite result for {v!r}") from None
        return out[0] if scalar else RuleArray(out)
    apply.__name__ = apply.__qualname__ = fn
    apply.__doc__ = f"numpy.{fn} on a number or element-wise on a list."
    return apply


def _sign(v: Number) -> Number:
    if v != v:
        return v
    return type(v)((v > 0) - (v < 0))


def _isnan(v: Number) -> bool:
    return v != v


def _isinf(v: Number) -> bool:
    return isinstance(v, float) and math.isinf(v)


def _isfinite(v: Number) -> bool:
    return not isinstance(v, float) or math.isfinite(v)


def _rint(v: float) -> float:
    return float(round(v)) if math.isfinite(v) else v


def _power_of_ten(n: int) -> float:
    # numpy's power_of_ten (multiarray/calculation.c): a table to 1e8, then times 10 each
    if n < 9:
        return float(10 ** n)
    result = 1e9
    for _ in range(n - 9):
        result *= 10.0
    return result


def _round_float(v: float, decimals: int) -> float:
    """numpy's rounding: scale, round half to even, scale back (so 2.675 -> 2.68, where
    Python's exact decimal rounding gives 2.67)."""
    if decimals >= 0:
        factor = _power_of_ten(decimals)
        return _rint(v * factor) / factor
    factor = _power_of_ten(-decimals)
    return _rint(v / factor) * factor


def round_(a: Any, decimals: Any = None) -> Any:
    """Round half to even (numpy.round / around): round(x) gives an int as Python's round,
    round(x, 2) rounds as numpy does; a list is rounded element-wise."""
    if decimals is not None:
        decimals = _count("round", "decimals", decimals)
        if abs(decimals) > 400:
            raise ValueError("round(): decimals must be between -400 and 400")
    values, scalar = _values("round", a)
    out: list[Number] = []
    for v in values:
        if decimals is None:
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"round(): {v!r} gives no finite whole number")
            out.append(round(v))
        elif isinstance(v, float):
            out.append(_round_float(v, decimals))
        else:
            out.append(round(v, decimals))
    return out[0] if scalar else RuleArray(out)


def _pick_pair(pick: Callable[[Number, Number], Number], x: Number, y: Number,
               nan_wins: bool) -> Number:
    """maximum/minimum: a nan wins; fmax/fmin: the other value wins over a nan."""
    if x != x or y != y:
        nan, other = (x, y) if x != x else (y, x)
        return nan if nan_wins else other
    return pick(x, y)


def _pairwise(fn: str, pick: Callable[[Number, Number], Number], nan_wins: bool,
              ) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        left, left_scalar = _values(fn, a, "the first argument")
        right, right_scalar = _values(fn, b, "the second argument")
        as_float = any(isinstance(v, float) for v in (*left[:1], *right[:1]))
        if left_scalar:
            left = left * len(right)
        if right_scalar:
            right = right * len(left)
        if len(left) != len(right):
            raise ValueError(f"{fn}(): lists of different lengths ({len(left)} and "
                             f"{len(right)})")
        out = [_pick_pair(pick, x, y, nan_wins) for x, y in zip(left, right, strict=True)]
        out = [float(v) for v in out] if as_float else out
        return out[0] if left_scalar and right_scalar else RuleArray(out)
    apply.__name__ = apply.__qualname__ = fn
    apply.__doc__ = f"numpy.{fn}: element-wise on numbers or lists."
    return apply


def _log(x: Any, base: Any = None) -> Any:
    """Natural logarithm (numpy.log), element-wise; log(x, base) as math.log allows."""
    if base is None:
        return _log_e(x)
    b = _element("log", base, "base")
    return _elementwise("log", lambda v: math.log(v, b))(x)


_log_e = _elementwise("log", math.log)


# The rule builtins: numpy's names (and Python's abs and round, made element-wise as numpy's).
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "mean": mean, "average": average, "median": median, "std": std, "var": var,
    "percentile": percentile, "amax": amax, "amin": amin, "nanmax": nanmax, "nanmin": nanmin,
    "ptp": ptp, "argmax": argmax, "argmin": argmin, "prod": prod, "nansum": nansum,
    "cumsum": cumsum, "cumprod": cumprod, "diff": diff, "sort": sort, "unique": unique,
    "clip": clip, "interp": interp, "arange": arange, "linspace": linspace,
    "round": round_, "around": round_, "log": _log,
    "maximum": _pairwise("maximum", max, nan_wins=True),
    "minimum": _pairwise("minimum", min, nan_wins=True),
    "fmax": _pairwise("fmax", max, nan_wins=False), "fmin": _pairwise("fmin", min, nan_wins=False),
    **{name: _elementwise(name, func) for name, func in (
        ("abs", abs), ("fabs", lambda v: abs(float(v))), ("ceil", math.ceil),
        ("floor", math.floor), ("trunc", math.trunc), ("sqrt", math.sqrt), ("exp", math.exp),
        ("log10", math.log10), ("log2", math.log2), ("sign", _sign),
        ("square", lambda v: check_number(v * v)), ("isnan", _isnan), ("isinf", _isinf),
        ("isfinite", _isfinite),
    )},
}
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "inf": math.inf, "nan": math.nan}
AVAILABLE = frozenset(FUNCTIONS) | frozenset(CONSTANTS)
# Python's builtins rules keep where asteval gave numpy's: the same values on numbers
PYTHON_INSTEAD = frozenset({"sum", "all", "any", "bool"})


def builtins() -> dict[str, Any]:
    """What rule_runtime adds to a rule's builtins."""
    return {**FUNCTIONS, **CONSTANTS}


def unavailable_message(name: str) -> str | None:
    """The error for a name MiCADO's rules had from numpy or math and this engine does not
    offer; None for any other name."""
    if name in AVAILABLE or name in PYTHON_INSTEAD:
        return None
    origin = "numpy" if name in NUMPY_NAMES else "math" if name in MATH_NAMES else None
    if origin is None:
        return None
    return (f"{origin}'s `{name}` is not available in rules; available: "
            f"{', '.join(sorted(AVAILABLE))}")
