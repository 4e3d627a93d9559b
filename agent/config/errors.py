"""Config errors an installer can act on: file, line, key path, value, hint."""

from __future__ import annotations

from typing import Any


class ConfigIssue:
    __slots__ = ("file", "line", "path", "value", "message", "hint")

    def __init__(self, file: str, line: int | None, path: str, value: Any, message: str, hint: str = "") -> None:
        self.file = file
        self.line = line
        self.path = path
        self.value = value
        self.message = message
        self.hint = hint

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def render(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        head = f"{where}: {self.path}" if self.path else where
        if self.value is not _MISSING:
            head += f" = {_show(self.value)}"
        text = f"{head}\n    {self.message}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"

    def __reduce__(self) -> str:
        # one sentinel, also after crossing from the validating child process
        return "_MISSING"


_MISSING: Any = _Missing()


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value).replace("'", '"')
    if isinstance(value, bool):
        text = "true" if value else "false"
    return text if len(text) <= 60 else text[:57] + "..."


class ConfigError(Exception):
    """Raised by agent.config.loader; `render()` is one screen for a human."""

    MAX_SHOWN = 8

    def __init__(self, issues: list[ConfigIssue]) -> None:
        super().__init__(issues[0].render() if issues else "invalid config")
        self.issues = issues

    def render(self) -> str:
        shown = self.issues[: self.MAX_SHOWN]
        noun = "error" if len(self.issues) == 1 else "errors"
        parts = [f"config invalid: {len(self.issues)} {noun}"]
        parts += [issue.render() for issue in shown]
        if len(self.issues) > len(shown):
            parts.append(f"... and {len(self.issues) - len(shown)} more; fix these first and check again.")
        return "\n".join(parts)


class CrossReferenceError(ValueError):
    """Raised inside the schema for checks that span sections; carries located issues."""

    def __init__(self, issues: list[tuple[tuple[Any, ...], str]]) -> None:
        super().__init__("; ".join(msg for _, msg in issues))
        self.issues = issues


MISSING = _MISSING
