"""YAML as exprssl reads it (config files, ``--set`` values, a model card's metadata): the safe
loader, with aliases bounded. PyYAML shares an aliased node instead of copying it, so nine
levels of nine aliases load in microseconds, but whatever walks the result (a validator, a
message, a JSON dump) meets 9**9 values and runs out of memory: the loader counts the values
the document expands to and refuses it beyond ``MAX_VALUES``, and refuses a document that
contains itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .options import option_error

MAX_VALUES = 100_000  # values a document may expand to; a real config has a few hundred


class YAMLTooLarge(yaml.YAMLError):
    """A document whose aliases expand beyond ``MAX_VALUES`` values, or refer to themselves."""


def _expanded_size(root: yaml.Node) -> int:
    """Values ``root`` expands to, each aliased node counted at every use (memoised, so a bomb
    costs its node count); stops early beyond ``MAX_VALUES``."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise YAMLTooLarge("an alias refers to the value that contains it (a cycle)")
        open_nodes.add(key)
        children: list = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_VALUES:
                raise YAMLTooLarge(
                    f"its aliases expand to more than {MAX_VALUES:,} values (an alias bomb?); "
                    "write the values out, or use fewer aliases"
                )
        open_nodes.discard(key)
        sizes[key] = total
        return total

    return size(root)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load(text)``, refusing (``YAMLTooLarge``, a ``yaml.YAMLError``) a document
    that expands beyond ``MAX_VALUES`` values or contains itself, or nests too deeply."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node)
        return loader.construct_document(node)
    except RecursionError:
        raise YAMLTooLarge("nested too deeply") from None
    finally:
        loader.dispose()


def read_config(path: Path | None) -> dict:
    """A ``--config`` file as option: value (``-`` in names read as ``_``); one ``ConfigError``
    line for a file that is not a UTF-8 YAML mapping."""
    if path is None:
        return {}
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory; --config takes a YAML file")
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    if not path.is_file():
        raise ConfigError(
            f"{path}: not a regular file (a pipe or device); --config takes a YAML file"
        )
    try:
        cfg = load_yaml(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path}: not UTF-8 text (invalid byte 0x{e.object[e.start]:02x} at offset {e.start}); "
            "save the YAML file as UTF-8"
        ) from None
    except YAMLTooLarge as e:
        raise ConfigError(f"{path}: refused: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(
            f"{path}: not valid YAML ({e.__class__.__name__}: {' '.join(str(e).split())})"
        ) from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: expected a mapping of option: value at the top level")
    return {str(k).replace("-", "_"): v for k, v in cfg.items()}


def parse_set_value(key: str, value: str) -> Any:
    """A ``--set key=value`` value read as a YAML scalar or list (0.3, true, [512, 256])."""
    try:
        return load_yaml(value)
    except yaml.YAMLError as e:
        raise ConfigError(
            f"--set {key}: '{value}' is not a YAML value ({' '.join(str(e).split())})"
        ) from None


def check_single_values(cfg: dict, keys: tuple[str, ...], where: str) -> None:
    """Each of ``keys`` present in ``cfg`` (a path, a method's name) is one string, not a list,
    a mapping or a number YAML read (``out: 2024``): the options validator's message."""
    for key in keys:
        value = cfg.get(key)
        if value is not None and not isinstance(value, str):
            hint = " (quote it in YAML: '...')" if isinstance(value, (int, float)) else ""
            raise option_error(where, key, f"a single name or path{hint}", value)


def check_mapping(value: Any, key: str, where: str) -> dict:
    """A mapping option (``method_params``, ``preprocessing``), or the validator's message."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise option_error(where, key, "a mapping of option: value", value)
    return dict(value)
