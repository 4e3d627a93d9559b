"""Supervisor, clock, sd_notify and the polled-driver loop, on a real event loop."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Any

import pytest

from agent.readings import Reading
from agent.runtime.clock import Clock, read_boot_id
from agent.runtime.supervisor import Supervisor
from agent.runtime.systemd import Notifier
from drivers.base import Backoff, DriverContext, PolledDriver
from drivers.config import DeviceConfig
from drivers.system.config import SystemHealthConfig
from drivers.system.health import SystemHealthDriver


def make_ctx(device: str, sink: list[Reading], clock: Clock | None = None, data_dir: str = "/tmp") -> DriverContext:
    clock = clock or Clock("assume")
    return DriverContext(device, stamp=clock.reading, emit=sink.extend, log=logging.getLogger(f"test.{device}"), data_dir=data_dir)


def test_backoff_grows_caps_and_jitters() -> None:
    b = Backoff(1.0, 8.0, jitter=0.0)
    assert [b.next_delay() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    b.reset()
    assert b.next_delay() == 1.0
    jittered = Backoff(10.0, 100.0, jitter=0.5)
    delays = {round(jittered.next_delay(), 6) for _ in range(1)} | {round(Backoff(10.0, 100.0, 0.5).next_delay(), 6) for _ in range(20)}
    assert len(delays) > 5 and all(5.0 <= d <= 15.0 for d in delays)


async def test_failing_task_is_restarted_logged_once_and_others_run(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sup = Supervisor(logging.getLogger("test.sup"), backoff_initial=0.01, backoff_max=0.02)
    attempts = 0
    ticks = 0

    async def flaky() -> None:
        nonlocal attempts
        attempts += 1
        raise RuntimeError("port vanished")

    async def steady() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    sup.start("flaky", flaky)
    sup.start("steady", steady)
    await asyncio.sleep(0.3)
    assert attempts >= 5
    assert ticks >= 10
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and "flaky" in r.getMessage()]
    assert len(errors) == 1, "a failing task must be logged once, not on every restart"
    assert sup.status()["flaky"]["restarts"] >= 4 and sup.status()["steady"]["running"]
    await sup.stop()
    assert not sup.status()["steady"]["running"]


class _Flaky(PolledDriver):
    config_model = "drivers.config:DeviceConfig"
    fail = True

    async def poll(self) -> list[Reading]:
        if self.fail:
            raise TimeoutError("no answer")
        return [self.ctx.reading("temperature", 21.5, "Cel")]


async def test_polled_driver_goes_offline_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    sink: list[Reading] = []
    cfg = DeviceConfig(name="probe", driver="x", poll_interval=0.01, failure={"backoff_initial": 0.01, "backoff_max": 0.02})
    drv = _Flaky(cfg, None, make_ctx("probe", sink))
    task = asyncio.create_task(drv.run())
    await asyncio.sleep(0.1)
    assert not drv.health.online and drv.health.error_counts["TimeoutError"] >= 2 and not sink
    drv.fail = False
    await asyncio.sleep(0.1)
    task.cancel()
    assert drv.health.online and sink and sink[-1].value == 21.5
    messages = [r.getMessage() for r in caplog.records if "probe" in r.getMessage()]
    assert sum("failing" in m for m in messages) == 1 and sum("recovered" in m for m in messages) == 1


def test_clock_stamps_boot_id_monotonic_and_sync_flag() -> None:
    clock = Clock("assume")
    a = clock.reading("dev", "x", 1)
    b = clock.reading("dev", "x", 2)
    assert a.boot_id == read_boot_id() and len(a.boot_id) == 36
    assert b.mono_ns >= a.mono_ns and a.synced is True
    never = Clock("never")
    assert never.reading("d", "m", 0).synced is False
    never.mark_synced()  # a GPS fix set the time
    assert never.reading("d", "m", 0).synced is True
    from agent.runtime.clock import kernel_clock_synced

    # the kernel source reports what adjtimex says, whatever that is here
    assert Clock("kernel").reading("d", "m", 0).synced is bool(kernel_clock_synced())


async def test_system_health_reports_real_figures(tmp_path: Any) -> None:
    sink: list[Reading] = []
    cfg = SystemHealthConfig(name="gateway", driver="system")
    drv = SystemHealthDriver(cfg, None, make_ctx("gateway", sink, data_dir=str(tmp_path)))
    readings = {r.metric: r for r in await drv.poll()}
    st = os.statvfs(tmp_path)
    assert readings["disk_free"].unit == "By"
    assert abs(readings["disk_free"].value - st.f_bavail * st.f_frsize) < 512 * 1024 * 1024
    assert readings["memory_available"].value > 0 and 0 <= readings["memory_used_ratio"].value <= 1
    assert readings["uptime"].value > 0 and readings["uptime"].unit == "s"
    assert readings["clock_synced"].value is True
    assert all(r.device == "gateway" and r.ok for r in readings.values())


def test_sd_notify_reaches_a_real_socket(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "20000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    n = Notifier()
    assert n.watchdog_interval == 10.0
    n.ready("3 devices")
    n.watchdog()
    assert server.recv(1024) == b"READY=1\nSTATUS=3 devices"
    assert server.recv(1024) == b"WATCHDOG=1"
    server.close()
