"""The vision worker is killed, hangs, or loses its stream: it comes back,
counting resumes, and the rest of the agent (a telemetry source on the same
event loop) never notices."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from agent.readings import Reading
from agent.runtime.clock import Clock
from agent.vision.config import CameraConfig, LineConfig, VisionConfig
from agent.vision.supervisor import VisionSupervisor
from hil_tests.emulators.mjpeg_server import MjpegServer
from hil_tests.emulators.rtsp_server import RtspServer
from hil_tests.vision_support import MODELS, separated_traffic, supervisor

pytestmark = pytest.mark.slow  # about 30 s on 2 busy cores

LINE = LineConfig(name="centre", start=(0.5, 1.0), end=(0.5, 0.0))
STEP = 0.05


async def wait_for(cond, what: str, vs: VisionSupervisor, limit_s: float = 60.0) -> None:
    for _ in range(int(limit_s / STEP)):
        if cond():
            return
        await asyncio.sleep(STEP)
    raise AssertionError(f"gave up waiting for {what}: {vs.status()}")


async def telemetry(out: list[Reading], stamp) -> None:
    """A non-vision source on the same loop: one numbered reading per tick."""
    n = 0
    while True:
        n += 1
        out.append(stamp("meter", "energy", n, "Wh"))
        await asyncio.sleep(STEP)


@pytest.fixture(scope="module")
def traffic_clip(tmp_path_factory):
    scene = separated_traffic(8, seed=5, gap_s=2.0)
    path = tmp_path_factory.mktemp("clips") / "loop.avi"
    scene.write_video(str(path))
    return path, scene


def test_killed_and_hung_worker_is_restarted_and_telemetry_goes_on(traffic_clip, tmp_path) -> None:
    path, _ = traffic_clip
    cam = CameraConfig(name="road", source=str(path), mode="motion", loop=True, realtime=True, detect_fps=10, lines=[LINE], report_interval=3600)
    vision = VisionConfig(models_dir=MODELS, heartbeat_timeout=3.0, restart_delay=0.2)
    readings: list[Reading] = []
    stamp = Clock("assume").reading  # the agent's other telemetry, stamped as the agent does
    vs = supervisor([cam], str(tmp_path), readings, vision=vision)

    def meter_values() -> list[int]:
        return [int(r.value) for r in readings if r.device == "meter"]  # type: ignore[arg-type]

    async def scenario() -> None:
        tasks = [asyncio.create_task(vs.run()), asyncio.create_task(telemetry(readings, stamp))]
        try:
            await wait_for(lambda: vs.counted >= 2, "first crossings", vs)
            for n, sig in enumerate((signal.SIGKILL, signal.SIGSTOP), start=1):
                pid = vs.handle.pid
                meter_before = len(meter_values())
                os.kill(pid, sig)  # SIGSTOP: the process hangs, its heartbeat stops
                await wait_for(lambda n=n: vs.restarts == n, f"restart after {sig.name}", vs)
                await wait_for(lambda pid=pid: vs.worker_ready and vs.handle.pid != pid, "new worker ready", vs)
                # the telemetry source kept producing while the worker was down
                assert len(meter_values()) > meter_before
                counted = vs.counted
                await wait_for(lambda c=counted: vs.counted >= c + 2, f"counting resumed after {sig.name}", vs)
            assert "hung" in vs.last_error
        finally:
            await vs.close()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(scenario())
    values = meter_values()
    assert values == list(range(1, len(values) + 1))  # nothing lost, nothing out of order
    counts = [r for r in readings if r.device == "road" and r.metric in ("vehicles_in", "vehicles_out")]
    assert counts and sum(r.value for r in counts) >= 6  # close() flushed the interval in progress


def raw_tcp_camera(frames, fps: float) -> MjpegServer:
    return MjpegServer(frames, fps, raw=True)


@pytest.mark.parametrize("server", [MjpegServer, RtspServer, raw_tcp_camera], ids=["mjpeg-http", "rtsp", "mjpeg-tcp"])
def test_stream_lost_and_back_is_recovered(server, traffic_clip, tmp_path) -> None:
    path, scene = traffic_clip
    # RTP/JPEG sends sizes in 8-pixel blocks: 480x264, as a camera's sizes always are
    frames = [scene.render(i)[0][:264] for i in range(0, scene.n_frames, 2)]
    readings: list[Reading] = []
    with server(frames, fps=5) as camera:
        cam = CameraConfig(
            name="ipcam", source=camera.url, mode="motion", detect_fps=5, lines=[LINE], stall_timeout=2.0, reconnect_max=1.0, report_interval=3600
        )
        vs = supervisor([cam], str(tmp_path), readings)

        def stats() -> dict:
            return vs.status().get("ipcam", {})

        async def scenario() -> None:
            task = asyncio.create_task(vs.run())
            try:
                await wait_for(lambda: stats().get("frames_analysed", 0) >= 10, "first frames", vs)
                camera.set_down(True)
                await wait_for(lambda: stats().get("state") == "reconnecting", "loss noticed", vs)
                assert "re-opening" in stats()["last_error"] or "cannot open" in stats()["last_error"]
                analysed = stats()["frames_analysed"]
                camera.set_down(False)
                await wait_for(lambda: stats().get("state") == "streaming" and stats().get("frames_analysed", 0) >= analysed + 10, "stream back", vs)
                assert stats()["reconnects"] >= 1 and vs.restarts == 0  # the reader recovered, not a worker restart
                assert camera.connections >= 2
                # a camera that keeps the connection but stops sending: stalled, re-opened after stall_timeout
                connections = camera.connections
                camera.set_stalled(True)
                await wait_for(lambda: camera.connections > connections, "re-opened while stalled", vs)
                camera.set_stalled(False)
                analysed = stats()["frames_analysed"]
                await wait_for(lambda: stats().get("frames_analysed", 0) >= analysed + 10, "frames after the stall", vs)
            finally:
                await vs.close()
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

        asyncio.run(scenario())
