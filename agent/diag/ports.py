"""Who holds a serial port: scanning /proc/<pid>/fd, so offline commands say
"the agent (pid 812) has /dev/ttyUSB0 open" instead of fighting it for bytes."""

from __future__ import annotations

import os


def holders(device: str) -> list[dict[str, object]]:
    """Processes (other than this one) with `device` open; those we may not inspect are skipped."""
    try:
        target = os.path.realpath(device)
    except OSError:
        return []
    me = os.getpid()
    out = []
    for pid_s in os.listdir("/proc"):
        if not pid_s.isdigit() or int(pid_s) == me:
            continue
        fd_dir = f"/proc/{pid_s}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"{fd_dir}/{fd}") == target:
                    out.append({"pid": int(pid_s), "cmdline": _cmdline(pid_s)})
                    break
            except OSError:
                continue
    return out


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read(512).replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def is_agent(holder: dict[str, object], agent_pid: int | None = None) -> bool:
    cmd = str(holder["cmdline"])
    return holder["pid"] == agent_pid or (("edge-agent" in cmd or "agent.cli.main" in cmd) and " run" in cmd)


def split_holders(device: str, agent_pid: int | None = None) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """(the agent's processes holding `device`, other processes holding it)."""
    found = holders(device)
    mine = [h for h in found if is_agent(h, agent_pid)]
    return mine, [h for h in found if h not in mine]


def describe_holders(device: str, found: list[dict[str, object]]) -> str:
    who = "; ".join(f"pid {h['pid']} ({str(h['cmdline'])[:80]})" for h in found)
    what = "the agent holds" if any(is_agent(h) for h in found) else "another process holds"
    return f"{what} {device}: {who}"
