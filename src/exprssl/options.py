"""Typed options: one dataclass field per option, with its default, a one-line meaning and its
allowed values, checked in one place with one message format.

The one validator of the package: every method's options dataclass, ``TrainConfig``
(``exprssl.training``), the fine-tuning ``HeadRecipe`` (``exprssl.evaluation.heads``), the
``Preprocessor``'s options (``exprssl.preprocessing.PreprocessingOptions``) and
``BenchmarkConfig`` (``exprssl.evaluation.config``) declare their fields with ``option()``, so
the CLI, YAML configs and Python all get the same one-line ``ConfigError``::

    scarf: temperature must be a finite number > 0, got 0
    training: epochs must be an integer >= 1, got 'abc'

``{where}: {name} must be {requirement}, got {value!r}`` is the format (``option_error``).
A class declared with ``@options_class("where")`` is listed by ``options_classes()`` (``exprssl
options`` prints them; the test suite walks them all). This module imports nothing of the
package but ``errors``.

Values are coerced where the meaning is unambiguous: an int where a float is expected, an
integral float where an int is expected, and numeric strings (YAML 1.1 reads ``lr: 1e-3`` as the
string '1e-3'). Booleans are never numbers, and a float option must be finite.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import numbers
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .errors import ConfigError


class OptionValueError(ValueError):
    """Raised by a parser with the requirement the value failed (``"an integer"``), never shown
    alone."""


@dataclasses.dataclass(frozen=True)
class Spec:
    """Allowed values of one option: bounds (pydantic's gt/ge/lt/le), choices, or a custom
    parser."""

    help: str
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    choices: Sequence[Any] | Callable[[], Sequence[Any]] | None = None
    parse: Callable[[Any], Any] | None = None  # raw value -> normalised value, or OptionValueError
    note: str = (
        ""  # appended to the requirement: "one of 'auto', 'cpu' (available on this machine)"
    )

    def allowed_choices(self) -> tuple | None:
        if self.choices is None:
            return None
        return tuple(self.choices() if callable(self.choices) else self.choices)

    def bounds_text(self) -> str:
        """``'> 0'``, ``'>= 1'``, ``'in (0, 1)'``, ``'in [0, 1)'`` or ``''``."""
        low = (
            ("(", self.gt)
            if self.gt is not None
            else ("[", self.ge)
            if self.ge is not None
            else None
        )
        high = (
            (")", self.lt)
            if self.lt is not None
            else ("]", self.le)
            if self.le is not None
            else None
        )
        if low and high:
            return f"in {low[0]}{_number(low[1])}, {_number(high[1])}{high[0]}"
        if low:
            return f"{'>' if low[0] == '(' else '>='} {_number(low[1])}"
        if high:
            return f"{'<' if high[0] == ')' else '<='} {_number(high[1])}"
        return ""

    def in_bounds(self, v: float) -> bool:
        return (
            (self.gt is None or v > self.gt)
            and (self.ge is None or v >= self.ge)
            and (self.lt is None or v < self.lt)
            and (self.le is None or v <= self.le)
        )


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def option(
    default: Any, help: str, *, factory: Callable[[], Any] | None = None, **spec: Any
) -> Any:
    """A dataclass field: ``default`` (or ``factory()`` for each instance), a one-line ``help``
    and the ``Spec`` of allowed values."""
    metadata = {"spec": Spec(help=help, **spec)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


# ------------------------------------------------------------------------------ parsing by type
def _to_float(v: Any) -> float:
    if isinstance(v, str):
        try:
            v = float(v.strip())
        except ValueError:
            raise OptionValueError("a finite number") from None
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        raise OptionValueError("a finite number")
    return float(v)


def _to_int(v: Any) -> int:
    if isinstance(v, str):
        try:
            v = float(v.strip()) if any(c in v for c in ".eE") else int(v.strip())
        except ValueError:
            raise OptionValueError("an integer") from None
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise OptionValueError("an integer")
    if isinstance(v, numbers.Integral):
        return int(v)
    if not math.isfinite(v) or v != int(v):
        raise OptionValueError("an integer")
    return int(v)


def _to_bool(v: Any) -> bool:
    if isinstance(v, np.bool_):
        return bool(v)
    if not isinstance(v, bool):
        raise OptionValueError("true or false")
    return v


def _to_str(v: Any) -> str:
    if not isinstance(v, str):
        raise OptionValueError("a string")
    return v


def _to_int_list(v: Any) -> list[int]:
    if isinstance(v, (str, bytes)) or not isinstance(v, Sequence) or len(v) == 0:
        raise OptionValueError("a non-empty list of integers")
    try:
        return [_to_int(x) for x in v]
    except OptionValueError:
        raise OptionValueError("a non-empty list of integers") from None


# annotation -> (parser, name in listings, what a valid value is in messages)
_TYPES: dict[Any, tuple[Callable[[Any], Any], str, str]] = {
    float: (_to_float, "float", "a finite number"),
    int: (_to_int, "int", "an integer"),
    bool: (_to_bool, "bool", "true or false"),
    str: (_to_str, "str", "a string"),
    list[int]: (_to_int_list, "list[int]", "a non-empty list of integers"),
}


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """``float | None`` -> ``(float, True)``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


@dataclasses.dataclass(frozen=True)
class _Field:
    name: str
    type: Any
    optional: bool
    spec: Spec
    default: Any

    def requirement(self) -> str:
        """What a valid value is, in words: ``'a finite number in (0, 1)'``."""
        choices = self.spec.allowed_choices()
        if choices is not None:
            text = "one of " + ", ".join(repr(c) for c in choices)
        else:
            base = _TYPES[self.type][2] if self.type in _TYPES else "a valid value"
            bounds = self.spec.bounds_text()
            text = f"{base} {bounds}" if bounds else base
        return f"{text} ({self.spec.note})" if self.spec.note else text

    def type_name(self) -> str:
        name = (
            _TYPES[self.type][1] if self.type in _TYPES else str(self.type).replace("typing.", "")
        )
        return f"{name} | None" if self.optional else name

    def check(self, value: Any, where: str) -> Any:
        if value is None and self.optional:
            return None
        try:
            v = (self.spec.parse or _TYPES[self.type][0])(value)
        except OptionValueError as e:
            custom = self.spec.parse is not None and self.spec.choices is None
            req = str(e) if custom else self.requirement()
            raise option_error(where, self.name, req, value) from None
        items = v if isinstance(v, list) else [v]
        if any(
            isinstance(x, (int, float)) and not isinstance(x, bool) and not self.spec.in_bounds(x)
            for x in items
        ):
            raise option_error(where, self.name, self.requirement(), value)
        choices = self.spec.allowed_choices()
        if choices is not None and v not in choices:
            raise option_error(where, self.name, self.requirement(), value)
        return v


@functools.cache
def _fields(cls: type) -> tuple[_Field, ...]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        spec = f.metadata.get("spec")
        if spec is None:
            raise TypeError(
                f"{cls.__name__}.{f.name}: declare options with exprssl.options.option()"
            )
        tp, optional = _unwrap_optional(hints[f.name])
        if spec.parse is None and tp not in _TYPES:
            raise TypeError(f"{cls.__name__}.{f.name}: type {tp} needs a parse= function")
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        out.append(_Field(f.name, tp, optional, spec, default))
    return tuple(out)


def option_fields(cls: type) -> tuple[_Field, ...]:
    """The declared options of ``cls``, in order: name, type (``None`` unwrapped), whether None
    is allowed, the ``Spec`` and the default (a factory called); what the CLI builds its flags
    from."""
    return _fields(cls)


def option_error(where: str, name: str, requirement: str, value: Any) -> ConfigError:
    """The one message format for a bad option value: ``'{where}: {name} must be
    {requirement}, got {value!r}'`` (a check that is not per field, such as one option bounded
    by another, words its message the same way)."""
    return ConfigError(f"{where}: {name} must be {requirement}, got {value!r}")


_CLASSES: dict[type, str] = {}


def options_class(where: str):
    """Class decorator: record ``cls`` as an options dataclass whose messages start with
    ``where`` (``validate(cls_instance)`` then needs no ``where``)."""

    def deco(cls: type) -> type:
        cls.OPTIONS_WHERE = where
        _CLASSES[cls] = where
        return cls

    return deco


def options_classes() -> dict[type, str]:
    """Every options dataclass declared so far with ``@options_class``, with its prefix."""
    return dict(_CLASSES)


def check_instance(options: Any, where: str | None = None) -> Any:
    """Check and normalise the fields of an existing options instance in place (what a
    dataclass's ``validate()`` calls); returns it."""
    where = where or getattr(options, "OPTIONS_WHERE", type(options).__name__)
    for f in _fields(type(options)):
        object.__setattr__(options, f.name, f.check(getattr(options, f.name), where))
    return options


def aliases_of(cls: type) -> dict[str, str]:
    """Old option names still accepted (``{"mask_rate": "corruption_rate"}``), from
    ``cls.ALIASES``."""
    return dict(getattr(cls, "ALIASES", {}))


def validate_options(cls: type, params: dict[str, Any] | None, where: str) -> Any:
    """An instance of the options dataclass ``cls`` from ``params`` (defaults filled in, values
    coerced and checked).

    Parameters
    ----------
    cls
        A dataclass whose fields are declared with ``option()``.
    params
        Option name -> value (old names in ``cls.ALIASES`` accepted); None: every default.
    where
        Prefix of every message (the method's name, ``training``, ``benchmark``, ...).

    Returns
    -------
    An instance of ``cls``.

    Raises
    ------
    ConfigError
        One line naming an unknown option (with the accepted ones), a wrong type or an
        out-of-range value.
    """
    if params is not None and not isinstance(params, Mapping):
        raise ConfigError(f"{where}: options must be a mapping of name: value, got {params!r}")
    params = dict(params or {})
    for old, new in aliases_of(cls).items():
        if old in params:
            if new in params and params[new] != params[old]:
                raise ConfigError(f"{where}: give {new} or its old name {old}, not both")
            params[new] = params.pop(old)
    fields = {f.name: f for f in _fields(cls)}
    unknown = sorted(set(params) - set(fields), key=str)
    if unknown:
        hints = [m for u in unknown for m in difflib.get_close_matches(str(u), fields, n=1)]
        hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
        raise ConfigError(
            f"{where}: unknown option(s) {', '.join(map(str, unknown))}{hint}; "
            f"accepted: {', '.join(sorted(fields))}"
        )
    return cls(**{name: f.check(params.get(name, f.default), where) for name, f in fields.items()})


def options_dict(options: Any) -> dict[str, Any]:
    """The options as a plain JSON-able dict (what a saved model's config records)."""
    return dataclasses.asdict(options)


def describe(cls: type) -> list[dict[str, Any]]:
    """One row per option: name, type, default, allowed values and help (for ``exprssl options``
    and ``exprssl methods``)."""
    rows = []
    for f in _fields(cls):
        choices = f.spec.allowed_choices()
        allowed = ", ".join(map(str, choices)) if choices is not None else f.spec.bounds_text()
        rows.append(
            {
                "name": f.name,
                "type": f.type_name(),
                "default": f.default,
                "help": f.spec.help,
                "allowed": allowed,
            }
        )
    return rows
