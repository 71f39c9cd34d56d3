"""Command-line flags of an options class's fields, declared once.

A command lists each field's flag spelling and type (``FLAGS = {"epochs": Flag(int), ...}``);
everything else a user reads in ``--help`` (the meaning, the default, the allowed values) is
taken from the field's ``option()`` declaration when the help is shown, so `exprssl benchmark`
and ``BenchmarkConfig`` (or `exprssl pretrain` and ``TrainConfig``) cannot drift apart. The
options class is imported only then (or when the command runs): `exprssl --version` does not
import torch.

``field_flags(cls_path, FLAGS)`` turns a command function taking ``given`` (the fields whose
flags were given, values converted) into one typer sees with a parameter per flag;
``FieldFlagsCommand`` is the click command class that fills in the help.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import re
import typing
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperCommand

from .errors import ConfigError

FLAG_TYPES = (int, float, str, bool, list[str], list[float], dict)


@dataclasses.dataclass(frozen=True)
class Flag:
    """How a field is spelled on the command line.

    ``type`` is the field's (``dict`` for any mapping, ``str`` for a union such as ``devices``);
    ``names`` default to ``--field-name``; a bool's ``off`` to ``--no-field-name``. A list is
    comma-separated unless ``repeat`` (the flag given once per value); a mapping is YAML flow
    text (``--split "{train: 0.75, test: 0.25}"``). ``required``: needed on the command line or
    in ``--config`` (shown as ``[required]`` instead of the field's placeholder default).
    """

    type: Any
    names: tuple[str, ...] = ()
    off: str | None = None
    repeat: bool = False
    required: bool = False

    def __init__(self, type, *names, off=None, repeat=False, required=False):  # noqa: A002
        if type not in FLAG_TYPES:
            raise TypeError(f"Flag type must be one of {FLAG_TYPES}, got {type}")
        for name, value in zip(
            ("type", "names", "off", "repeat", "required"),
            (type, names, off, repeat, required),
            strict=True,
        ):
            object.__setattr__(self, name, value)

    def spellings(self, field: str) -> tuple[str, ...]:
        """The flag's names, long first: ``('--epochs',)``, ``('--data', '-d')``."""
        return self.names or ("--" + field.replace("_", "-"),)

    def off_name(self, field: str) -> str:
        return self.off or "--no-" + self.spellings(field)[0].removeprefix("--")

    def annotation(self, field: str, panel: str | None = None) -> Any:
        """The parameter typer builds the click option from (every default None: a flag not
        given leaves the value of ``--config`` or the options class alone)."""
        names = self.spellings(field)
        if self.type is bool:
            decls, kind = (f"{names[0]}/{self.off_name(field)}", *names[1:]), bool
        else:
            decls = names
            kind = list[str] if self.repeat else self.type if self.type in (int, float) else str
        metavar = (
            "YAML"
            if self.type is dict
            else "<str>"
            if self.repeat
            else "A,B,..."
            if typing.get_origin(self.type) is list
            else None
        )
        return Annotated[
            kind | None,
            typer.Option(*decls, show_default=False, metavar=metavar, rich_help_panel=panel),
        ]

    def convert(self, value: Any, field: str) -> Any:
        """The typed value of a given flag (the options class checks it next)."""
        if self.type is dict:
            import yaml

            try:
                return yaml.safe_load(value)
            except yaml.YAMLError as e:
                raise ConfigError(
                    f"{self.spellings(field)[0]}: not valid YAML ({' '.join(str(e).split())})"
                ) from None
        if typing.get_origin(self.type) is list and not self.repeat:
            return comma_list(value, typing.get_args(self.type)[0])
        return value


def comma_list(value: str, cast: Callable[[str], Any] = str) -> list:
    """``'0.1,0.5'`` -> ``[0.1, 0.5]``; one line naming what could not be read."""
    try:
        values = [cast(v.strip()) for v in value.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(
            f"could not parse '{value}' as a comma-separated list of numbers"
        ) from None
    if not values:
        raise ConfigError(
            f"'{value}' lists nothing; give comma-separated values, or leave the option out"
        )
    return values


def field_flags(
    options_class: str, flags: dict[str, Flag], panel: str | None = None, own_first: bool = False
):
    """Decorator: a command function ``fn(given, **own)`` becomes one with a keyword parameter
    per entry of ``flags`` after its own; ``given`` receives the fields whose flags were given.

    ``options_class`` is ``"module:Class"``, imported only to show help or check the flags;
    ``panel`` groups the generated flags under their own heading of ``--help``; they are listed
    before the function's own parameters unless ``own_first``.
    """

    def deco(fn):
        hints = typing.get_type_hints(fn, include_extras=True)
        own = [
            p.replace(annotation=hints[p.name], kind=inspect.Parameter.KEYWORD_ONLY)
            for p in inspect.signature(fn).parameters.values()
            if p.name != "given"
        ]
        clash = {p.name for p in own} & set(flags)
        if clash:
            raise TypeError(f"{fn.__name__}: parameters {clash} are also option fields")
        generated = [
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=f.annotation(name, panel),
                default=None,
            )
            for name, f in flags.items()
        ]

        @functools.wraps(fn)
        def command(**kwargs):
            given = {}
            for name, f in flags.items():
                value = kwargs.pop(name)
                if value is not None and value != []:
                    given[name] = f.convert(value, name)
            return fn(given=given, **kwargs)

        params = [*own, *generated] if own_first else [*generated, *own]
        command.__signature__ = inspect.Signature(params)
        command.__annotations__ = {p.name: p.annotation for p in params}
        command.field_flags = (options_class, flags)
        return command

    return deco


def options_class(path: str) -> type:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


# ------------------------------------------------------------------------------ help text
_STATED_DEFAULT = re.compile(
    r"\s*\((?:default|null):? ([^()]*)\)|; (?:default|null):? ([^()]*)(?=\))"
)


def stated_default(help: str) -> tuple[str, str | None]:
    """``('learning rate', "the method's own")`` from ``"learning rate (default: the method's
    own)"``: the meaning of a None default a help text states, ``(null: ...)`` too, and the
    text without it; ``(help, None)`` when it states none."""
    found = _STATED_DEFAULT.search(help)
    if found is None:
        return help, None
    return _STATED_DEFAULT.sub("", help, count=1), (found.group(1) or found.group(2)).strip()


def default_text(field: Any, flag: Flag, name: str) -> str:
    """What ``[default: ...]`` says: the value, the flag in effect for a bool, or the meaning of
    None the field's help states (``(null: one per core)``)."""
    value = field.default
    if value is None:
        return stated_default(field.spec.help)[1] or "none"
    if isinstance(value, bool):
        return flag.spellings(name)[0] if value else flag.off_name(name)
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) if value else "none"
    if isinstance(value, dict):
        import yaml

        return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def help_text(field: Any, flag: Flag, name: str) -> str:
    """The option's line of ``--help``, as rich markup: the field's help, its allowed values,
    then ``[default: ...]`` or ``[required]``."""
    meaning = stated_default(field.spec.help)[0] if field.default is None else field.spec.help
    choices = field.spec.allowed_choices() or ()
    requirement = field.requirement()
    if len(choices) > 6:  # Lightning's 29 strategies: the first few; `exprssl options` has all
        shown = ", ".join(repr(c) for c in choices[:4])
        requirement = f"one of {shown}, ... ({len(choices)} names; see `exprssl options`)"
    if field.type in (bool, str) and not choices:
        requirement = ""  # 'true or false', 'a string': the flag's form says it
    if requirement == "a valid value" or (
        field.spec.parse is not None and not (choices or field.spec.bounds_text())
    ):
        requirement = ""  # a custom parser's words come with its message
    if flag.repeat:
        requirement = "repeatable"
    marker = "[required]" if flag.required else f"[default: {default_text(field, flag, name)}]"
    return escape(f"{meaning}{'; ' + requirement if requirement else ''} {marker}")


class FieldFlagsCommand(TyperCommand):
    """A typer command whose generated flags take their help from the options class when the
    parameters are first needed (help, parsing), not when the CLI is imported."""

    _filled = False

    def get_params(self, ctx):
        params = super().get_params(ctx)
        if not self._filled:
            self._filled = True
            spec = getattr(self.callback, "field_flags", None)
            if spec is not None:
                from .options import option_fields

                path, flags = spec
                fields = {f.name: f for f in option_fields(options_class(path))}
                for p in params:
                    if p.name in flags:
                        p.help = help_text(fields[p.name], flags[p.name], p.name)
        return params
