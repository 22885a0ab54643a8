"""Safe parsing of answer expressions -- no ``eval``, no ``sympify`` of model text.

Two small recursive-descent parsers:

* :func:`evaluate_latex` reads a normalised LaTeX *arithmetic subset* (numbers, ``+ - * /``,
  ``^``, ``\\frac``, ``\\sqrt``, ``\\pi``, ``\\cdot``, ``\\times``, single-letter variables,
  implicit multiplication) and evaluates it numerically: exactly with fractions when it can,
  otherwise in floating point, at fixed pseudo-random values of the variables. The ``math``
  grader's fast path compares these values; anything outside the subset returns None and goes
  to the symbolic comparison instead. Powers are size-checked *before* they are computed, so
  ``9^{9^{9^{9}}}`` raises :class:`TooLarge` in microseconds instead of hanging.

* :func:`to_sympy` builds SymPy objects from plain-text expressions the way
  ``sympy.parsing.sympy_parser.parse_expr`` would (``implicit=True`` adds implicit
  multiplication and splits unknown names into letters; ``implicit=False`` is the standard
  transformations, where ``^`` is Python's XOR), for the ``paper`` grader. Inputs outside the
  supported grammar raise :class:`ParseError`, which callers treat exactly like a failed
  ``parse_expr``.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

MAX_INPUT = 400  # characters; longer expressions are left to the (time-bounded) slow path
MAX_EXPONENT = 2000  # |integer exponent| computed exactly
MAX_BITS = 20000  # size of an exact power we are willing to build
MAX_DEPTH = 60  # nesting of braces / parentheses


class ParseError(ValueError):
    """The expression is outside the supported grammar."""


class TooLarge(ValueError):
    """The expression denotes an astronomically large number (or would take too long)."""


Number = Fraction | float

# --- LaTeX arithmetic subset ---------------------------------------------------------------

_LATEX_TOKEN = re.compile(r"\s*(?:(\d+\.?\d*|\.\d+)|\\([A-Za-z]+)|([A-Za-z])|(\S))")
_COMMANDS = {"frac", "sqrt", "pi", "cdot", "times", "div"}
# letters whose meaning is ambiguous (e, i: constants or variables?) go to the symbolic path
_AMBIGUOUS_LETTERS = set("eiEI")
# Variables are replaced by fixed irrational-looking values that depend on the letter (so that
# p - q and q - p differ), at two independent assignments to catch accidental agreement.
_ASSIGNMENTS = (0.6180339887, 0.4142135624)
MAX_VARIABLES = 4


def _variable_value(letter: str, assignment: float) -> float:
    return 0.5 + (ord(letter) * assignment * 7.0) % 1.0


def _latex_tokens(text: str) -> list[tuple[str, str]]:
    tokens = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _LATEX_TOKEN.match(text, position)
        if match is None:  # only trailing whitespace could fail to match
            break
        number, command, letter, other = match.groups()
        if number is not None:
            tokens.append(("num", number))
        elif command is not None:
            if command not in _COMMANDS:
                raise ParseError(f"\\{command}")
            tokens.append(("cmd", command))
        elif letter is not None:
            if letter in _AMBIGUOUS_LETTERS:
                raise ParseError(letter)
            tokens.append(("var", letter))
        elif other in "+-*/^(){}[]":
            tokens.append(("op", other))
        else:
            raise ParseError(other)
        position = match.end()
    return tokens


class _LatexEvaluator:
    """Evaluate a token list at one assignment of the variables."""

    def __init__(self, tokens: list[tuple[str, str]], assignment: float):
        self.tokens = tokens
        self.index = 0
        self.depth = 0
        self.assignment = assignment
        self.variables: dict[str, int] = {}
        self.used_float_literal = False

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, kind: str | None = None, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (kind and token[0] != kind) or (value and token[1] != value):
            raise ParseError(f"expected {value or kind}")
        self.index += 1
        return token

    def parse(self) -> Number:
        value = self.expression()
        if self.peek() is not None:
            raise ParseError("trailing input")
        return value

    def expression(self) -> Number:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise TooLarge("nesting")
        value = self.term()
        while (token := self.peek()) is not None and token in (("op", "+"), ("op", "-")):
            self.index += 1
            right = self.term()
            value = value + right if token[1] == "+" else value - right
        self.depth -= 1
        return value

    def _starts_primary(self, token: tuple[str, str] | None) -> bool:
        if token is None:
            return False
        kind, value = token
        return (kind in ("num", "var") or (kind == "cmd" and value in ("frac", "sqrt", "pi"))
                or (kind == "op" and value in "({"))

    def term(self) -> Number:
        value = self.signed()
        divided = implicit = False
        previous_was_number = self._last_was_plain_number
        while True:
            token = self.peek()
            if token in (("op", "*"), ("cmd", "cdot"), ("cmd", "times")):
                self.index += 1
                value = value * self.signed()
            elif token in (("op", "/"), ("cmd", "div")):
                self.index += 1
                divisor = self.signed()
                if divisor == 0:
                    raise ParseError("division by zero")
                value = value / divisor
                divided = True
            elif self._starts_primary(token):
                # "2\frac{1}{2}" is a mixed number to some readers and a product to others
                if previous_was_number and (token[0] == "num" or token == ("cmd", "frac")):
                    raise ParseError("ambiguous juxtaposition")
                value = value * self.power()
                implicit = True
            else:
                break
            previous_was_number = self._last_was_plain_number
            if divided and implicit:  # "1/2x": (1/2)x or 1/(2x)? leave it to sympy
                raise ParseError("ambiguous division")
        return value

    _last_was_plain_number = False

    def signed(self) -> Number:
        token = self.peek()
        if token in (("op", "-"), ("op", "+")):
            self.index += 1
            value = self.signed()
            return -value if token[1] == "-" else value
        return self.power()

    def power(self) -> Number:
        base = self.primary()
        if self.peek() == ("op", "^"):
            self.index += 1
            exponent = self.group_or_atom()
            if self.peek() == ("op", "^"):
                raise ParseError("ambiguous tower")
            self._last_was_plain_number = False
            return _power(base, exponent)
        return base

    def group_or_atom(self) -> Number:
        token = self.peek()
        if token == ("op", "{"):
            self.index += 1
            value = self.expression()
            self.take("op", "}")
            return value
        if token is not None and token[0] == "num" and len(token[1]) > 1 and "." not in token[1]:
            # "\frac12" / "x^23": LaTeX takes one digit as the argument
            digits = token[1]
            self.tokens[self.index] = ("num", digits[1:])
            self.tokens.insert(self.index, ("num", digits[0]))
        if token is not None and token[0] == "op" and token[1] in "+-":
            raise ParseError("signed bare argument")
        return self.primary()

    def primary(self) -> Number:
        token = self.peek()
        if token is None:
            raise ParseError("unexpected end")
        kind, value = token
        self.index += 1
        self._last_was_plain_number = False
        if kind == "num":
            self._last_was_plain_number = True
            if "." in value:
                self.used_float_literal = True
            return Fraction(value)
        if kind == "var":
            self.variables.setdefault(value, len(self.variables))
            if len(self.variables) > MAX_VARIABLES:
                raise ParseError("too many variables")
            return _variable_value(value, self.assignment)
        if kind == "cmd":
            if value == "pi":
                return math.pi
            if value == "frac":
                numerator = self.group_or_atom()
                denominator = self.group_or_atom()
                if denominator == 0:
                    raise ParseError("division by zero")
                return numerator / denominator
            if value == "sqrt":
                index = 2
                if self.peek() == ("op", "["):
                    self.index += 1
                    order = self.expression()
                    self.take("op", "]")
                    if not (isinstance(order, Fraction) and order.denominator == 1
                            and 2 <= order <= 12):
                        raise ParseError("root order")
                    index = int(order)
                return _root(self.group_or_atom(), index)
            raise ParseError(value)
        if kind == "op" and value in "({":
            closer = ")" if value == "(" else "}"
            inner = self.expression()
            self.take("op", closer)
            return inner
        raise ParseError(value)


def _power(base: Number, exponent: Number) -> Number:
    if isinstance(exponent, Fraction) and exponent.denominator == 1:
        power = int(exponent)
        if isinstance(base, Fraction):
            if base in (0, 1, -1):
                if base == 0 and power < 0:
                    raise ParseError("division by zero")
                return base ** power
            size = max(abs(base.numerator), base.denominator).bit_length()
            if abs(power) > MAX_EXPONENT or size * abs(power) > MAX_BITS:
                raise TooLarge("power")
            return base ** power
        if abs(power) > MAX_EXPONENT:
            raise TooLarge("power")
    base_f, exponent_f = float(base), float(exponent)
    if base_f < 0 and not (isinstance(exponent, Fraction) and exponent.denominator == 1):
        raise ParseError("complex power")
    if base_f == 0 and exponent_f < 0:
        raise ParseError("division by zero")
    try:
        result = base_f ** exponent_f
    except OverflowError:
        raise TooLarge("power") from None
    if isinstance(result, complex) or math.isinf(result):
        raise TooLarge("power")
    return result


def _root(radicand: Number, index: int) -> Number:
    if radicand < 0:
        if index % 2 == 0:
            raise ParseError("complex root")
        return -_root(-radicand, index)
    if isinstance(radicand, Fraction):
        numerator = round(radicand.numerator ** (1 / index)) if radicand.numerator else 0
        denominator = round(radicand.denominator ** (1 / index))
        if numerator ** index == radicand.numerator and denominator ** index == radicand.denominator:
            return Fraction(numerator, denominator)
    return float(radicand) ** (1 / index)


class LatexValue:
    """Values of an expression at the fixed assignments, plus how it was written."""

    __slots__ = ("values", "exact", "n_variables", "float_literal")

    def __init__(self, values: list[Number], n_variables: int, float_literal: bool):
        self.values = values
        self.exact = n_variables == 0 and isinstance(values[0], Fraction)
        self.n_variables = n_variables
        self.float_literal = float_literal


def evaluate_latex(text: str) -> LatexValue | None:
    """Evaluate a normalised LaTeX arithmetic expression; None when outside the subset.

    Raises :class:`TooLarge` for numbers too big to compute (see the module docstring).

    >>> math.isclose(evaluate_latex("2\\\\sqrt{2}").values[0], evaluate_latex("\\\\sqrt{8}").values[0])
    True
    >>> evaluate_latex("\\\\frac{3}{4}").values[0]
    Fraction(3, 4)
    """
    if len(text) > MAX_INPUT or not text:
        return None
    try:
        tokens = _latex_tokens(text)
        values: list[Number] = []
        n_variables = 0
        float_literal = False
        for assignment in _ASSIGNMENTS:
            evaluator = _LatexEvaluator(list(tokens), assignment)
            values.append(evaluator.parse())
            n_variables = len(evaluator.variables)
            float_literal = evaluator.used_float_literal
            if n_variables == 0:
                break
    except (ParseError, ZeroDivisionError, OverflowError, ValueError) as exc:
        if isinstance(exc, TooLarge):
            raise
        return None
    for value in values:
        if isinstance(value, float) and not math.isfinite(value):
            return None
    return LatexValue(values, n_variables, float_literal)


# --- plain-text expressions as SymPy objects (paper grader) --------------------------------

_TEXT_TOKEN = re.compile(
    r"\s*(?:(\d+\.\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|\d+(?:[eE][+-]?\d+)?)"
    r"|([A-Za-z_][A-Za-z_0-9]*)|(\*\*|[-+*/^(),]))")
_FUNCTIONS = ("sqrt", "exp", "log", "ln", "sin", "cos", "tan")


def _text_tokens(text: str) -> list[tuple[str, str]]:
    tokens = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TEXT_TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise ParseError(text[position:position + 1])
        number, name, operator = match.groups()
        if number is not None:
            tokens.append(("num", number))
        elif name is not None:
            tokens.append(("name", name))
        else:
            tokens.append(("op", operator))
        position = match.end()
    return tokens


class _SympyBuilder:
    def __init__(self, tokens: list[tuple[str, str]], implicit: bool):
        import sympy

        self.sympy = sympy
        self.tokens = tokens
        self.index = 0
        self.depth = 0
        self.implicit = implicit

    def peek(self):
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take_op(self, value: str) -> None:
        if self.peek() != ("op", value):
            raise ParseError(f"expected {value}")
        self.index += 1

    def parse(self):
        if not self.tokens:
            raise ParseError("empty")
        value = self.expression()
        if self.peek() is not None:
            raise ParseError("trailing input")
        return value

    def expression(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise TooLarge("nesting")
        value = self.xor_term() if not self.implicit else self.sum()
        self.depth -= 1
        return value

    def xor_term(self):
        # Python precedence: "^" (XOR) binds more loosely than + and -
        value = self.sum()
        while self.peek() == ("op", "^"):
            self.index += 1
            right = self.sum()
            if not (isinstance(value, self.sympy.Integer) and isinstance(right, self.sympy.Integer)):
                raise ParseError("xor of non-integers")
            value = self.sympy.Integer(int(value) ^ int(right))
        return value

    def sum(self):
        value = self.term()
        while self.peek() in (("op", "+"), ("op", "-")):
            operator = self.peek()[1]
            self.index += 1
            right = self.term()
            value = value + right if operator == "+" else value - right
        return value

    def _starts_atom(self, token) -> bool:
        return token is not None and (token[0] in ("num", "name") or token == ("op", "("))

    def term(self):
        value = self.unary()
        while True:
            token = self.peek()
            if token == ("op", "*"):
                self.index += 1
                value = value * self.unary()
            elif token == ("op", "/"):
                self.index += 1
                divisor = self.unary()
                value = value / divisor
            elif self.implicit and self._starts_atom(token):
                value = value * self.power()
            else:
                return value

    def unary(self):
        token = self.peek()
        if token in (("op", "-"), ("op", "+")):
            self.index += 1
            value = self.unary()
            return -value if token[1] == "-" else value
        return self.power()

    def power(self):
        base = self.atom()
        if self.peek() == ("op", "**"):
            self.index += 1
            exponent = self.unary()  # right-associative, binds tighter than unary minus on the left
            return self._pow(base, exponent)
        return base

    def _pow(self, base, exponent):
        sympy = self.sympy
        if exponent.is_Number and base.is_Number:
            if abs(exponent) > MAX_EXPONENT and abs(base) not in (0, 1):
                raise TooLarge("power")
            if exponent.is_Integer and base.is_Rational and base not in (0, 1, -1):
                size = max(abs(base.p), base.q).bit_length()
                if size * abs(int(exponent)) > MAX_BITS:
                    raise TooLarge("power")
        elif exponent.is_Number and abs(exponent) > MAX_EXPONENT:
            raise TooLarge("power")
        return sympy.Pow(base, exponent)

    def atom(self):
        sympy = self.sympy
        token = self.peek()
        if token is None:
            raise ParseError("unexpected end")
        kind, value = token
        self.index += 1
        if kind == "num":
            if any(c in value for c in ".eE"):
                return sympy.Float(value)
            return sympy.Integer(int(value))
        if kind == "op" and value == "(":
            inner = self.expression()
            if self.peek() == ("op", ","):
                raise ParseError("tuple")
            self.take_op(")")
            return inner
        if kind == "name":
            return self.name(value)
        raise ParseError(value)

    def name(self, value: str):
        sympy = self.sympy
        if value in _FUNCTIONS:
            function = {"sqrt": sympy.sqrt, "exp": sympy.exp, "log": sympy.log, "ln": sympy.log,
                        "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan}[value]
            if self.peek() == ("op", "("):
                self.index += 1
                argument = self.expression()
                self.take_op(")")
                return function(argument)
            if self.implicit and self._starts_atom(self.peek()):
                return function(self.power())  # "sqrt 2" (implicit application)
            raise ParseError("bare function")
        constants = {"pi": sympy.pi, "oo": sympy.oo}
        if not self.implicit:
            constants.update({"E": sympy.E, "I": sympy.I})
        if value in constants:
            return constants[value]
        if not self.implicit:
            if self.peek() == ("op", "("):
                raise ParseError("undefined function")
            return sympy.Symbol(value)
        # implicit mode splits unknown names: "xy" -> x*y, "pi2" -> p*i*2
        product = sympy.Integer(1)
        for piece in re.findall(r"\d+|[A-Za-z_]", value):
            product = product * (sympy.Integer(int(piece)) if piece.isdigit()
                                 else sympy.Symbol(piece))
        return product


def to_sympy(text: str, implicit: bool):
    """Build the SymPy expression ``parse_expr`` would build for ``text``, without eval.

    ``implicit=True`` mirrors ``standard_transformations + implicit_multiplication_application``
    (after the caller replaced ``^`` by ``**``); ``implicit=False`` mirrors the standard
    transformations only. Raises :class:`ParseError` outside the grammar, :class:`TooLarge`
    for powers too big to build.

    >>> to_sympy("2sqrt(2)", implicit=True)
    2*sqrt(2)
    >>> to_sympy("2^3", implicit=False)  # Python's XOR, as parse_expr does
    1
    """
    if len(text) > 5 * MAX_INPUT:
        raise ParseError("too long")
    return _SympyBuilder(_text_tokens(text), implicit).parse()
