"""Load a gateway TOML file into the validated config, or fail with located errors.

The agent never starts half-configured: every problem is collected, located
(file, line, key path, value) and given a hint, and reported in one screen.
"""

from __future__ import annotations

import difflib
import os
import tomllib
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from agent.config.errors import MISSING, ConfigError, ConfigIssue, CrossReferenceError
from agent.config.schema import gateway_model
from agent.config.toml_lines import TomlLines
from drivers import registry

_TAGS = ("driver", "type")


def load_config(path: str | os.PathLike[str]) -> Any:
    """Read, parse and validate a gateway config file. Raises ConfigError."""
    file = os.fspath(path)
    try:
        with open(file, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(file, None, "", MISSING, "file not found", "check the path; the example is config/gateway.example.toml")]) from None
    except IsADirectoryError:
        raise ConfigError([ConfigIssue(file, None, "", MISSING, "is a directory, not a config file", "name the .toml file itself")]) from None
    except PermissionError:
        raise ConfigError(
            [
                ConfigIssue(
                    file,
                    None,
                    "",
                    MISSING,
                    "cannot read the file: permission denied",
                    "run as the agent's user or fix the file's group (it should be readable by edge-agent)",
                )
            ]
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError([ConfigIssue(file, line, "", MISSING, "the file is not UTF-8 text", "save it as UTF-8")]) from None
    return load_config_text(text, file)


def load_config_text(text: str, file: str = "<config>") -> Any:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None) or _line_from_message(str(exc))
        raise ConfigError(
            [ConfigIssue(file, line, "", MISSING, f"not valid TOML: {exc}", "check quotes, brackets and `key = value` syntax on that line")]
        ) from None
    lines = TomlLines(text)
    try:
        return gateway_model().model_validate(raw)
    except ValidationError as exc:
        issues = _issues_from_validation(exc, raw, lines, file)
    raise ConfigError(issues)


def _line_from_message(message: str) -> int | None:
    marker = "line "
    if marker in message:
        digits = message.split(marker, 1)[1].split()[0].strip(",)")
        if digits.isdigit():
            return int(digits)
    return None


def _normalise_loc(loc: tuple[Any, ...], raw: Any) -> tuple[Any, ...]:
    """Drop the union tags and validator names pydantic adds to a location."""
    out: list[Any] = []
    node = raw
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str) and part not in node:
            if any(node.get(tag) == part for tag in _TAGS) or part.startswith("function-"):
                continue
        out.append(part)
        if isinstance(node, dict):
            node = node.get(part, MISSING)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = MISSING
    return tuple(out)


def _value_at(raw: Any, path: tuple[Any, ...]) -> Any:
    node = raw
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            return MISSING
    return node


def _unwrap(annotation: Any, raw: Any) -> Any:
    """From a field annotation to the model its value is validated by."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0], raw)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if isinstance(raw, dict):
            for member in members:
                if isinstance(member, type) and issubclass(member, BaseModel):
                    for tag in _TAGS:
                        field = member.model_fields.get(tag)
                        if field is not None and raw.get(tag) in typing.get_args(field.annotation):
                            return member
        return _unwrap(members[0], raw) if len(members) == 1 else None
    return annotation


def _model_at(path: tuple[Any, ...], raw: Any) -> type[BaseModel] | None:
    model: Any = gateway_model()
    node = raw
    for part in path:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else MISSING
            model = _unwrap(model, node)
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        node = node.get(part, MISSING) if isinstance(node, dict) else MISSING
        annotation = model.model_fields[part].annotation
        if typing.get_origin(annotation) is list:
            model = typing.get_args(annotation)[0]
        else:
            model = _unwrap(annotation, node)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else ""


def _format_path(path: tuple[Any, ...], raw: Any) -> str:
    text = ""
    for i, part in enumerate(path):
        if isinstance(part, int):
            text += f"[{part}]"
            entry = _value_at(raw, path[: i + 1])
            if isinstance(entry, dict) and isinstance(entry.get("name"), str) and i + 1 < len(path):
                text += f"({entry['name']})"
        else:
            text += ("." if text else "") + str(part)
    return text


def _issues_from_validation(exc: ValidationError, raw: Any, lines: TomlLines, file: str) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    for err in exc.errors(include_url=False):
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, CrossReferenceError):
            for loc, message in ctx_error.issues:
                line, _ = lines.line_of(loc)
                issues.append(ConfigIssue(file, line, _format_path(loc, raw), _value_at(raw, loc), message))
            continue
        loc = _normalise_loc(tuple(err["loc"]), raw)
        issues.append(_issue_for(err, loc, raw, lines, file))
    issues.sort(key=lambda i: i.line or 0)
    return issues


def _issue_for(err: Any, loc: tuple[Any, ...], raw: Any, lines: TomlLines, file: str) -> ConfigIssue:
    kind = err["type"]
    line, _ = lines.line_of(loc)
    value = _value_at(raw, loc)
    message = str(err["msg"]).removeprefix("Value error, ")
    hint = ""
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1], raw)
        allowed = sorted(model.model_fields) if model else []
        message = f"unknown key `{loc[-1]}`"
        hint = _did_you_mean(str(loc[-1]), allowed) or (f"allowed here: {', '.join(allowed)}" if allowed else "remove it")
    elif kind == "missing":
        message = f"required key `{loc[-1]}` is missing"
        model = _model_at(loc[:-1], raw)
        field = model.model_fields.get(str(loc[-1])) if model else None
        table = _format_path(loc[:-1], raw) or "the top level"
        hint = f"add `{loc[-1]} = ...` to {table}" + (f" ({field.description})" if field and field.description else "")
        if loc[-1] == "gateway":
            hint = "add a [gateway] table with id and site; see config/gateway.example.toml"
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        tag = (err.get("ctx") or {}).get("discriminator", "driver").strip("'")
        known = sorted(registry.DRIVERS if tag == "driver" else registry.BUSES)
        loc = loc + (tag,)
        line, _ = lines.line_of(loc)
        value = _value_at(raw, loc)
        if value is MISSING:
            message = f"`{tag}` is missing"
            hint = f"set {tag} = one of: {', '.join(known)}"
        else:
            message = f"unknown {tag} {value!r}"
            hint = _did_you_mean(str(value), known) or f"known: {', '.join(known)}"
    elif kind == "literal_error":
        expected = (err.get("ctx") or {}).get("expected", "")
        choices = [c.strip(" '") for c in expected.replace(" or ", ",").split(",") if c.strip(" '")]
        hint = _did_you_mean(str(value), choices) or f"one of: {', '.join(choices)}"
        message = f"unknown {loc[-1]}" if loc and loc[-1] in _TAGS else "not an allowed value"
    else:
        if isinstance(value, (dict, list)):
            # A check over a whole table (a driver's model validator): point at
            # the key whose value the message quotes, not at the table.
            loc = loc + _quoted_key(value, message)
            line, _ = lines.line_of(loc)
            value = _value_at(raw, loc)
        else:
            model = _model_at(loc[:-1], raw) if loc else None
            field = model.model_fields.get(str(loc[-1])) if model and loc else None
            if field is not None and field.description:
                hint = field.description
    if isinstance(value, (dict, list)):
        value = MISSING
    return ConfigIssue(file, line, _format_path(loc, raw), value, message, hint)


def _quoted_key(node: Any, message: str) -> tuple[Any, ...]:
    """Deepest path below `node` whose string value the message quotes ('x')."""
    matches: list[tuple[Any, ...]] = []

    def walk(sub: Any, path: tuple[Any, ...]) -> None:
        for key, child in sub.items() if isinstance(sub, dict) else enumerate(sub):
            if isinstance(child, (dict, list)):
                walk(child, (*path, key))
            elif isinstance(child, str) and f"'{child}'" in message:
                matches.append((*path, key))

    walk(node, ())
    # deepest first; at equal depth a key other than `name` says more
    matches.sort(key=lambda m: (-len(m), m[-1] == "name"))
    return matches[0] if matches else ()
