"""A real Mosquitto broker for hardware-in-the-loop tests.

Usage (fixtures live in hil_tests/conftest.py):

    def test_publish(mosquitto):                  # plain broker, one per test
        client.connect(mosquitto.host, mosquitto.port)
        mosquitto.restart()                       # outage: same port afterwards
        mosquitto.kill()                          # SIGKILL; mosquitto.start() brings it back
        assert "New client connected" in mosquitto.log_text()

    def test_tls(mosquitto_factory, test_ca):     # any number of brokers with options
        b = mosquitto_factory(tls=True, require_certificate=True,
                              use_identity_as_username=True,
                              acl="user gw-1\\ntopic readwrite gw/gw-1/#\\n")
        pair = test_ca.client_cert("gw-1")        # or b.client_cert / b.client_key (CN "gateway-test")
        client.tls_set(ca_certs=b.ca_file, certfile=pair.cert, keyfile=pair.key)
        b2 = mosquitto_factory(passwords={"hub": "s3cret"})   # allow_anonymous is then off
        b3 = mosquitto_factory(persistence_dir=tmp_path / "db")  # survives restart()

`MosquittoBroker` can be used without pytest too (the demo and bench scripts):
`with MosquittoBroker(tmpdir) as b: ...`. Each broker runs in its own process
group, listens on 127.0.0.1 only, has persistence off and logs to
`<workdir>/mosquitto.log`. It is stopped at teardown, by a finalizer if the
object is dropped and at interpreter exit, so a failing test leaves no orphan.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path

from hil_tests.broker_certs import CertAuthority, CertPair

INSTALL_HINT = "Mosquitto is not installed: run `apt-get install mosquitto` (the hardware-in-the-loop tests need the real broker at /usr/sbin/mosquitto)."


class MosquittoNotInstalled(RuntimeError):
    pass


class BrokerStartError(RuntimeError):
    pass


def find_mosquitto() -> str:
    """Path of the mosquitto binary, or MosquittoNotInstalled naming the apt package."""
    for candidate in ("/usr/sbin/mosquitto", shutil.which("mosquitto")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise MosquittoNotInstalled(INSTALL_HINT)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def write_password_file(path: Path, passwords: Mapping[str, str]) -> None:
    """Write a Mosquitto 2 password file, with mosquitto_passwd when it is installed."""
    tool = shutil.which("mosquitto_passwd")
    path.write_text("")
    if tool:
        for user, password in passwords.items():
            subprocess.run(
                [tool, "-b", str(path), user, password],
                check=True,
                capture_output=True,
                timeout=30,
            )
        return
    # Same format as mosquitto_passwd 2.x: $7$ = PBKDF2-SHA512, 101 iterations.
    lines = []
    for user, password in passwords.items():
        salt = os.urandom(12)
        digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101)
        lines.append(f"{user}:$7$101${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}")
    path.write_text("\n".join(lines) + "\n")


def _kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: if the test runner itself is
    # SIGKILLed no finalizer runs, so ask the kernel to kill the broker too.
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # no libc.so.6 or no prctl: not Linux
        pass


_live_pids: set[int] = set()


@atexit.register
def _kill_all_at_exit() -> None:
    for pid in list(_live_pids):
        _kill_group(pid)


class MosquittoBroker:
    """One Mosquitto process with a config written into `workdir`.

    Plain by default. TLS when `ca` is given (a CertAuthority): the listener then
    serves `server_cert` (default: a fresh one from `ca` for 127.0.0.1/localhost)
    and trusts only `ca`. A default client certificate (CN "gateway-test") is
    issued and exposed as `client_cert` / `client_key`.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        ca: CertAuthority | None = None,
        server_cert: CertPair | None = None,
        require_certificate: bool = False,
        use_identity_as_username: bool = False,
        passwords: Mapping[str, str] | None = None,
        acl: str | None = None,
        allow_anonymous: bool | None = None,
        persistence_dir: Path | None = None,
        extra_config: str = "",
    ) -> None:
        self.executable = find_mosquitto()
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._fixed_port = port is not None
        self._port = port if port is not None else free_port()
        self.ca = ca
        self.require_certificate = require_certificate
        self.use_identity_as_username = use_identity_as_username
        self.passwords = dict(passwords or {})
        self.acl = acl
        # Anonymous access is on unless the test asked for passwords or client
        # certificates as identity; explicit True/False always wins.
        if allow_anonymous is None:
            allow_anonymous = not self.passwords and not use_identity_as_username
        self.allow_anonymous = allow_anonymous
        # Persistence is off unless asked for, either here or by a
        # "persistence ..." line in extra_config (then ours is left out).
        self.persistence_dir = Path(persistence_dir) if persistence_dir else None
        self.extra_config = extra_config
        self.config_file = self.workdir / "mosquitto.conf"
        self.log_file = self.workdir / "mosquitto.log"
        self.stderr_file = self.workdir / "mosquitto.stderr"
        self.ca_file: Path | None = None
        self.server: CertPair | None = None
        self.client_cert: Path | None = None
        self.client_key: Path | None = None
        if ca is not None:
            self.ca_file = ca.ca_file
            self.server = server_cert or ca.server_cert()
            pair = ca.client_cert("gateway-test")
            self.client_cert, self.client_key = pair.cert, pair.key
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._finalizer: weakref.finalize | None = None

    # -- properties ---------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def tls(self) -> bool:
        return self.ca is not None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def log_text(self) -> str:
        """Mosquitto's log plus anything it printed on stderr (config errors go there)."""
        parts = []
        for path in (self.log_file, self.stderr_file):
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "".join(parts)

    def wait_for_log(self, text: str, timeout: float = 10.0) -> bool:
        """Poll the log until `text` appears (True) or `timeout` s pass (False)."""
        deadline = time.monotonic() + timeout
        while text not in self.log_text():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    # -- config -------------------------------------------------------------

    def _config_text(self) -> str:
        lines = ["per_listener_settings false"]
        if self.persistence_dir is not None:
            self.persistence_dir.mkdir(parents=True, exist_ok=True)
            lines += ["persistence true", f"persistence_location {self.persistence_dir}/"]
        elif not any(line.split()[:1] == ["persistence"] for line in self.extra_config.splitlines()):
            lines.append("persistence false")
        lines += [
            f"log_dest file {self.log_file}",
            "log_type all",
            "log_timestamp true",
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            # Mosquitto drops root to user "mosquitto", which cannot read the
            # test's temporary files; staying root is harmless on loopback.
            lines.append("user root")
        lines.append(f"listener {self._port} {self.host}")
        lines.append(f"allow_anonymous {'true' if self.allow_anonymous else 'false'}")
        if self.ca is not None and self.server is not None:
            lines += [
                f"cafile {self.ca_file}",
                f"certfile {self.server.cert}",
                f"keyfile {self.server.key}",
                f"require_certificate {'true' if self.require_certificate else 'false'}",
                f"use_identity_as_username {'true' if self.use_identity_as_username else 'false'}",
            ]
        if self.passwords:
            pw_file = self.workdir / "passwords"
            write_password_file(pw_file, self.passwords)
            lines.append(f"password_file {pw_file}")
        if self.acl is not None:
            acl_file = self.workdir / "acl"
            acl_file.write_text(self.acl if self.acl.endswith("\n") else self.acl + "\n")
            lines.append(f"acl_file {acl_file}")
        if self.extra_config:
            lines.append(self.extra_config)
        return "\n".join(lines) + "\n"

    # -- lifecycle ----------------------------------------------------------

    def start(self, timeout: float = 10.0) -> MosquittoBroker:
        """Start the broker and wait until it accepts connections.

        With an automatically chosen port, a port stolen between choosing and
        binding is retried on a new port; after the first successful start the
        port never changes (restart() relies on that).
        """
        with self._lock:
            if self.running:
                return self
            attempts = 1 if self._fixed_port else 3
            for attempt in range(attempts):
                self._spawn()
                try:
                    self._wait_ready_locked(timeout)
                    self._fixed_port = True
                    return self
                except BrokerStartError:
                    in_use = "Address already in use" in self.log_text()
                    self._terminate_locked(signal.SIGKILL, 5.0)
                    if not in_use or attempt == attempts - 1:
                        raise
                    self._port = free_port()
        return self

    def _spawn(self) -> None:
        self.config_file.write_text(self._config_text())
        stderr = open(self.stderr_file, "ab")
        try:
            use_pdeathsig = threading.current_thread() is threading.main_thread()
            self._proc = subprocess.Popen(
                [self.executable, "-c", str(self.config_file)],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,  # own process group: killpg reaches everything
                # PDEATHSIG fires when the *thread* that forked exits, so only
                # use it when starting from the main thread.
                preexec_fn=_die_with_parent if use_pdeathsig else None,
            )
        finally:
            stderr.close()
        _live_pids.add(self._proc.pid)
        if self._finalizer is not None:
            self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _kill_group, self._proc.pid)

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Block until the listener accepts TCP connections; BrokerStartError with
        the broker's log if it exits or does not come up within `timeout` seconds."""
        with self._lock:
            self._wait_ready_locked(timeout)

    def _wait_ready_locked(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                raise BrokerStartError(
                    f"mosquitto exited (code {code}) before listening on {self.host}:{self._port}; config {self.config_file}; log:\n{self.log_text()[-3000:]}"
                )
            try:
                with socket.create_connection((self.host, self._port), timeout=0.5):
                    return
            except OSError:
                pass
            if time.monotonic() >= deadline:
                raise BrokerStartError(
                    f"mosquitto did not accept connections on {self.host}:{self._port} within {timeout:.0f} s; log:\n{self.log_text()[-3000:]}"
                )
            time.sleep(0.02)

    def _terminate_locked(self, sig: int, timeout: float) -> int | None:
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            _kill_group(proc.pid, sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        # The group may hold nothing else, but make sure nothing survives it.
        _kill_group(proc.pid, signal.SIGKILL)
        _live_pids.discard(proc.pid)
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        self._proc = None
        return proc.returncode

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait up to `timeout` s (then SIGKILL). Returns the exit code."""
        with self._lock:
            return self._terminate_locked(signal.SIGTERM, timeout)

    def kill(self) -> int | None:
        """SIGKILL: an abrupt broker crash, clients see their sockets die."""
        with self._lock:
            return self._terminate_locked(signal.SIGKILL, 10.0)

    def restart(self, kill: bool = False, timeout: float = 10.0) -> MosquittoBroker:
        """Stop (or kill) and start again on the same port."""
        if kill:
            self.kill()
        else:
            self.stop()
        return self.start(timeout)

    def __enter__(self) -> MosquittoBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<MosquittoBroker {self.host}:{self._port} tls={self.tls} {state}>"
