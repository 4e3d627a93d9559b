"""The validated config as plain, read-only objects.

The running agent never imports pydantic (about 20 MB of a 40 MB budget): the
config is validated in a short-lived child process (agent.config.handoff),
which sends back the validated values as `Plain` objects, one per config
model, with the same attribute names as the models. Runtime code reads
attributes and therefore works with either the models or their plain copies.

This module imports nothing beyond the standard library on purpose.
"""

from __future__ import annotations

from typing import Any


class Plain:
    """One validated config section: its fields (and declared derived values) as attributes."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"the config is read-only (tried to set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"the config is read-only (tried to delete {name!r})")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Plain) and self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "Plain(" + ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items()) + ")"


def from_model(value: Any) -> Any:
    """A validated model tree as Plain objects (runs in the validating process).

    Models become Plain with their fields plus the names in their
    `runtime_attrs`; lists, tuples and dicts keep their type.
    """
    fields = getattr(type(value), "model_fields", None)
    if fields is not None:
        derived = tuple(getattr(type(value), "runtime_attrs", ()))
        out = {name: from_model(getattr(value, name)) for name in (*fields, *derived)}
        if derived:
            out["_derived"] = derived
        return Plain(**out)
    return _each(value, from_model)


def as_dict(section: Any) -> Any:
    """A config section (model or Plain) as nested dicts of its fields only,
    e.g. to hand it to another process that validates it again."""
    dump = getattr(section, "model_dump", None)
    if dump is not None:
        return dump()
    if isinstance(section, Plain):
        skip = {"_derived", *getattr(section, "_derived", ())}
        return {k: as_dict(v) for k, v in section.__dict__.items() if k not in skip}
    return _each(section, as_dict)


def _each(value: Any, convert: Any) -> Any:
    """`convert` applied inside a list, tuple or dict (keeping its type); other values as they are."""
    if isinstance(value, list):
        return [convert(v) for v in value]
    if isinstance(value, tuple):
        return tuple(convert(v) for v in value)
    if isinstance(value, dict):
        return {k: convert(v) for k, v in value.items()}
    return value
