"""The agent: composes clock, outbox, uplink, buses, drivers and vision on one loop.

Start-up order is outbox first (readings have somewhere durable to go), then the
uplink, then buses and drivers, then the vision supervisor; shutdown runs the
other way and ends with a final commit and sync of the outbox, so SIGTERM loses
nothing that a driver had produced.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import platform
import signal
import time
from typing import Any

from agent import __version__
from agent.readings import Reading
from agent.runtime.clock import Clock
from agent.runtime.overload import Delivery, LoadGovernor
from agent.runtime.supervisor import Supervisor
from agent.runtime.systemd import Notifier
from agent.runtime.tap import ReadingTap
from drivers import registry
from drivers.base import Bus, Driver, DriverContext, PollPacing

log = logging.getLogger("edge_agent")

SHUTDOWN_BUDGET = 5.0  # seconds; systemd's TimeoutStopSec is larger


class StartupError(Exception):
    """The agent cannot start; the message says why and what to do."""


class Agent:
    def __init__(self, config: Any, *, config_path: str = "") -> None:
        self.config = config
        self.config_path = config_path
        self.data_dir = os.path.abspath(config.gateway.data_dir)
        self.clock = Clock(config.clock.sync_source)
        self.supervisor = Supervisor(log.getChild("tasks"))
        self.notifier = Notifier()
        self.tap = ReadingTap()
        self.pacing = PollPacing()  # the load governor thins polls through it when the loop is overloaded
        self.governor = LoadGovernor(self.pacing, delivery=self._delivery_figures, log=log.getChild("load"))
        self.buses: dict[str, Bus] = {}
        self.drivers: dict[str, Driver] = {}
        self.vision: Any = None
        self.broker: Any = None
        self.outbox: Any = None
        self.uplink: Any = None
        self.diag: Any = None
        self.remote: Any = None
        self.restart_requested = ""  # set by a remote restart or config update: re-exec after shutdown
        self.started_wall = time.time()
        self._stop = asyncio.Event()
        self._lock_fd: int | None = None

    # -- readings path ---------------------------------------------------
    def emit(self, readings: list[Reading]) -> None:
        self.outbox.add(readings)
        self.tap.publish(readings)

    def _delivery_figures(self) -> Delivery:
        if self.outbox is None:
            return Delivery()
        up = self.uplink
        return Delivery(
            committed=self.outbox.committed,
            acknowledged=up.counters["sent"] if up is not None else 0,
            pending=self.outbox.pending_share(),
            connected=up is not None and up.connected,
        )

    # -- lifecycle ---------------------------------------------------------
    async def start(self) -> None:
        try:
            os.makedirs(self.data_dir, exist_ok=True)
        except OSError as exc:
            raise StartupError(
                f"cannot create the data directory {self.data_dir}: {exc.strerror}; create it writable by the agent's user "
                "(the systemd unit's StateDirectory does) or set [gateway] data_dir"
            ) from None
        self._lock_fd = lock_data_dir(self.data_dir)
        from agent.outbox import Outbox
        from agent.uplink import Uplink

        self.outbox = Outbox(self.config.storage, data_dir=self.data_dir, clock=self.clock, log=log.getChild("outbox"))
        await self.outbox.open()
        self.outbox.on_backlog(self.governor.hold)
        self.supervisor.start("outbox", self.outbox.run)

        host, port = await self._broker_endpoint()
        self.uplink = Uplink(
            self.config.uplink,
            gateway_id=self.config.gateway.id,
            site=self.config.gateway.site,
            outbox=self.outbox,
            clock=self.clock,
            log=log.getChild("uplink"),
            host=host,
            port=port,
            describe=self.describe,
            status=self.status,
        )
        self.supervisor.start("uplink", self.uplink.run)
        if self.config.remote.enabled:
            from agent.remote.manager import RemoteManager

            self.remote = RemoteManager(self, log.getChild("remote"))
            self.remote.start()

        self.supervisor.start("load", self.governor.run)
        self._start_devices()
        if self.config.cameras and self.config.vision.enabled:
            from agent.vision.supervisor import VisionSupervisor

            self.vision = VisionSupervisor(
                list(self.config.cameras),
                self.config.vision,
                stamp=self.clock.reading,
                emit=self.emit,
                log=log.getChild("vision"),
                data_dir=self.data_dir,
            )
            self.supervisor.start("vision", self.vision.run)
        await self._start_diagnostics()
        if self.notifier.watchdog_interval:
            self.supervisor.start("watchdog", self._feed_watchdog)

    async def _broker_endpoint(self) -> tuple[str, int]:
        up = self.config.uplink
        if up.broker == "embedded":
            from agent.broker import EmbeddedBroker

            # The embedded broker is the hub's door on this machine: it holds
            # the uplink's messages (and their PUBACKs) until a consumer has
            # subscribed, so readings stay in the outbox rather than being
            # acknowledged to nobody. The uplink's in-flight window bounds the hold.
            self.broker = EmbeddedBroker(host="127.0.0.1", port=up.port, hold_unrouted=10_000)
            try:
                return "127.0.0.1", await self.broker.start()
            except OSError as exc:
                raise StartupError(
                    f"cannot start the embedded MQTT broker on 127.0.0.1:{up.port}: {exc.strerror}; another agent or demo may be "
                    f"running (see `ss -ltnp 'sport = :{up.port}'`), or set [uplink] port to a free port"
                ) from None
        return up.host, up.port or (8883 if up.tls else 1883)

    def _start_devices(self) -> None:
        for bus_cfg in self.config.buses:
            self.buses[bus_cfg.name] = registry.bus_class(bus_cfg.type)(bus_cfg, log.getChild(f"bus.{bus_cfg.name}"))
        for dev_cfg in self.config.devices:
            if not dev_cfg.enabled:
                continue
            cls = registry.driver_class(dev_cfg.driver)
            bus_name = getattr(dev_cfg, "bus", None)
            ctx = DriverContext(
                dev_cfg.name,
                stamp=self.clock.reading,
                emit=self.emit,
                log=log.getChild(f"device.{dev_cfg.name}"),
                mark_clock_synced=self.clock.mark_synced,
                data_dir=self.data_dir,
                pacing=self.pacing,
            )
            driver = cls(dev_cfg, self.buses.get(bus_name) if bus_name else None, ctx)
            self.drivers[dev_cfg.name] = driver
            self.supervisor.start(f"device:{dev_cfg.name}", driver.run)

    async def _start_diagnostics(self) -> None:
        try:
            from agent.diag.server import DiagServer
        except ImportError:
            return  # diagnostics server not installed in this build
        self.diag = DiagServer(self, self.config.diagnostics)
        await self.diag.start()

    async def _feed_watchdog(self) -> None:
        interval = self.notifier.watchdog_interval or 10.0
        while True:
            # The feed runs on the event loop, so a blocked loop starves the
            # watchdog and systemd restarts the agent.
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self.request_stop)
            except (NotImplementedError, RuntimeError):
                pass
        from agent.remote.secrets import insecure_secrets

        problems = insecure_secrets(self.config)
        for problem in problems:
            log.error("refusing to start: %s", problem)
        if problems:
            return 2
        try:
            await self.start()
        except StartupError:
            await self.shutdown()
            raise
        n_dev, n_cam = len(self.drivers), len(self.config.cameras)
        log.info("agent %s running: gateway %s, %d device(s), %d camera(s), data in %s", __version__, self.config.gateway.id, n_dev, n_cam, self.data_dir)
        self.notifier.ready(f"{n_dev} devices, {n_cam} cameras")
        await self._stop.wait()
        await self.shutdown()
        if self.restart_requested:
            from agent.remote.restart import reexec

            reexec(self.restart_requested)
        return 0

    async def shutdown(self) -> None:
        log.info("stopping")
        self.notifier.stopping()
        started = time.monotonic()
        # Producers first, so the final commit has everything they made.
        producer_tasks = [st.task for name, st in self.supervisor.tasks.items() if name.startswith(("device:", "vision")) and st.task]
        for task in producer_tasks:
            task.cancel()
        await asyncio.wait(producer_tasks, timeout=1.5) if producer_tasks else None
        if self.vision is not None:
            await _bounded(self.vision.close(), 1.5, "vision")
        for driver in self.drivers.values():
            await _bounded(driver.close(), 0.5, f"device {driver.config.name}")
        for bus in self.buses.values():
            await _bounded(bus.close(), 0.5, f"bus {bus.config.name}")
        if self.diag is not None:
            await _bounded(self.diag.stop(), 0.5, "diagnostics")
        if self.remote is not None:
            self.remote.close()
        if self.uplink is not None:
            await _bounded(self.uplink.close(), 1.5, "uplink")
        await self.supervisor.stop(timeout=1.0)
        if self.outbox is not None:
            await _bounded(self.outbox.close(), 2.0, "outbox")
        if self.broker is not None:
            await _bounded(self.broker.stop(), 0.5, "embedded broker")
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the data directory for the next run
            self._lock_fd = None
        log.info("stopped in %.2f s", time.monotonic() - started)

    # -- what the hub and the technician see -----------------------------
    def describe(self) -> dict[str, Any]:
        caps = ["telemetry", "health"]
        if self.config.remote.enabled:
            caps.append("commands")
        if self.config.cameras:
            caps.append("vision")
        return {
            "gateway": self.config.gateway.id,
            "site": self.config.gateway.site,
            "description": self.config.gateway.description,
            "versions": versions(),
            "boot_id": self.clock.boot_id,
            "capabilities": caps,
            "devices": [d.describe() for d in self.drivers.values()],
            "cameras": [{"name": c.name} for c in self.config.cameras],
        }

    def status(self) -> dict[str, Any]:
        return {
            "gateway": self.config.gateway.id,
            "site": self.config.gateway.site,
            "versions": versions(),
            "uptime": time.time() - self.started_wall,
            "clock": {"synced": self.clock.synced(), "source": self.clock.sync_source, "boot_id": self.clock.boot_id},
            "uplink": self.uplink.stats() if self.uplink else {},
            "outbox": self.outbox.stats() if self.outbox else {},
            "devices": {name: d.status() for name, d in self.drivers.items()},
            "buses": {name: b.status() for name, b in self.buses.items()},
            "cameras": self.vision.status() if self.vision is not None else {},
            "tasks": self.supervisor.status(),
            "load": self.governor.status(),
            "remote": self.remote.status() if self.remote is not None else {},
        }


def lock_data_dir(data_dir: str) -> int:
    """Hold an exclusive lock on the data directory for the agent's lifetime.

    Two agents on one outbox would hand out the same sequence numbers; the
    second one is refused with the first one's pid instead.
    """
    import fcntl

    path = os.path.join(data_dir, "agent.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StartupError(
            f"another edge-agent (pid {holder}) is running with data_dir {data_dir}; stop it first "
            "(systemctl stop edge-agent) or give this one its own [gateway] data_dir"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


async def _bounded(coro: Any, timeout: float, what: str) -> None:
    try:
        await asyncio.wait_for(coro, timeout)
    except TimeoutError:
        log.warning("%s did not stop within %.1f s", what, timeout)
    except Exception as exc:  # noqa: BLE001 - shutdown must go on
        log.warning("%s failed to stop cleanly: %s", what, exc)


def versions() -> dict[str, str]:
    """Versions of the agent and the packages it runs on (a fresh copy)."""
    return dict(_versions())


@functools.cache
def _versions() -> dict[str, str]:
    # Package metadata, not imports: importing onnxruntime or cv2 here would
    # cost the telemetry process tens of MB for a version string.
    from importlib import metadata

    out = {"agent": __version__, "python": platform.python_version()}
    for dist in ("paho-mqtt", "pymodbus", "pyserial", "onnxruntime", "opencv-python-headless"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out
