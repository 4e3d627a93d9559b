"""Least privilege at start-up: secret files must be private to the agent.

A private key or password file that other users can read is treated like a
leaked one: the agent refuses to start and prints the commands that fix it.
"""

from __future__ import annotations

import os
import pwd
import stat
from typing import Any


def secret_paths(config: Any) -> list[tuple[str, str]]:
    """(config key, path) of every secret file the config names."""
    out: list[tuple[str, str]] = []
    up = config.uplink
    if up.password_file:
        out.append(("uplink.password_file", up.password_file))
    if up.tls is not None and up.tls.key_file:
        out.append(("uplink.tls.key_file", up.tls.key_file))
    return out


def insecure_secrets(config: Any) -> list[str]:
    """One message per secret file that others may read or change; empty when all is well."""
    problems = []
    for key, path in secret_paths(config):
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue  # the uplink reports a missing file with its own hint when it connects
        except OSError as exc:
            problems.append(f"{key} {path}: cannot check its permissions ({exc.strerror})")
            continue
        if st.st_mode & (stat.S_IROTH | stat.S_IWOTH | stat.S_IWGRP):
            mode = stat.S_IMODE(st.st_mode)
            problems.append(
                f"{key} {path} is readable or writable by other users (mode {mode:04o}); a secret must be private. "
                f"Fix: chmod 600 {path} && chown {_user()} {path} (or chmod 640 with the agent's group as owner group), then start again."
            )
    return problems


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())
