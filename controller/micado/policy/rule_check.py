"""Static check and rewrite of a scaling rule before it runs: an allow-list of Python.

MiCADO rules use a small subset of Python (assignments, if/for/while, arithmetic, lists and
dicts, string methods, print, a few builtins). Everything else is refused here, with the line,
before the rule ever runs: imports, function and class definitions, lambdas, try/with/raise,
global/nonlocal, names or attributes starting with `_`, attributes outside a list of data
methods (so no `gi_frame`, `mro`, `format_map` ...), and the dangerous builtins by name.
Two operations are rewritten into checked calls: `**` and `<<` (huge integers) and
`.format(...)` (attribute and index lookups inside format fields).
"""

from __future__ import annotations

import ast
import warnings
from dataclasses import dataclass

ALLOWED_NODES: tuple[type[ast.AST], ...] = (
    ast.Module, ast.Expr, ast.Assign, ast.AugAssign, ast.If, ast.For, ast.While, ast.Break,
    ast.Continue, ast.Pass, ast.Compare, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.IfExp,
    ast.Call, ast.keyword, ast.Name, ast.Load, ast.Store, ast.Constant, ast.List, ast.Tuple,
    ast.Dict, ast.Set, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp,
    ast.comprehension, ast.Subscript, ast.Slice, ast.Attribute, ast.JoinedStr,
    ast.FormattedValue, ast.Starred, ast.operator, ast.boolop, ast.cmpop, ast.unaryop,
    ast.expr_context,
)
# Methods of str, list, dict, set and numbers a rule may call; `time` is time.time().
ALLOWED_ATTRIBUTES = frozenset({
    # str
    "lower", "upper", "strip", "lstrip", "rstrip", "split", "rsplit", "join", "replace",
    "startswith", "endswith", "find", "rfind", "count", "index", "isdigit", "isalpha",
    "isalnum", "isspace", "islower", "isupper", "isnumeric", "title", "capitalize", "zfill",
    "center", "ljust", "rjust", "splitlines", "partition", "rpartition", "casefold",
    "removeprefix", "removesuffix", "swapcase",
    # list / dict / set
    "append", "extend", "insert", "pop", "remove", "sort", "reverse", "copy", "clear", "get",
    "keys", "values", "items", "update", "setdefault", "add", "discard", "union",
    "intersection", "difference", "symmetric_difference", "issubset", "issuperset",
    "isdisjoint",
    # numbers
    "is_integer", "real", "imag", "conjugate",
    # the `time` object: time.time()
    "time",
})
FORBIDDEN_NAMES = frozenset({
    "eval", "exec", "compile", "open", "getattr", "setattr", "delattr", "hasattr", "globals",
    "locals", "vars", "type", "dir", "input", "breakpoint", "memoryview", "object", "super",
    "classmethod", "staticmethod", "property", "help", "exit", "quit", "id", "hash", "iter",
    "next", "bytearray", "bytes", "frozenset", "callable", "issubclass", "format", "repr",
    "ascii", "chr", "pow", "requests", "os", "sys", "subprocess", "socket",
})
SAFE_POW = "_micado_pow"
SAFE_LSHIFT = "_micado_lshift"
SAFE_FORMAT = "_micado_format"


@dataclass(frozen=True)
class RuleRejected(Exception):
    """The rule uses something the sandbox does not allow."""

    kind: str
    message: str
    line: int | None

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


def _reject(kind: str, message: str, node: ast.AST | None) -> RuleRejected:
    return RuleRejected(kind, message, getattr(node, "lineno", None))


class _Checker(ast.NodeVisitor):
    def generic_visit(self, node: ast.AST) -> None:
        if not isinstance(node, ALLOWED_NODES):
            raise _reject("forbidden", _describe(node), node)
        super().generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id.startswith("_"):
            raise _reject("forbidden", f"names starting with '_' are not allowed ({node.id})",
                          node)
        if node.id in FORBIDDEN_NAMES:
            raise _reject("forbidden", f"{node.id} is not available in scaling rules", node)
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr.startswith("_"):
            raise _reject("forbidden", f"attributes starting with '_' are not allowed "
                                       f"(.{node.attr})", node)
        if node.attr not in ALLOWED_ATTRIBUTES:
            raise _reject("forbidden", f".{node.attr} is not available in scaling rules", node)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "format":
            # s.format(...) is allowed as a call; the rewrite checks its fields at run time
            for child in (func.value, *node.args, *node.keywords):
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, bytes):
            raise _reject("forbidden", "bytes literals are not available in scaling rules", node)
        self.generic_visit(node)


def _describe(node: ast.AST) -> str:
    names = {
        ast.Import: "import", ast.ImportFrom: "import", ast.FunctionDef: "function definitions",
        ast.AsyncFunctionDef: "function definitions", ast.Lambda: "lambda",
        ast.ClassDef: "class definitions", ast.Try: "try/except", ast.With: "with",
        ast.Raise: "raise", ast.Global: "global", ast.Nonlocal: "nonlocal", ast.Yield: "yield",
        ast.YieldFrom: "yield", ast.Await: "await", ast.Delete: "del", ast.Assert: "assert",
        ast.NamedExpr: "the := operator",
    }
    what = names.get(type(node), type(node).__name__)
    return f"{what} is not allowed in scaling rules"


class _Rewriter(ast.NodeTransformer):
    """`a ** b` -> _micado_pow(a, b); `a << b` -> _micado_lshift(a, b); s.format(..) checked."""

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        helper = {ast.Pow: SAFE_POW, ast.LShift: SAFE_LSHIFT}.get(type(node.op))
        if helper is None:
            return node
        return ast.copy_location(
            ast.Call(ast.Name(helper, ast.Load()), [node.left, node.right], []), node)

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        self.generic_visit(node)
        helper = {ast.Pow: SAFE_POW, ast.LShift: SAFE_LSHIFT}.get(type(node.op))
        if helper is None:
            return node
        target = node.target
        load = ast.copy_location(_as_load(target), target)
        value = ast.Call(ast.Name(helper, ast.Load()), [load, node.value], [])
        return ast.copy_location(ast.Assign([target], ast.copy_location(value, node)), node)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "format":
            call = ast.Call(ast.Name(SAFE_FORMAT, ast.Load()), [func.value, *node.args],
                            node.keywords)
            return ast.copy_location(call, node)
        return node


def _as_load(target: ast.expr) -> ast.expr:
    if isinstance(target, ast.Name):
        return ast.Name(target.id, ast.Load())
    if isinstance(target, ast.Subscript):
        return ast.Subscript(target.value, target.slice, ast.Load())
    if isinstance(target, ast.Attribute):
        return ast.Attribute(target.value, target.attr, ast.Load())
    raise _reject("forbidden", "unsupported assignment target", target)


def check_rule(source: str) -> ast.Module:
    """Parse, check and rewrite a rule; raises RuleRejected with the line of the problem."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(source, filename="<rule>", mode="exec")
    except SyntaxError as exc:
        raise RuleRejected("syntax", exc.msg, exc.lineno) from None
    except ValueError as exc:  # null bytes
        raise RuleRejected("syntax", str(exc), None) from None
    except RecursionError:  # e.g. 1+1+...+1 or ------1 deeper than the parser's stack
        raise RuleRejected("recursion", _TOO_DEEP, None) from None
    try:
        _Checker().visit(tree)
        tree = _Rewriter().visit(tree)
    except RecursionError:  # the visitors recurse once per nesting level
        raise RuleRejected("recursion", _TOO_DEEP, None) from None
    return ast.fix_missing_locations(tree)


_TOO_DEEP = "the rule nests too deeply to be checked"


def compile_rule(source: str) -> object:
    """A code object for the checked and rewritten rule."""
    tree = check_rule(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return compile(tree, "<rule>", "exec")
    except SyntaxError as exc:  # found only by the compiler: 'break' outside loop, *a = ...
        raise RuleRejected("syntax", exc.msg, exc.lineno) from None
    except RecursionError:
        raise RuleRejected("recursion", _TOO_DEEP, None) from None
