"""Validate the config in a short-lived child process; hand the agent plain objects.

pydantic and the config models cost about 20 MB of resident memory that the
long-running agent would carry for nothing after start-up, on a gateway whose
whole budget is 40 MB. So `edge-agent run` (and a remote config update) runs
the validator as a child process: the child imports the schema, validates,
and pickles the result as agent.config.plain.Plain objects (or the located
errors) to its standard output, then exits and takes pydantic with it.

The child is this interpreter running this module with the same code on its
path; what crosses the pipe is our own output, never input from the network.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from typing import Any

from agent.config.errors import ConfigError, ConfigIssue

_OK, _INVALID = 0, 2
TIMEOUT = 120.0  # seconds; validation takes about a second on a Pi, most of it imports


def load_plain(path: str | None = None, *, text: str | None = None, name: str = "<config>") -> Any:
    """The validated config of file `path` (or of `text`) as Plain objects.

    Raises ConfigError with the same located issues as agent.config.loader,
    or RuntimeError if the validator itself could not run.
    """
    if (path is None) == (text is None):
        raise ValueError("give a path or a text")
    args = ["--file", os.fspath(path)] if path is not None else ["--text", name]
    # the child resolves modules exactly as this process does (same checkout
    # or install), without putting anything in front of the standard library
    bootstrap = "import json, sys; sys.path[:0] = json.loads(sys.argv[1]); from agent.config.handoff import _child; sys.exit(_child(sys.argv[2:]))"
    try:
        proc = subprocess.run(
            [sys.executable, "-c", bootstrap, json.dumps(sys.path), *args],
            input=(text or "").encode(),
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"the config validator did not finish within {TIMEOUT:.0f} s; is the gateway overloaded?") from None
    if proc.returncode == _OK:
        return pickle.loads(proc.stdout)
    if proc.returncode == _INVALID:
        raise ConfigError(pickle.loads(proc.stdout))
    tail = proc.stderr.decode(errors="replace").strip().splitlines()[-5:]
    raise RuntimeError(f"the config validator failed (exit {proc.returncode}): " + (" | ".join(tail) or "no output"))


def _child(argv: list[str]) -> int:
    from agent.config.loader import load_config, load_config_text
    from agent.config.plain import from_model

    kind, value = argv[0], argv[1]
    try:
        model = load_config(value) if kind == "--file" else load_config_text(sys.stdin.read(), value)
    except ConfigError as exc:
        issues: list[ConfigIssue] = exc.issues
        sys.stdout.buffer.write(pickle.dumps(issues))
        return _INVALID
    sys.stdout.buffer.write(pickle.dumps(from_model(model)))
    return _OK


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
