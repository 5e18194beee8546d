"""Locked configs: dataclasses filled from YAML and `key=value` overrides (robomimic style).

A config is a tree of dataclasses. Every value that reaches it is checked against the
declared field: an unknown key is an error that names it (so a typo never silently makes a
new knob that nothing reads), and a value of the wrong type is an error naming the key and
the type it needs. The resolved config is written next to the run as plain YAML, and the
same functions read it back on `--resume` and in `load_run`.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config file or override that does not fit the config's declared fields."""


def to_dict(config: Any) -> Any:
    """Dataclass tree -> plain dicts/lists/scalars (YAML- and weights_only-safe)."""
    if dataclasses.is_dataclass(config):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, (list, tuple)):
        return [to_dict(v) for v in config]
    if isinstance(config, dict):
        return {k: to_dict(v) for k, v in config.items()}
    return config


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check one value against a field's type hint; convert only where lossless (int -> float, list -> tuple)."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping of {hint.__name__} fields, got {value!r}")
        return from_dict(hint, value, where)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        hint = next(a for a in options if a is not type(None))
        return _coerce(value, hint, where)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):
            value = _yaml11_exponent(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _yaml11_exponent(text: str) -> float | str:
    """'1e-4' -> 0.0001; anything else unchanged.

    PyYAML reads YAML 1.1, where a float needs a dot: `lr: 1e-4` (or `--set lr=1e-4`, the way
    everyone writes a learning rate) loads as the string '1e-4'. A float field takes it as
    the number it spells; other strings still fail with the field's name.
    """
    try:
        return float(text) if any(c.isdigit() for c in text) else text
    except ValueError:
        return text


def from_dict(cls: type, values: dict, where: str = "config", base: Any = None) -> Any:
    """Build `cls` from `values` on top of `base` (or the defaults); unknown keys are errors."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys: {sorted(names)}")
    base = base if base is not None else cls()
    changes = {}
    for key, value in values.items():
        current = getattr(base, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            changes[key] = from_dict(type(current), value, f"{where}.{key}", base=current)
        else:
            changes[key] = _coerce(value, hints[key], f"{where}.{key}")
    return dataclasses.replace(base, **changes)


def parse_override(text: str) -> dict:
    """'a.b=value' -> {'a': {'b': value}}, the value parsed as YAML (numbers, true/false, lists)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r}: expected key=value, e.g. am.gamma=0.95")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML: {exc}") from exc
    tree: dict = {}
    node = tree
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return tree


def merge(a: dict, b: dict) -> dict:
    """Recursive dict merge, b wins."""
    out = dict(a)
    for key, value in b.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_yaml(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level, got {type(data).__name__}")
    return data


def save_yaml(config: Any, path: str | os.PathLike) -> Path:
    """Write the resolved config atomically (tmp + rename): a killed run never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    os.replace(tmp, path)
    return path
