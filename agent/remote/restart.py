"""Restarting the agent in place after a clean shutdown (restart command, config update or rollback).

`exec` keeps the PID, so systemd (Type=notify, NotifyAccess=main) sees the
same service; outside systemd it works the same way, which is what lets the
rollback be tested with a plain process.
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger("edge_agent")


def reexec(why: str) -> None:
    argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    log.warning("re-executing the agent (%s)", why)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)
