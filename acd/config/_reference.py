"""docs/configuration.md, written from the schema itself: every key, its type, default and meaning.

The meaning is what the schema's source says: each section's docstring and
the comments beside or above each field (read with ``tokenize``), so the
schema stays the one place to write them and the reference cannot drift
(tests/test_config_reference.py compares the file with this output).
Regenerate with ``acd config-reference > docs/configuration.md``.
"""

from __future__ import annotations

import inspect
import io
import ipaddress
import json
import re
import tokenize
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from . import _schema
from ._loader import ENVIRONMENT
from ._schema import Config

__all__ = ["render_reference"]

_HEADER = """\
# Configuration reference

Generated from `acd/config/_schema.py` by `acd config-reference`; do not edit
by hand (tests/test_config_reference.py checks it matches). Every section and
key is optional unless its default says *required*; unknown keys are errors.
`config/example.yaml` shows a working file, and `acd check-config FILE`
validates one, naming the field of every error. Durations are seconds.
Environment variables override a few keys (an empty one is ignored):

"""


def _environment() -> str:
    """The table of environment overrides, from the loader's own list."""
    rows = ["| variable | key |", "|---|---|"]
    rows += [f"| `{name}` | `{'.'.join(map(str, loc))}` |" for name, loc in ENVIRONMENT.items()]
    return "\n".join(rows) + "\n"


def render_reference() -> str:
    """The whole reference as Markdown."""
    comments = _field_comments()
    out = [_HEADER + _environment()]
    top: list[tuple[str, FieldInfo]] = []
    for name, info in Config.model_fields.items():
        model, shape = _model_of(info.annotation)
        if model is None:
            top.append((name, info))
            continue
        out.append(_section(name, shape, model, comments))
    if top:
        rows = [_row(name, info, Config, comments, name) for name, info in top]
        out.append("## Top-level keys\n\n" + _table(rows))
    return "\n".join(out)


def _section(
    name: str,
    shape: str,
    model: type[BaseModel],
    comments: dict[tuple[str, str], str],
    depth: int = 2,
) -> str:
    """A section's heading, docstring and table; a key holding a section gets a row
    pointing at its own section, one heading level down, after this one."""
    key = {"list": f"{name}[]", "map": f"{name}.<name>"}.get(shape, name)
    heading = f"{'#' * depth} `{key}`\n"
    lines = [heading if depth == 2 else "\n" + heading]
    if depth == 2 and shape == "list":
        lines.append("A list; each item has these keys.\n")
    elif depth == 2 and shape == "map":
        lines.append("A map from a name to an entry with these keys.\n")
    doc = inspect.getdoc(model)
    if doc:
        lines.append(doc.strip() + "\n")
    rows: list[tuple[str, str, str, str]] = []
    nested: list[str] = []
    for field, info in model.model_fields.items():
        inner, inner_shape = _model_of(info.annotation)
        if inner is not None:
            nested.append(_section(f"{key}.{field}", inner_shape, inner, comments, depth + 1))
            meaning = _meaning(model, field, comments, f"{key}.{field}")
            rows.append((f"`{field}`", f"see `{key}.{field}`", _default(info), meaning))
            continue
        rows.append(_row(field, info, model, comments, f"{key}.{field}"))
    lines.append(_table(rows))
    return "\n".join(lines) + "".join(nested)


def _row(
    field: str,
    info: FieldInfo,
    model: type[BaseModel],
    comments: dict[tuple[str, str], str],
    key: str = "",
) -> tuple[str, str, str, str]:
    meaning = _meaning(model, field, comments, key or field)
    return (f"`{field}`", _type(info.annotation, info.metadata), _default(info), meaning)


def _table(rows: list[tuple[str, str, str, str]]) -> str:
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _meaning(
    model: type[BaseModel], field: str, comments: dict[tuple[str, str], str], key: str = ""
) -> str:
    for klass in model.__mro__:
        text = comments.get((klass.__name__, field))
        if text:
            return text
    return _example_comments().get(key, "")


_EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
_EXAMPLE_KEY = re.compile(r"^( *)(?:# )?([a-z_][a-z0-9_]*):(.*)$")


def _example_comments() -> dict[str, str]:
    """Key path -> the comment beside that key in config/example.yaml (commented-out
    keys count: they show an optional key)."""
    if not _EXAMPLE.is_file():
        return {}
    found: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in _EXAMPLE.read_text().splitlines():
        match = _EXAMPLE_KEY.match(line)
        if match is None:
            continue
        indent, name, rest = len(match[1]), match[2], match[3]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([*(part for _, part in stack), name])
        value, _, comment = rest.partition(" #")
        if comment.strip() and path not in found:
            found[path] = comment.strip()
        if not value.strip():
            stack.append((indent, name))
    return found


# -- models and types ----------------------------------------------------------------------


def _model_of(annotation: Any) -> tuple[type[BaseModel] | None, str]:
    """The section model a field holds, and how: "one", "list" or "map"."""
    annotation = _strip(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, "one"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        inner = _strip(args[0])
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner, "list"
    if origin is dict and len(args) == 2:
        inner = _strip(args[1])
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner, "map"
    return None, ""


def _strip(annotation: Any) -> Any:
    """Without Annotated and a None alternative."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if _is_union(annotation):
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return _strip(rest[0])
    return annotation


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


_NAMES: dict[Any, str] = {
    str: "text",
    int: "integer",
    float: "number",
    bool: "true/false",
    Path: "path",
    ipaddress.IPv4Address: "IPv4 address",
}


def _type(annotation: Any, metadata: list[Any] | tuple[Any, ...] = ()) -> str:
    constraints = _constraints(metadata)
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extra = typing.get_args(annotation)
        return _type(base, [*metadata, *extra])
    if _is_union(annotation):
        parts = [a for a in typing.get_args(annotation) if a is not type(None)]
        text = " or ".join(_type(part) for part in parts)
        optional = len(parts) < len(typing.get_args(annotation))
        return (text + constraints + (" or null" if optional else "")).strip()
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return " | ".join(f"`{value}`" for value in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {_type(args[0])}" + constraints
        return "[" + ", ".join(_type(a) for a in args) + "]" + constraints
    if origin is dict:
        return f"map of {_type(args[0])} to {_type(args[1])}" + constraints
    name = _NAMES.get(annotation)
    if name is None:
        raw = getattr(annotation, "__name__", str(annotation))
        name = {
            "IPvAnyAddress": "IP address",
            "IPvAnyNetwork": "IP network",
            "SecretStr": "secret text",
        }.get(raw, raw)
    return name + constraints


def _constraints(metadata: list[Any] | tuple[Any, ...]) -> str:
    bounds: list[str] = []
    flat: list[Any] = []
    for item in metadata:
        flat.extend(item.metadata if isinstance(item, FieldInfo) else [item])
    for item in flat:
        for kind, attribute, symbol in (
            (annotated_types.Ge, "ge", ">="),
            (annotated_types.Gt, "gt", ">"),
            (annotated_types.Le, "le", "<="),
            (annotated_types.Lt, "lt", "<"),
        ):
            if isinstance(item, kind):
                bounds.append(f"{symbol} {getattr(item, attribute)}")
        if isinstance(item, annotated_types.MinLen) and item.min_length > 0:
            bounds.append(f"at least {item.min_length}")
        if isinstance(item, annotated_types.MultipleOf):
            bounds.append(f"a multiple of {item.multiple_of}")
    return f" ({', '.join(bounds)})" if bounds else ""


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "*required*"
    factory = info.default_factory
    if factory is not None:
        if _model_of(info.annotation)[0] is not None:
            return "see below"
        if factory in (dict, list, tuple):
            return f"`{_yaml(factory())}`"
        return "(computed)"
    value = info.default
    if value is PydanticUndefined:
        return ""
    return f"`{_yaml(value)}`"


def _yaml(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_yaml(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, int | float):
        return json.dumps(value)
    return str(value)


# -- comments in the schema's source -----------------------------------------------------

_FIELD = re.compile(r"^    ([a-z_][a-z0-9_]*)\s*:")


def _field_comments() -> dict[tuple[str, str], str]:
    """(class name, field) -> the comment beside the field, or the lines just above it."""
    source = inspect.getsource(_schema)
    lines = source.splitlines()
    trailing: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            trailing[token.start[0]] = token.string.lstrip("#").strip()
    found: dict[tuple[str, str], str] = {}
    klass: str | None = None
    for number, line in enumerate(lines, start=1):
        if line.startswith("class "):
            klass = line.split()[1].split("(")[0].rstrip(":")
            continue
        match = _FIELD.match(line)
        if klass is None or match is None:
            continue
        above: list[str] = []
        previous = number - 1
        while previous >= 1 and lines[previous - 1].strip().startswith("#"):
            above.insert(0, trailing.get(previous, ""))
            previous -= 1
        beside = trailing.get(number) if not line.strip().startswith("#") else None
        text = " ".join(part for part in [*above, beside or ""] if part)
        found[(klass, match[1])] = text
    return found


def _iter_keys(model: type[BaseModel] = Config, prefix: str = "") -> Iterator[str]:
    """Every key path of the schema (``sip.timers.t1``, ``agents[].skills``)."""
    for name, info in model.model_fields.items():
        inner, shape = _model_of(info.annotation)
        key = f"{prefix}{name}"
        yield key
        if inner is not None:
            suffix = {"list": "[]", "map": ".<name>"}.get(shape, "")
            yield from _iter_keys(inner, f"{key}{suffix}.")
