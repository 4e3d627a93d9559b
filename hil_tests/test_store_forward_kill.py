"""SIGKILL the real agent process at random points while the broker goes up and down.

The agent is `edge-agent run` with a fast-polling `system` device; the hub is
`edge-agent hub listen` (its own process, persistent session, SQLite file).
After the last kill the agent is started once more with the device disabled,
so it only drains its outbox. Then every sequence number the gateway ever
committed must be at the hub, with no gap; duplicates (a kill between PUBACK
and delete) are dropped by the hub.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from hil_tests.agent_process import AgentProcess

REPO = Path(__file__).resolve().parents[1]
KILLS = 22


def write_config(path: Path, data_dir: Path, port: int, *, enabled: bool) -> None:
    path.write_text(
        f"""
[gateway]
id = "gw-kill"
site = "lab"
data_dir = "{data_dir}"
log_level = "info"

[clock]
sync_source = "assume"

[storage]
commit_interval = 0.05
sync_interval = 0.5

[uplink]
broker = "external"
host = "127.0.0.1"
port = {port}
reconnect_initial = 0.2
reconnect_max = 0.8
health_interval = 1.0

[[devices]]
name = "sys"
driver = "system"
poll_interval = 0.01
enabled = {"true" if enabled else "false"}
"""
    )


def db_query(path: Path, sql: str) -> list[tuple]:
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []  # not created yet
    finally:
        conn.close()


def wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_sigkill_at_random_points_with_the_broker_going_up_and_down_loses_nothing(mosquitto_factory, tmp_path):
    persist = tmp_path / "mosquitto-db"
    persist.mkdir()
    broker = mosquitto_factory(extra_config=f"persistence true\npersistence_location {persist}/\nmax_queued_messages 100000")
    data_dir, hub_db, log = tmp_path / "data", tmp_path / "hub.db", tmp_path / "agent.log"
    outbox_db = data_dir / "outbox.db"
    run_cfg, drain_cfg = tmp_path / "run.toml", tmp_path / "drain.toml"
    write_config(run_cfg, data_dir, broker.port, enabled=True)
    write_config(drain_cfg, data_dir, broker.port, enabled=False)
    hub = subprocess.Popen(
        [sys.executable, "-m", "agent.cli.main", "hub", "listen", "--port", str(broker.port), "--db", str(hub_db), "--quiet", "--session-expiry", "600"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    rng = random.Random(1234)
    next_seqs: list[int] = []
    saw_will = False
    agent: AgentProcess | None = None
    try:
        assert wait(lambda: hub_db.exists(), 15), "hub listener did not start"
        for i in range(KILLS):
            # start-up (imports) takes seconds on a loaded machine: kill at a random point of the *running* agent,
            # which start() waits for (READY=1 comes with the agent's " running: gateway" line)
            agent = AgentProcess(run_cfg, log_file=log).start(30)
            assert log.read_text().count(" running: gateway") > i, "agent did not start"
            time.sleep(rng.uniform(0.05, 0.8))
            if i % 5 == 2 and broker.running:
                broker.stop()  # the hub side goes away mid-run ...
            elif i % 5 == 4 and not broker.running:
                broker.start()  # ... and comes back in a later run
            time.sleep(rng.uniform(0.0, 0.5))
            agent.kill(10)
            meta = dict(db_query(outbox_db, "SELECT key, value FROM meta"))
            next_seqs.append(int(meta.get("next_seq", 0)))
            if not saw_will and broker.running and i >= 1:
                # the broker publishes the last will when the killed agent's socket dies
                saw_will = wait(
                    lambda: (
                        json.loads((db_query(hub_db, "SELECT payload FROM latest WHERE kind='status'") or [("{}",)])[0][0]).get("reason") == "connection lost"
                    ),
                    5,
                )
        if not broker.running:
            broker.start()
        agent = AgentProcess(drain_cfg, log_file=log).start(30)  # drain only: the device is disabled
        drained = wait(lambda: outbox_db.exists() and db_query(outbox_db, "SELECT count(*) FROM outbox") == [(0,)], 60)
        assert agent.stop(15) == 0, "agent did not stop cleanly on SIGTERM"
        assert drained, f"outbox not drained: {db_query(outbox_db, 'SELECT count(*) FROM outbox')}"
        last = int(dict(db_query(outbox_db, "SELECT key, value FROM meta"))["next_seq"]) - 1
        assert wait(lambda: db_query(hub_db, "SELECT max(seq) FROM seen WHERE gateway='gw-kill'") == [(last,)], 30), "hub did not get the last reading"
    finally:
        if agent is not None:
            agent.kill()  # no-op unless an assertion left it running
        hub.send_signal(signal.SIGTERM)
        out = hub.communicate(timeout=15)[0].decode()
    report = subprocess.run([sys.executable, "-m", "agent.cli.main", "hub", "report", "--db", str(hub_db), "--json"], cwd=REPO, capture_output=True, timeout=60)
    summary = json.loads(report.stdout)["gateways"]["gw-kill"]
    assert report.returncode == 0, report.stdout.decode()
    seqs = [s for (s,) in db_query(hub_db, "SELECT seq FROM seen WHERE gateway='gw-kill' ORDER BY seq")]
    assert seqs == list(range(1, last + 1))  # every committed reading, no gap
    assert summary["gaps"] == [] and summary["first_seq"] == 1 and summary["last_seq"] == last
    assert next_seqs == sorted(next_seqs)  # the sequence never went back after a kill
    assert last > 5 * KILLS  # the runs really produced
    assert saw_will, "no last-will 'connection lost' status after a SIGKILL"
    assert "gw-kill" in out and "no gaps" in out  # the listener's own summary at exit
    assert "Traceback" not in log.read_text()
