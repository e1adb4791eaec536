"""The names MiCADO's scaling rules could call without defining them, beyond Python's
builtins: asteval 0.9.18's make_symbol_table(use_numpy=True) with numpy 2.0.0, the
versions MiCADO's Policy Keeper pins (requirements.txt of
micado-scale/component-policy-keeper, commit d8d5dc2f).

Generated, do not edit: tests/unit/policy/numpy_reference.py makes this text again from
the real libraries (in a cached virtualenv) and a test compares; rewrite it with
`.venv/bin/python tests/unit/policy/numpy_reference.py --write`.
"""

# names the numpy option adds to asteval's table or takes over from Python and math
NUMPY_NAMES = frozenset({
    "abs", "acos", "acosh", "add", "all", "amax", "amin", "angle", "any", "append", "arange",
    "arccos", "arccosh", "arcsin", "arcsinh", "arctan", "arctan2", "arctanh", "argmax",
    "argmin", "argsort", "argwhere", "around", "array", "array2string", "asanyarray",
    "asarray", "asarray_chkfinite", "ascontiguousarray", "asfortranarray", "asin", "asinh",
    "asmatrix", "atan", "atan2", "atanh", "atleast_1d", "atleast_2d", "atleast_3d", "average",
    "bartlett", "base_repr", "bitwise_and", "bitwise_not", "bitwise_or", "bitwise_xor",
    "blackman", "bool", "broadcast", "broadcast_arrays", "byte", "c_", "cdouble", "ceil",
    "chararray", "choose", "clip", "clongdouble", "column_stack", "common_type", "complex128",
    "complex64", "complexfloating", "compress", "concatenate", "conjugate", "convolve", "copy",
    "copysign", "corrcoef", "correlate", "cos", "cosh", "cov", "cross", "csingle", "cumprod",
    "cumsum", "datetime_data", "deg2rad", "degrees", "delete", "diag", "diag_indices",
    "diag_indices_from", "diagflat", "diagonal", "diff", "digitize", "divide", "dot", "double",
    "dsplit", "dstack", "dtype", "e", "ediff1d", "empty", "empty_like", "equal", "exp", "exp2",
    "expand_dims", "expm1", "extract", "eye", "fabs", "fft", "fill_diagonal", "finfo", "fix",
    "flatiter", "flatnonzero", "fliplr", "flipud", "float32", "float64", "floating", "floor",
    "floor_divide", "fmax", "fmin", "fmod", "frexp", "frombuffer", "fromfile", "fromfunction",
    "fromiter", "frompyfunc", "fromregex", "fromstring", "genfromtxt", "getbufsize", "geterr",
    "gradient", "greater", "greater_equal", "hamming", "hanning", "histogram", "histogram2d",
    "histogramdd", "hsplit", "hstack", "hypot", "i0", "identity", "iinfo", "imag", "in1d",
    "index_exp", "indices", "inexact", "inf", "info", "inner", "insert", "int16", "int32",
    "int64", "int8", "int_", "intc", "integer", "interp", "intersect1d", "intp", "invert",
    "iscomplex", "iscomplexobj", "isfinite", "isfortran", "isinf", "isnan", "isneginf",
    "isposinf", "isreal", "isrealobj", "isscalar", "iterable", "ix_", "kaiser", "kron",
    "ldexp", "left_shift", "less", "less_equal", "linalg", "linspace", "little_endian", "ln",
    "load", "loadtxt", "log", "log10", "log1p", "log2", "logaddexp", "logaddexp2",
    "logical_and", "logical_not", "logical_or", "logical_xor", "logspace", "long",
    "longdouble", "longlong", "mask_indices", "matrix", "maximum", "may_share_memory", "mean",
    "median", "memmap", "meshgrid", "mgrid", "minimum", "mintypecode", "mod", "modf",
    "multiply", "nan", "nan_to_num", "nanargmax", "nanargmin", "nanmax", "nanmin", "nansum",
    "ndarray", "ndenumerate", "ndim", "ndindex", "negative", "newaxis", "nextafter", "nonzero",
    "not_equal", "number", "ogrid", "ones", "ones_like", "outer", "packbits", "percentile",
    "pi", "piecewise", "place", "poly", "poly1d", "polyadd", "polyder", "polydiv", "polyfit",
    "polyint", "polymul", "polynomial", "polysub", "polyval", "power", "prod", "ptp", "put",
    "putmask", "r_", "rad2deg", "radians", "random", "ravel", "real", "real_if_close",
    "reciprocal", "record", "remainder", "repeat", "reshape", "resize", "right_shift", "rint",
    "roll", "rollaxis", "roots", "rot90", "round", "row_stack", "s_", "searchsorted", "select",
    "setbufsize", "setdiff1d", "seterr", "setxor1d", "shape", "short", "sign", "signbit",
    "signedinteger", "sin", "sinc", "single", "sinh", "size", "sort", "sort_complex",
    "spacing", "split", "sqrt", "square", "squeeze", "std", "str_", "subtract", "sum",
    "swapaxes", "take", "tan", "tanh", "tensordot", "tile", "trace", "transpose", "trapz",
    "tri", "tril", "tril_indices", "tril_indices_from", "trim_zeros", "triu", "triu_indices",
    "triu_indices_from", "true_divide", "trunc", "ubyte", "uint", "uint16", "uint32", "uint64",
    "uint8", "uintc", "uintp", "ulonglong", "union1d", "unique", "unravel_index",
    "unsignedinteger", "unwrap", "ushort", "vander", "var", "vdot", "vectorize", "vsplit",
    "vstack", "where", "zeros", "zeros_like",
})
# names from math that numpy does not take over
MATH_NAMES = frozenset({
    "factorial", "fsum",
})
