"""The real agent as the tests run it: `edge-agent run --config FILE` in its own process.

`AgentProcess(config).start()` starts the agent and returns once the agent has
told a notify socket READY=1, the sd_notify message systemd waits for; the
agent sends it only when its uplink, devices and diag socket are up. `stop()`
sends SIGTERM (or another signal), then SIGKILL to the process group, and
returns the exit code; `kill()` is the power cut: SIGKILL at once. `pid` is
the agent's own process id (for /proc). `run_to_exit()` runs an agent that is
expected to refuse to start, with stdout and stderr captured apart. `root`
runs the agent of another checkout (a bench's baseline). Output goes to a log
file; every agent started here is remembered so that hil_tests/conftest.py can
put the log of each into a failing test's report.

`diag(...)` runs the real `edge-agent diag` CLI as a subprocess.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
LOG_TAIL_CHARS = 8000

T = TypeVar("T")


def agent_env(extra: dict[str, str] | None = None, root: Path = REPO) -> dict[str, str]:
    """This environment for an agent or CLI subprocess: the checkout at `root` importable, plain log lines, no colours."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(root) + os.pathsep + e.get("PYTHONPATH", "")
    # Not inherited from whatever runs the tests: they would switch on journald
    # priority prefixes, or point the agent at a systemd that is not ours.
    for name in ("JOURNAL_STREAM", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        e.pop(name, None)
    e["NO_COLOR"] = "1"
    e.update(extra or {})
    return e


def write_config(workdir: Path, text: str) -> Path:
    """`workdir/gateway.toml` with this text."""
    path = Path(workdir) / "gateway.toml"
    path.write_text(text)
    return path


def diag_socket_of(config: Path) -> Path:
    """The diag socket this config names (served unless [diagnostics] enabled = false)."""
    raw = tomllib.loads(Path(config).read_text())
    named = raw.get("diagnostics", {}).get("socket")
    return Path(named) if named else Path(raw.get("gateway", {}).get("data_dir", "/var/lib/edge-agent")) / "diag.sock"


class AgentNotReady(RuntimeError):
    """The agent exited or stayed silent before it was ready; the message carries its log."""


class AgentProcess:
    """`edge-agent run --config FILE [args]` as systemd starts it; output (stdout and stderr) goes to `log_file`.

    Agents sharing a `log_file` append to it, one after the other.
    """

    def __init__(
        self,
        config: Path,
        *,
        log_file: Path | None = None,
        env: dict[str, str] | None = None,
        args: Sequence[str] = (),
        root: Path = REPO,
    ) -> None:
        self.config = Path(config)
        self.workdir = self.config.parent
        self.log_file = log_file or self.workdir / "agent.log"
        self.extra_env = dict(env or {})
        self.args = tuple(args)
        self.root = Path(root)
        self.diag_socket = diag_socket_of(self.config)
        self.proc: subprocess.Popen[bytes] | None = None
        self.notifications: list[bytes] = []  # the sd_notify messages received, in order
        self._notify: socket.socket | None = None

    @property
    def command(self) -> list[str]:
        return [PYTHON, "-m", "agent.cli.main", "run", "--config", str(self.config), *self.args]

    @property
    def pid(self) -> int:
        """The agent's process id (it leads its own process group)."""
        assert self.proc is not None, "agent not started"
        return self.proc.pid

    def start(self, timeout: float = 30.0, *, keep_notify: bool = False) -> AgentProcess:
        """Start the agent and wait for its READY=1; AgentNotReady (with the log) if it exits or times out first.

        `keep_notify`: the notify socket stays open after READY, for `next_notification()`
        (e.g. watchdog feeds); read it, or a full socket queue would block the agent's sends.
        """
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        name = f"edge-agent-test-{uuid.uuid4().hex}"
        notify.bind("\0" + name)  # abstract namespace: no path length limit, nothing left on disk
        try:
            with open(self.log_file, "ab") as out:
                self.proc = subprocess.Popen(
                    self.command,
                    cwd=self.root,
                    env={**agent_env(self.extra_env, self.root), "NOTIFY_SOCKET": "@" + name},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # own process group: stop() can kill all it started
                )
            _started.append(self)
            self._wait_ready(notify, timeout)
        except BaseException:
            notify.close()
            raise
        if keep_notify:
            self._notify = notify
        else:
            notify.close()  # later notifications are refused; the agent ignores that
        return self

    def _wait_ready(self, notify: socket.socket, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            notify.settimeout(min(left, 0.5))  # short slices: an agent that exits is noticed at once
            try:
                message = notify.recv(4096)
                self.notifications.append(message)
                if b"READY=1" in message.split(b"\n"):
                    return
            except TimeoutError:
                pass
            if self.proc.poll() is not None:
                raise AgentNotReady(f"agent exited with {self.proc.returncode} before it was ready; {self.log_file}:\n{self.log_tail()}")
        code = self.stop()
        raise AgentNotReady(f"agent not ready within {timeout:g} s (stopped: exit {code}); {self.log_file}:\n{self.log_tail()}")

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        text = self.log_text()
        return text if len(text) <= chars else "...\n" + text[-chars:]

    def next_notification(self, timeout: float = 20.0) -> bytes | None:
        """The next sd_notify message after READY (start(keep_notify=True)); None if none came in time."""
        assert self._notify is not None, "start(keep_notify=True) keeps the notify socket"
        self._notify.settimeout(timeout)
        try:
            message = self._notify.recv(4096)
        except TimeoutError:
            return None
        self.notifications.append(message)
        return message

    def stop(self, timeout: float = 15.0, sig: signal.Signals = signal.SIGTERM) -> int | None:
        """`sig` (SIGTERM as systemd sends, SIGINT as Ctrl-C) to the agent, then SIGKILL to the process group
        after `timeout` s; the exit code (None if never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._close_notify()
        return self.proc.returncode

    def kill(self, timeout: float = 10.0) -> int | None:
        """SIGKILL to the process group at once, as a power cut would; the exit code (None if never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout)
        self._close_notify()
        return self.proc.returncode

    def _close_notify(self) -> None:
        if self._notify is not None:
            self._notify.close()
            self._notify = None

    def run_to_exit(self, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run an agent expected to exit by itself (a config it refuses, a data dir in use) until it does;
        stdout and stderr are captured apart, and also written to the log."""
        _started.append(self)
        done = subprocess.run(self.command, cwd=self.root, env=agent_env(self.extra_env, self.root), capture_output=True, text=True, timeout=timeout)
        with open(self.log_file, "a") as out:
            out.write(done.stdout + done.stderr)
        return done

    def diag(self, *args: str, timeout: float = 60.0, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """`edge-agent diag <args> --config <this agent's config>`."""
        return diag("--config", str(self.config), *args, timeout=timeout, extra_env=extra_env)

    def wait_for(self, predicate: Callable[[], T], timeout: float = 15.0, interval: float = 0.2) -> T | None:
        """Poll `predicate()` until it returns something truthy (returned) or time runs out (None)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        return None


_started: list[AgentProcess] = []


def take_started_agents() -> list[AgentProcess]:
    """The agents started since the last call (for a test's report), forgetting them."""
    agents = list(_started)
    _started.clear()
    return agents


def started_agents() -> list[AgentProcess]:
    """The agents started since the last take_started_agents()."""
    return list(_started)


def diag(*args: str, timeout: float = 60.0, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `edge-agent diag <command> <args>`; args[0:2] may be --config FILE (moved after the command)."""
    argv = list(args)
    opts: list[str] = []
    if argv[:1] == ["--config"]:
        opts, argv = argv[:2], argv[2:]
    # global options go after the (sub)command words
    words = []
    while argv and not argv[0].startswith("-"):
        words.append(argv.pop(0))
    cmd = [PYTHON, "-m", "agent.cli.main", "diag", *words, *opts, *argv]
    return subprocess.run(cmd, cwd=REPO, env=agent_env(extra_env), capture_output=True, text=True, timeout=timeout)
