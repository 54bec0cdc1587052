"""Read one YAML file into a :class:`Config`, reporting every problem with its line.

The file is parsed once into a YAML node tree. The tree gives line numbers and
catches duplicate keys (which PyYAML would otherwise let the last one win);
the same tree is then constructed into plain data and validated by pydantic.
Each pydantic error ``loc`` is walked down the node tree to find its line.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ._schema import Config, Loc, cross_check

__all__ = [
    "ENVIRONMENT",
    "ConfigError",
    "YamlDocument",
    "load_config",
    "load_yaml_document",
    "load_yaml_model",
]

_M = TypeVar("_M", bound=BaseModel)


class ConfigError(Exception):
    """The configuration cannot be used; ``str()`` is one ``file:line: key: problem`` per line."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


# Environment variables that override a key of the file (_env_value reads
# their text). Empty variables are ignored, as if unset.
ENVIRONMENT: dict[str, Loc] = {
    "ACD_SIP_LISTEN": ("sip", "listen"),
    "ACD_SIP_PORT": ("sip", "port"),
    "ACD_HTTP_LISTEN": ("http", "listen"),
    "ACD_HTTP_PORT": ("http", "port"),
    "ACD_DATA_DIR": ("data_dir",),
    "ACD_VARIABLES": ("variables",),
    "ACD_RTP_PORTS": ("media", "rtp_ports"),
    "ACD_PASSWORD_HASH_COST": ("security", "password_hash_cost"),
    "ACD_METRICS_TOKEN": ("http", "auth", "metrics_token"),
    # A container or compose stack passes these rather than mounting a file.
    "ACD_STORAGE_URL": ("storage", "url"),
    "ACD_ADVERTISED_ADDRESS": ("sip", "advertised_address"),
}
# Their values may hold a password or token: an error names them, never echoes them.
SECRET_ENVIRONMENT = frozenset({"ACD_METRICS_TOKEN", "ACD_STORAGE_URL"})


def _env_value(name: str, text: str) -> Any:
    if name == "ACD_SIP_LISTEN":
        return [part.strip() for part in text.split(",")]
    if name == "ACD_RTP_PORTS":
        # 20000-20199: the range a container publishes
        low, _, high = text.strip().partition("-")
        return [low.strip(), high.strip()] if high else [low.strip()]
    if name == "ACD_VARIABLES":
        # name=value,name=value; an item without "=" keeps its text as the name, so
        # the schema names it as a bad variable name rather than it being dropped.
        pairs = (part.partition("=") for part in text.split(",") if part.strip())
        return {key.strip(): value.strip() for key, _, value in pairs}
    if name == "ACD_DATA_DIR":
        # A path given in the environment comes from the shell, so it is taken
        # relative to the working directory, not to the config file.
        path = Path(text).expanduser()
        return str(path if path.is_absolute() else Path.cwd() / path)
    return text.strip()


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps dial strings such as 0800 or 12:30 as text.

    YAML 1.1 reads a leading zero as octal and digits with colons as base 60,
    which would silently turn a number like 0100 into 64.
    """


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int | str:
    text = loader.construct_scalar(node)
    digits = text.lstrip("+-").replace("_", "")
    if ":" in text or (len(digits) > 1 and digits.startswith("0") and digits.isdigit()):
        return text
    return loader.construct_yaml_int(node)


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Load and validate the YAML file at ``path``; raise ConfigError listing all problems.

    ``env`` (default ``os.environ``) supplies the overrides in ``ENVIRONMENT``.
    """
    env = os.environ if env is None else env
    return _load(Path(path), Config, None, cross_check, env).model


def load_yaml_model(
    path: str | Path,
    model_cls: type[_M],
    *,
    context: Mapping[str, Any] | None = None,
    check: Callable[[_M], Iterable[tuple[Loc, str]]] | None = None,
) -> _M:
    """Load one YAML file into ``model_cls`` the way ``load_config`` loads a Config.

    Every problem (YAML syntax, duplicate key, pydantic error, and each
    ``(key path, message)`` that ``check`` returns for the valid model) is
    raised together as one ConfigError of ``file:line: key: message`` lines.
    ``context`` is pydantic's validation context; it defaults to
    ``{"base_dir": <the file's directory>}``.
    """
    return load_yaml_document(path, model_cls, context=context, check=check).model


def load_yaml_document(
    path: str | Path,
    model_cls: type[_M],
    *,
    context: Mapping[str, Any] | None = None,
    check: Callable[[_M], Iterable[tuple[Loc, str]]] | None = None,
) -> YamlDocument[_M]:
    """As :func:`load_yaml_model`, keeping the node tree so later findings can name lines."""
    return _load(Path(path), model_cls, context, check, None)


@dataclass(frozen=True)
class YamlDocument(Generic[_M]):
    """A validated model with the YAML tree it came from, to report later findings by line."""

    model: _M
    path: Path
    root: Node | None = field(repr=False)

    def where(self, loc: Loc) -> str:
        """``file:line: key`` for a key path of the model, e.g. ``f.yaml:7: nodes.menu``."""
        line, parts = _locate(self.root, loc, missing=True)
        where = _format_path(parts)
        return f"{self.path}:{line}: {where}" if where else f"{self.path}:{line}"


def _load(
    path: Path,
    model_cls: type[_M],
    context: Mapping[str, Any] | None,
    check: Callable[[_M], Iterable[tuple[Loc, str]]] | None,
    env: Mapping[str, str] | None,
) -> YamlDocument[_M]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None

    root, data, problems = _parse(text, path)
    # Only the engine's own file takes environment overrides.
    overrides = _apply_environment(data, env) if env is not None else {}
    env = env or {}
    if context is None:
        context = {"base_dir": path.absolute().parent}
    try:
        model = model_cls.model_validate(data, context=dict(context))
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error["loc"])
            message = _message(model_cls, error["type"], error["msg"], loc, error["input"])
            # The tag of a discriminated union is pydantic's label, not a key in
            # the file, yet it may look like one: a `type: queue` node has a
            # `queue` key. The schema knows which parts are tags.
            loc, _ = _walk_schema(model_cls, loc)
            problems.append(_report(path, root, loc, message, error["type"], overrides, env))
    else:
        for loc, message in check(model) if check is not None else ():
            problems.append(_report(path, root, loc, message, "", overrides, env))
    if problems:
        raise ConfigError(_unique_lines(sorted(problems, key=lambda p: p[0])))
    return YamlDocument(model, path, root)


def _parse(text: str, path: Path) -> tuple[Node | None, Any, list[tuple[int, str]]]:
    """The node tree, the plain data built from it, and its duplicate keys."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        # Before construction: constructing flattens merge keys into the tree.
        duplicates = _duplicate_keys(root, path)
        data = {} if root is None else loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError([f"{line}: YAML syntax error: {exc.problem or exc.context}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: YAML error: {exc}"]) from None
    finally:
        loader.dispose()
    return root, data, duplicates


def _duplicate_keys(root: Node | None, path: Path) -> list[tuple[int, str]]:
    """Keys given twice in one mapping, which PyYAML resolves silently (last wins)."""
    problems: list[tuple[int, str]] = []
    seen_nodes: set[int] = set()

    def walk(node: Node, parts: list[str | int]) -> None:
        if id(node) in seen_nodes:  # aliases can share, or even nest, nodes
            return
        seen_nodes.add(id(node))
        if isinstance(node, MappingNode):
            first_line: dict[str, int] = {}
            for key_node, value_node in node.value:
                key = str(key_node.value) if isinstance(key_node, ScalarNode) else "?"
                line = key_node.start_mark.line + 1
                # A merge key may repeat: each one merges another mapping.
                if key in first_line and key != "<<":
                    where = _format_path([*parts, key])
                    message = f"duplicate key (first on line {first_line[key]})"
                    problems.append((line, f"{path}:{line}: {where}: {message}"))
                first_line.setdefault(key, line)
                walk(value_node, [*parts, key])
        elif isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, [*parts, index])

    if root is not None:
        walk(root, [])
    return problems


def _apply_environment(data: Any, env: Mapping[str, str]) -> dict[Loc, str]:
    """Write overrides into ``data``; return which key paths came from which variable."""
    overrides: dict[Loc, str] = {}
    for name, loc in ENVIRONMENT.items():
        text = env.get(name, "")
        if not text.strip():
            continue
        target = data
        for part in loc[:-1]:
            if not isinstance(target, dict):
                break
            if target.get(part) is None:  # absent, or `sip:` with nothing under it
                target[part] = {}
            target = target[part]
        # A section that is not a mapping gets its own error; the override waits.
        if isinstance(target, dict):
            value = _env_value(name, text)
            existing = target.get(loc[-1])
            if isinstance(value, dict) and isinstance(existing, dict):
                value = {**existing, **value}  # adds to the file's, name by name
            target[loc[-1]] = value
            overrides[loc] = name
    return overrides


def _report(
    path: Path,
    root: Node | None,
    loc: Loc,
    message: str,
    error_type: str,
    overrides: Mapping[Loc, str],
    env: Mapping[str, str],
) -> tuple[int, str]:
    for prefix, name in overrides.items():
        if loc[: len(prefix)] == prefix:
            shown = "(not shown)" if name in SECRET_ENVIRONMENT else repr(env[name])
            return 0, f"{name}={shown}: {_format_path(list(prefix))}: {message}"
    line, parts = _locate(root, loc, missing=error_type == "missing")
    where = _format_path(parts)
    return line, f"{path}:{line}: {where}: {message}" if where else f"{path}:{line}: {message}"


def _locate(root: Node | None, loc: Loc, *, missing: bool) -> tuple[int, list[str | int]]:
    """Line and key path in the file for a pydantic error location.

    Parts of ``loc`` that are not in the tree are pydantic's own labels (such
    as the member of a union that failed) and are skipped, except a missing
    key, which is reported on the line of the mapping that lacks it.
    """
    node = root
    line = 1 if root is None else root.start_mark.line + 1
    parts: list[str | int] = []
    for index, part in enumerate(loc):
        if isinstance(node, MappingNode):
            # Last first: with a repeated key the last one is the value in effect.
            for key_node, value_node in reversed(node.value):
                if isinstance(key_node, ScalarNode) and key_node.value == str(part):
                    # The key as written: pydantic gives `options: {12: x}` as int 12.
                    parts.append(str(key_node.value))
                    line = key_node.start_mark.line + 1
                    node = value_node
                    break
            else:
                if missing and index == len(loc) - 1:
                    parts.append(part)
        elif isinstance(node, SequenceNode) and isinstance(part, int) and part < len(node.value):
            parts.append(part)
            node = node.value[part]
            line = node.start_mark.line + 1
    return line, parts


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _format_path(parts: Sequence[str | int]) -> str:
    """``agents[3].password`` style; odd keys are quoted: ``queues["a b"]``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out


# Pydantic names Python types; an operator editing YAML thinks in mappings and lists.
_SHAPES = {
    "model_type": "a mapping of keys",
    "dict_type": "a mapping of keys",
    "tuple_type": "a list",
    "list_type": "a list",
}


def _message(
    model_cls: type[BaseModel], error_type: str, message: str, loc: Loc, value: Any
) -> str:
    if error_type in _SHAPES:
        got = "nothing" if value is None else type(value).__name__
        return f"expected {_SHAPES[error_type]}, got {got}"
    if error_type == "extra_forbidden":
        known = _field_names(model_cls, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f" (known keys: {', '.join(known)})"
        return f"unknown key{hint}"
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


def _field_names(model_cls: type[BaseModel], loc: Loc) -> list[str]:
    """The keys the schema allows at ``loc``, found by walking the model annotations."""
    _, annotation = _walk_schema(model_cls, loc)
    annotation = _unwrap(annotation)
    return list(annotation.model_fields) if _is_model(annotation) else []


def _walk_schema(model_cls: type[BaseModel], loc: Loc) -> tuple[Loc, Any]:
    """``loc`` without discriminated-union tags, and the annotation it leads to.

    Where the walk loses the schema (a pydantic label it does not know), the
    rest of ``loc`` is kept as it is and the annotation is None.
    """
    annotation: Any = model_cls
    kept: list[str | int] = []
    for index, part in enumerate(loc):
        annotation = _unwrap(annotation)
        origin = get_origin(annotation)
        if origin in (Union, types.UnionType):
            member = _tagged_member(annotation, part)
            if member is None:
                return (*kept, *loc[index:]), None
            annotation = member
            continue
        kept.append(part)
        if _is_model(annotation) and isinstance(part, str) and part in annotation.model_fields:
            annotation = annotation.model_fields[part].annotation
        elif origin in (tuple, list) and isinstance(part, int):
            annotation = get_args(annotation)[0]
        elif origin is dict:
            annotation = get_args(annotation)[1]
        else:
            return (*kept, *loc[index + 1 :]), None
    return tuple(kept), annotation


def _tagged_member(union: Any, tag: str | int) -> Any:
    """The model in ``union`` that has a ``Literal`` field allowing ``tag``, if any."""
    for member in get_args(union):
        model = _unwrap(member)
        if not _is_model(model):
            continue
        for info in model.model_fields.values():
            if get_origin(info.annotation) is Literal and tag in get_args(info.annotation):
                return model
    return None


def _unwrap(annotation: Any) -> Any:
    """``X`` from ``Annotated[X, ...]`` and from ``X | None``."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _unique_lines(problems: list[tuple[int, str]]) -> list[str]:
    return list(dict.fromkeys(text for _, text in problems))
