"""`diag watch`: a live full-screen dashboard (ANSI; q or Ctrl-C quits).

The agent streams its status (the `watch` command of the socket); the screen
is redrawn in place on the terminal's alternate screen and cut to its size.
Not a terminal, or --json: one status per line instead.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import sys
import termios
import time
import tty
from typing import Any

from agent.diag.client import AgentUnreachable, RemoteError
from agent.diag.context import CliError, Ctx
from agent.diag.render import status_screen, visible_len

ENTER, LEAVE = "\x1b[?1049h\x1b[?25l", "\x1b[?25h\x1b[?1049l"
HOME_CLEAR = "\x1b[H\x1b[2J"


def _fit(text: str, cols: int, rows: int) -> str:
    lines = text.splitlines()
    if len(lines) > rows - 1:
        lines = lines[: rows - 2] + [f"... {len(lines) - rows + 2} more lines (enlarge the window, or `diag status`)"]
    out = []
    for line in lines:
        if visible_len(line) > cols:
            # a cut line loses its colours rather than leave a code half-printed
            line = re.sub(r"\x1b\[[0-9;]*m", "", line)[: cols - 1] + "~"
        out.append(line)
    return "\n".join(out)


def run_watch(ctx: Ctx) -> int:
    a = ctx.args
    client = ctx.agent()
    if client is None:
        raise CliError(f"the agent is not running ({ctx.offline_reason})", "start it (sudo systemctl start edge-agent); `diag status` works without it")
    interactive = sys.stdout.isatty() and sys.stdin.isatty() and not ctx.json
    stream = client.stream("watch", wait=max(30.0, a.interval * 5), interval=a.interval, count=a.count)
    if not interactive:
        try:
            for st in stream:
                ctx.emit_line(st) if ctx.json else print(status_screen(st, ctx.style), flush=True)
        except (RemoteError, AgentUnreachable) as exc:
            raise CliError(str(exc)) from None
        return 0
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    sock = client._sock
    assert sock is not None
    try:
        tty.setcbreak(fd)
        sys.stdout.write(ENTER)
        _draw(ctx, next(stream))  # sends the request and waits for the first screen
        while True:
            ready, _, _ = select.select([sock, fd], [], [], max(30.0, a.interval * 5))
            if fd in ready and os.read(fd, 64).lower().startswith((b"q", b"\x03", b"\x1b")):
                return 0
            if sock in ready or client._buf:
                try:
                    st = next(stream)
                except StopIteration:
                    return 0
                _draw(ctx, st)
            if not ready:
                raise CliError("the agent stopped sending updates", "check that it is still running: systemctl status edge-agent")
    except (RemoteError, AgentUnreachable) as exc:
        raise CliError(str(exc)) from None
    finally:
        sys.stdout.write(LEAVE)
        sys.stdout.flush()
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _draw(ctx: Ctx, st: dict[str, Any]) -> None:
    cols, rows = shutil.get_terminal_size((100, 40))
    header = ctx.style(f"edge-agent diag watch  {time.strftime('%H:%M:%S')}  (q quits)", "dim")
    body = _fit(status_screen(st, ctx.style), cols, rows - 1)
    sys.stdout.write(HOME_CLEAR + header + "\n" + body)
    sys.stdout.flush()
