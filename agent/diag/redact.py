"""Secrets out of support bundles.

Three layers, because one missed pattern must not leak a password:
1. config text: values of keys named like password/secret/token/key/credential
   are replaced (paths of *_file keys are kept, their contents never read into
   the bundle), URLs lose their user:password@, inline PEM private keys go;
2. JSON (status, describe): the same rules applied to keys and strings;
3. every text in the bundle is finally scrubbed of the actual contents of the
   secret files the config points at (password file, private keys).
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

REDACTED = "<redacted>"
SECRET_KEY = re.compile(r"(pass(word|wd|phrase)?|secret|token|credential|psk|api[_-]?key|private|(^|_)key($|_))", re.I)
_FILE_KEY = re.compile(r"_(file|path|dir)$", re.I)
_URL_CREDS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/\s:@\"']*):(?P<pw>[^@\s\"'/]+)@")
_PEM_KEY = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?-----END [A-Z0-9 ]*PRIVATE KEY-----", re.S)
_ASSIGN = re.compile(r"^(?P<lead>\s*)(?P<key>[A-Za-z0-9_\-\"'.]+)(?P<eq>\s*=\s*)(?P<value>.*)$")
_LOG_SECRET = re.compile(r"(?P<k>(password|passwd|secret|token|api[_-]?key)\s*[=:]\s*)(?!\"?<redacted)(?P<v>\S+)", re.I)


def is_secret_key(key: str) -> bool:
    return bool(SECRET_KEY.search(key)) and not _FILE_KEY.search(key)


def is_secret_file_key(key: str) -> bool:
    return bool(SECRET_KEY.search(key.replace("_file", ""))) and bool(_FILE_KEY.search(key))


def scrub_text(text: str) -> str:
    text = _PEM_KEY.sub("<redacted private key>", text)
    text = _URL_CREDS.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)
    return _LOG_SECRET.sub(lambda m: m["k"] + REDACTED, text)


def redact_config_text(text: str) -> str:
    out: list[str] = []
    skipping_until = ""
    for line in text.splitlines():
        if skipping_until:
            if skipping_until in line:
                skipping_until = ""
            continue
        m = _ASSIGN.match(line)
        if m and is_secret_key(m["key"].strip("\"'").split(".")[-1]):
            value = m["value"].strip()
            for quote in ('"""', "'''"):
                if value.startswith(quote) and value.count(quote) == 1:
                    skipping_until = quote  # a multi-line secret: drop its lines
            out.append(f'{m["lead"]}{m["key"]}{m["eq"]}"{REDACTED}"')
            continue
        out.append(line)
    return scrub_text("\n".join(out)) + "\n"


def scrub_obj(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: (REDACTED if isinstance(k, str) and is_secret_key(k) and v not in (None, "", 0) else scrub_obj(v)) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [scrub_obj(v) for v in obj]
    if isinstance(obj, str):
        return scrub_text(obj)
    return obj


def secret_files(data: Any, found: list[str] | None = None) -> list[str]:
    """Paths named by *password_file*, *key_file* etc. anywhere in a parsed config."""
    found = [] if found is None else found
    if isinstance(data, dict):
        for k, v in data.items():
            if isinstance(v, str) and v and isinstance(k, str) and is_secret_file_key(k):
                found.append(v)
            else:
                secret_files(v, found)
    elif isinstance(data, list):
        for v in data:
            secret_files(v, found)
    return found


def redacted_config(path: str) -> tuple[str, list[str]]:
    """(redacted text of the config file, secret files it references)."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        text = fh.read(4 << 20)
    try:
        files = secret_files(tomllib.loads(text))
    except tomllib.TOMLDecodeError:
        files = []
    return redact_config_text(text), files


def known_secrets(files: list[str]) -> list[str]:
    """Contents (lines of 6+ characters) of the secret files we may read, to scrub as a last resort."""
    out: set[str] = set()
    for path in files:
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                content = fh.read(64 * 1024)
        except OSError:
            continue
        for line in content.splitlines():
            line = line.strip()
            if len(line) >= 6 and not line.startswith("-----"):
                out.add(line)
                # Mosquitto-style "user:hash" files: the part after the colon too
                if ":" in line:
                    tail = line.split(":", 1)[1]
                    if len(tail) >= 6:
                        out.add(tail)
    return sorted(out, key=len, reverse=True)


def scrub_known(text: str, secrets: list[str]) -> str:
    for s in secrets:
        if s in text:
            text = text.replace(s, REDACTED)
    return text
