"""Find the line of a key path in TOML text.

tomllib gives values but no positions, and an installer needs the line. This
scanner follows table headers, arrays of tables, dotted keys, inline tables and
multi-line arrays well enough to name the line of any key a config holds; for
a missing key it falls back to the line of the enclosing table.
"""

from __future__ import annotations

import re

Path = tuple[object, ...]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")
_INLINE_KEY = re.compile(r"""[{,]\s*([A-Za-z0-9_-]+|"[^"]*")\s*=""")


def _split_dotted(text: str) -> list[str]:
    parts = re.findall(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""", text)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


def _bracket_delta(text: str) -> int:
    """Net [ and { openings outside strings and comments on one line."""
    depth = 0
    quote = ""
    for ch in text:
        if quote:
            if ch == quote:
                quote = ""
            continue
        if ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
    return depth


class TomlLines:
    def __init__(self, text: str) -> None:
        self.lines: dict[Path, int] = {}
        self._array_counts: dict[Path, int] = {}
        self._scan(text.splitlines())

    def _resolve_table(self, keys: list[str]) -> Path:
        """Insert the current index after every array-of-tables prefix."""
        path: list[object] = []
        for key in keys:
            path.append(key)
            count = self._array_counts.get(tuple(path))
            if count is not None:
                path.append(count - 1)
        return tuple(path)

    def _record(self, path: Path, line: int) -> None:
        self.lines.setdefault(path, line)

    def _scan(self, lines: list[str]) -> None:
        table: Path = ()
        i = 0
        while i < len(lines):
            raw = lines[i]
            lineno = i + 1
            i += 1
            header = _HEADER.match(raw)
            if header and not _KEY.match(raw):
                keys = _split_dotted(header.group(2))
                if header.group(1) == "[[":
                    parent = self._resolve_table(keys[:-1])
                    arr = parent + (keys[-1],)
                    self._array_counts[arr] = self._array_counts.get(arr, 0) + 1
                    self._record(arr, lineno)
                    table = arr + (self._array_counts[arr] - 1,)
                else:
                    table = self._resolve_table(keys)
                self._record(table, lineno)
                continue
            key = _KEY.match(raw)
            if not key:
                continue
            path = table + tuple(_split_dotted(key.group(1)))
            self._record(path, lineno)
            value = raw[key.end() :]
            for inner in _INLINE_KEY.finditer(value):
                self._record(path + (_split_dotted(inner.group(1))[0],), lineno)
            stripped = value.strip()
            if stripped.startswith(('"""', "'''")) and stripped.count(stripped[:3]) < 2:
                fence = stripped[:3]
                while i < len(lines) and fence not in lines[i]:
                    i += 1
                i += 1
                continue
            depth = _bracket_delta(value)
            element = 0
            while depth > 0 and i < len(lines):
                inner_line = lines[i]
                if depth == 1 and inner_line.strip().startswith(("{", "[")):
                    self._record(path + (element,), i + 1)
                    for inner in _INLINE_KEY.finditer(inner_line):
                        self._record(path + (element, _split_dotted(inner.group(1))[0]), i + 1)
                    element += 1
                elif depth == 1 and inner_line.strip() and not inner_line.strip().startswith(("]", "#")):
                    self._record(path + (element,), i + 1)
                    element += inner_line.count(",") or 1
                depth += _bracket_delta(inner_line)
                i += 1

    def line_of(self, path: Path) -> tuple[int | None, bool]:
        """Line of the key, or of its closest enclosing table; and whether it was exact."""
        probe = tuple(path)
        exact = True
        while probe:
            if probe in self.lines:
                return self.lines[probe], exact
            probe = probe[:-1]
            exact = False
        return None, False
