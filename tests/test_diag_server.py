"""The diag socket on a real, in-process Agent (outbox on disk, uplink to a closed port)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from agent.config.loader import load_config_text
from agent.diag.server import DiagServer
from agent.runtime.app import Agent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_agent(tmp_path: Path, extra: str = "") -> Agent:
    text = f"""
[gateway]
id = "gw-unit"
site = "lab"
data_dir = "{tmp_path / "data"}"
[uplink]
broker = "external"
host = "127.0.0.1"
port = {_free_port()}
[diagnostics]
max_request_bytes = 1024
max_clients = 3
{extra}
"""
    return Agent(load_config_text(text), config_path="")


async def ask(path: str, *requests: Any, read: int | None = None) -> list[dict[str, Any]]:
    reader, writer = await asyncio.open_unix_connection(path)
    try:
        for req in requests:
            writer.write(req if isinstance(req, bytes) else (json.dumps(req) + "\n").encode())
        await writer.drain()
        out = []
        for _ in range(read if read is not None else len(requests)):
            line = await asyncio.wait_for(reader.readline(), 10)
            if not line:
                break
            out.append(json.loads(line))
        return out
    finally:
        writer.close()


@pytest.fixture
async def agent(tmp_path: Path) -> Any:
    a = make_agent(tmp_path)
    await a.start()
    try:
        yield a
    finally:
        await a.shutdown()


async def test_socket_is_unix_0660_owned_by_the_agent_and_removed_at_stop(tmp_path: Path) -> None:
    a = make_agent(tmp_path)
    await a.start()
    path = a.diag.path
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
    assert path == str(tmp_path / "data" / "diag.sock")
    await a.shutdown()
    assert not os.path.exists(path)


async def test_status_names_the_unreachable_broker_and_exit_level(agent: Agent) -> None:
    [resp] = await ask(agent.diag.path, {"id": 1, "cmd": "status"})
    assert resp["ok"] and resp["id"] == 1
    st = resp["result"]
    assert st["gateway"] == "gw-unit" and st["pid"] == os.getpid()
    uplink = [f for f in st["findings"] if f["area"] == "uplink"]
    assert uplink and uplink[0]["level"] == "broken" and "mqtt check" in uplink[0]["hint"]
    assert st["health"] == "broken"
    assert st["findings"][0]["level"] == "broken", "worst first"
    assert st["system"]["disk_total"] > 0


async def test_bad_requests_get_errors_and_the_agent_keeps_serving(agent: Agent) -> None:
    path = agent.diag.path
    replies = await ask(
        path,
        b"this is not json\n",
        b"[1, 2, 3]\n",
        {"id": 3, "cmd": "reboot-the-city"},
        {"id": 4, "cmd": "modbus.read", "args": {"bus": "nope", "unit": 1, "address": 0}},
        {"id": 5, "cmd": "readings", "args": {"last": "many"}},
        {"id": 6, "cmd": "hello"},
    )
    codes = [r.get("error", {}).get("code") for r in replies]
    assert codes == ["bad_request", "bad_request", "unknown_command", "not_found", "bad_args", None]
    assert "status" in replies[2]["error"]["hint"], "unknown command lists the known ones"
    assert replies[5]["result"]["gateway"] == "gw-unit"
    # an oversized request closes that connection only
    big = await ask(path, b'{"cmd": "status", "pad": "' + b"x" * 5000 + b'"}\n', read=2)
    assert big[0]["error"]["code"] == "too_large" and len(big) == 1
    # garbage of every kind on fresh connections: each answered or dropped, none hurts the agent
    junk = [
        b"\xff\xfe\x00garbage\n",
        b"[" * 1000 + b"\n",
        b'{"cmd": 5}\n',
        b'{"cmd": "status", "args": [1]}\n',
        b'{"id": {"x": 1}, "cmd": "hello"}\n',
        b"\n\n\n",
    ]
    for line in junk:
        replies = await ask(path, line, {"id": 99, "cmd": "hello"}, read=1 if line.strip() == b"" else 2)
        assert replies[-1]["id"] == 99 and replies[-1]["ok"], "the connection keeps working after junk"
        # errors, or (for a valid command with an unusable id) an answer without the id
        assert all(not r["ok"] or r["id"] is None for r in replies[:-1]), replies
    [again] = await ask(path, {"id": 9, "cmd": "status"})
    assert again["ok"]
    assert agent.diag.errors >= 5


async def test_more_clients_than_allowed_are_told_to_close_one(agent: Agent) -> None:
    held = [await asyncio.open_unix_connection(agent.diag.path) for _ in range(3)]
    try:
        [busy] = await ask(agent.diag.path, {"id": 1, "cmd": "status"})
        assert busy["error"]["code"] == "busy"
    finally:
        for _, w in held:
            w.close()
    await asyncio.sleep(0.05)
    [ok] = await ask(agent.diag.path, {"id": 2, "cmd": "status"})
    assert ok["ok"]


async def test_readings_follow_streams_new_readings_and_stops_when_the_client_leaves(agent: Agent) -> None:
    reader, writer = await asyncio.open_unix_connection(agent.diag.path)
    writer.write(b'{"id": 1, "cmd": "readings", "args": {"follow": true, "last": 0}}\n')
    await writer.drain()
    await asyncio.sleep(0.1)
    agent.emit([agent.clock.reading("probe", "temperature", 21.5, "Cel")])
    line = json.loads(await asyncio.wait_for(reader.readline(), 5))
    assert line["event"]["metric"] == "temperature" and line["event"]["value"] == 21.5 and line["event"]["unit"] == "Cel"
    assert len(agent.tap._subs) == 1
    writer.close()
    for _ in range(50):
        if not agent.tap._subs:
            break
        await asyncio.sleep(0.02)
    assert not agent.tap._subs, "a client that leaves must not stay subscribed"


async def test_stale_socket_is_replaced_and_a_live_one_is_not_stolen(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(data / "diag.sock"))
    stale.close()  # a killed agent leaves its socket file behind
    a = make_agent(tmp_path)
    await a.start()
    try:
        [resp] = await ask(a.diag.path, {"id": 1, "cmd": "hello"})
        assert resp["ok"]
        second = DiagServer(a, a.config.diagnostics)
        await second.start()  # logs and gives up, without raising into the agent
        assert "another agent already serves" in second.error
        [still] = await ask(a.diag.path, {"id": 2, "cmd": "hello"})
        assert still["ok"], "the first server keeps its socket"
    finally:
        await a.shutdown()


async def test_a_diag_socket_problem_never_stops_the_agent(tmp_path: Path) -> None:
    a = make_agent(tmp_path, extra='group = "no-such-group-xyz"')
    await a.start()
    try:
        assert "no-such-group-xyz" in a.diag.error
        assert not os.path.exists(a.diag.path)
        assert "uplink" in a.supervisor.tasks and "outbox" in a.supervisor.tasks, "the agent started everything else"
    finally:
        await a.shutdown()


def test_client_tells_no_agent_from_a_stale_socket_and_talks_to_a_live_one(tmp_path: Path) -> None:
    from agent.diag.client import AgentNotRunning, DiagClient

    with pytest.raises(AgentNotRunning, match="no diag socket"):
        DiagClient(str(tmp_path / "none.sock")).connect()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "stale.sock"))
    stale.close()
    with pytest.raises(AgentNotRunning, match="stale socket"):
        DiagClient(str(tmp_path / "stale.sock")).connect()


async def test_blocking_client_gets_results_and_remote_errors(agent: Agent) -> None:
    from agent.diag.client import DiagClient, RemoteError

    def talk() -> tuple[Any, str]:
        with DiagClient(agent.diag.path) as c:
            hello = c.call("hello")
            try:
                c.call("modbus.scan", bus="none")
            except RemoteError as err:
                return hello, f"{err.code}: {err.hint}"
        return hello, ""

    hello, err = await asyncio.to_thread(talk)
    assert hello["pid"] == os.getpid() and hello["protocol"] == 1
    assert err.startswith("not_found: known buses: none configured")


def test_someone_outside_the_group_is_told_about_permissions_not_a_stopped_agent(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another user")
    from agent.diag.client import DiagClient

    srv = socket.socket(socket.AF_UNIX)
    path = tmp_path / "data" / "diag.sock"
    path.parent.mkdir()
    srv.bind(str(path))
    srv.listen(1)
    os.chmod(path, 0o660)
    os.chmod(tmp_path, 0o755)
    os.chmod(path.parent, 0o750)  # the shipped unit's StateDirectoryMode: others cannot even look inside
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child becomes `nobody` and tries, as a technician outside the group would
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            DiagClient(str(path)).connect()
            msg = "connected"
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            msg = f"{type(exc).__name__} {exc}"
        os.write(write_fd, msg.encode())
        os._exit(0)
    os.close(write_fd)
    os.waitpid(pid, 0)
    out = os.read(read_fd, 4096).decode()
    os.close(read_fd)
    srv.close()
    assert out.startswith("AgentUnreachable") and "join the socket's group" in out, out
