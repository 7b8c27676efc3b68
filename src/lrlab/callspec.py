"""A tiny call-like language for specs given on the command line, parsed without ``eval``.

``exponential(lr=0.2, rate=0.99, every=1)`` or ``warmup(cosine(lr=0.1, steps=1000), steps=50)``
parse to a `CallSpec` tree. Values are numbers, ``true``/``false``, bare words (``cos``,
``epoch``), quoted strings, ``[lists]`` and nested calls; nothing else is accepted, so a spec can
never run code.

What the parser takes is bounded: at most `MAX_SPEC_LENGTH` characters and `MAX_DEPTH` levels
of nesting (calls, lists and signs), checked on the tokens before Python's parser sees the
text, so a pathological spec (thousands of nested minus signs or brackets) is a one-line
`SpecError`, never a ``RecursionError`` or ``MemoryError``.
"""

from __future__ import annotations

import ast
import io
import math
import tokenize
from dataclasses import dataclass, field

from lrlab.validate import ArgumentTypeError

#: The longest spec the parser reads, in characters.
MAX_SPEC_LENGTH = 10_000
#: The deepest nesting of calls, lists and signs the parser accepts.
MAX_DEPTH = 32


class SpecError(ValueError):
    """A spec string that does not parse, or names an unknown thing or argument."""


@dataclass(frozen=True)
class CallSpec:
    """``name(*args, **kwargs)`` as data."""

    name: str
    args: tuple[object, ...] = ()
    kwargs: dict[str, object] = field(default_factory=dict)


_WORDS: dict[str, object] = {
    "true": True,
    "True": True,
    "false": False,
    "False": False,
    "inf": math.inf,
    "nan": math.nan,
}


def parse_call(text: str) -> CallSpec:
    """Parse ``text`` into a `CallSpec`; raise `SpecError` (one line) if it is not a call.

    >>> parse_call("warmup(cosine(lr=0.1, steps=100), steps=10)").kwargs["steps"]
    10
    >>> parse_call("-" * 5000 + "1")
    Traceback (most recent call last):
    ...
    lrlab.callspec.SpecError: spec nests deeper than 32 levels, got spec='-----------------...'
    """
    node = _parse(text, "spec")
    if isinstance(node, ast.Name):  # a bare name is a call without arguments: `adam`
        return CallSpec(node.id)
    if not isinstance(node, ast.Call):
        raise SpecError(f"spec must look like name(arg=value, ...), got spec={_show(text)}")
    return _call(node, text)


def parse_value(text: str) -> object:
    """Parse one value of the spec language: a number, ``true``/``false``, a bare word or
    quoted string, a ``[list]`` (as a tuple) or a call; within the same bounds as `parse_call`.

    >>> parse_value("[0.9, 0.999]"), parse_value("-1e-3"), parse_value("cos")
    ((0.9, 0.999), -0.001, 'cos')
    """
    return _value(_parse(text, "value"), text)


def _parse(text: object, what: str) -> ast.expr:
    """Python's parser on ``text``, once the text is known to be short and shallow enough."""
    if not isinstance(text, str):
        raise ArgumentTypeError(f"{what} must be a string, got {what}={_show(text)}")
    source = text.strip()
    if len(source) > MAX_SPEC_LENGTH:
        raise SpecError(
            f"{what} must be at most {MAX_SPEC_LENGTH} characters, got {len(source)} "
            f"characters: {what}={_show(text)}"
        )
    if _depth_exceeds(source, MAX_DEPTH):
        raise SpecError(f"{what} nests deeper than {MAX_DEPTH} levels, got {what}={_show(text)}")
    try:
        return ast.parse(source, mode="eval").body
    except SyntaxError as error:
        raise SpecError(f"cannot parse {what} {_show(text)}: {error.msg}") from None
    except (RecursionError, MemoryError):  # a backstop: `_depth_exceeds` bounds this first
        raise SpecError(f"{what} is too complex to parse, got {what}={_show(text)}") from None


def _depth_exceeds(source: str, limit: int) -> bool:
    """Whether ``source`` nests deeper than ``limit`` levels somewhere, counting each open
    bracket and each sign operator (``-``, ``+``, ``~``, ``not``) that applies to what follows
    it, judged on Python's tokens: an iterative scan, no recursion, so any text is safe to
    scan. Text that does not tokenize is left to the parser's error."""
    signs_before: list[int] = []  # per open bracket: the signs applying to it
    run = 0  # signs since the last other token
    levels = 0  # len(signs_before) + sum(signs_before)
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            text = token.string
            if token.type == tokenize.OP and text in "([{":
                signs_before.append(run)
                levels += 1 + run
                run = 0
            elif token.type == tokenize.OP and text in ")]}":
                if signs_before:
                    levels -= 1 + signs_before.pop()
                run = 0
            elif (token.type == tokenize.OP and text in ("-", "+", "~")) or (
                token.type == tokenize.NAME and text == "not"
            ):
                run += 1
            elif token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT):
                run = 0
            if levels + run > limit:
                return True
    except (tokenize.TokenError, SyntaxError):
        pass
    return False


def _show(value: object) -> str:
    text = repr(value) if isinstance(value, str) else f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:20] + "..." + text[-1]


def _call(node: ast.Call, text: str) -> CallSpec:
    if not isinstance(node.func, ast.Name):
        raise SpecError(f"spec must look like name(arg=value, ...), got spec={_show(text)}")
    name = node.func.id
    args = tuple(_value(arg, text) for arg in node.args)
    kwargs: dict[str, object] = {}
    for keyword in node.keywords:
        if keyword.arg is None:
            raise SpecError(f"{name}: '**' is not allowed in a spec, got {_show(text)}")
        if keyword.arg in kwargs:
            raise SpecError(f"{name}: argument {keyword.arg} given twice in {_show(text)}")
        kwargs[keyword.arg] = _value(keyword.value, text)
    return CallSpec(name, args, kwargs)


def _value(node: ast.expr, text: str) -> object:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str | bool):
        return node.value
    if isinstance(node, ast.Name):
        return _WORDS.get(node.id, node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand = _value(node.operand, text)
        if isinstance(operand, int | float) and not isinstance(operand, bool):
            return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.List | ast.Tuple):
        return tuple(_value(item, text) for item in node.elts)
    if isinstance(node, ast.Call):
        return _call(node, text)
    snippet = ast.get_source_segment(text.strip(), node) or type(node).__name__
    raise SpecError(f"unsupported value {_show(snippet)} in {_show(text)}")
