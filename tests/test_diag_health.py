"""Findings and exit codes of `diag status` from the agent's status figures."""

from __future__ import annotations

import time

from agent.diag.health import evaluate, exit_code, hint_for

NOW = 1_800_000_000.0


def status(**over: object) -> dict:
    st = {
        "uplink": {"connected": True, "broker": "hub:8883", "last_ack_wall": NOW - 5},
        "outbox": {"depth": 3, "dropped": 0, "oldest_unsent_age": 2.0, "degraded": False},
        "clock": {"synced": True, "source": "kernel"},
        "devices": {
            "meter": {"online": True, "polls": 10, "last_ok": NOW - 1, "last_error": None, "error_counts": {}, "last_readings": {"voltage": {"status": "ok"}}}
        },
        "cameras": {},
        "tasks": {"uplink": {"failing": False}},
        "system": {"cpu_temperature": 55.0, "disk_total": 32e9, "disk_free": 20e9, "memory_total": 1e9, "memory_available": 5e8},
    }
    st.update(over)
    return st


def test_healthy_gateway_exits_0() -> None:
    f = evaluate(status(), NOW)
    assert exit_code(f) == 0 and all(x["level"] == "ok" for x in f)


def test_offline_device_is_broken_with_the_right_hint_and_comes_first() -> None:
    dev = {
        "online": False,
        "polls": 9,
        "last_ok": NOW - 60,
        "last_error": "bad_frame: answer from unit 3, expected 2: check unit_id | last frames: 10:00 rx ...",
        "last_error_at": NOW - 2,
        "error_counts": {"bad_frame": 4},
    }
    f = evaluate(status(devices={"meter": dev}, clock={"synced": False, "source": "kernel"}), NOW)
    assert exit_code(f) == 2
    assert f[0]["subject"] == "meter" and f[0]["level"] == "broken"
    assert "last frames" not in f[0]["summary"], "the flight-recorder tail stays out of the one-screen summary"
    assert "unit_id" in f[0]["hint"]
    assert [x["level"] for x in f] == sorted((x["level"] for x in f), key=["broken", "degraded", "ok"].index)


def test_hints_follow_the_kind_of_error() -> None:
    assert "larger failure.timeout" in hint_for("timeout: no answer from unit 1 within 0.5 s | last frames: rx answer from unit 1, expected 2")
    assert "A/B" in hint_for("bad_frame: CRC error in answer 0503...: check wiring")
    assert "dialout" in hint_for("offline: [Errno 13] Permission denied: '/dev/ttyUSB0'")
    assert "register addresses" in hint_for("exception: exception code 2 (illegal data address)")


def test_degraded_cases_exit_1() -> None:
    for st in (
        status(clock={"synced": False, "source": "kernel"}),
        status(outbox={"depth": 900, "dropped": 12, "dropped_by_reason": {"max_bytes": 12}}),
        status(outbox={"depth": 900, "dropped": 0, "oldest_unsent_age": 3 * 3600}),
        status(uplink={"connected": True, "broker": "hub:8883", "last_ack_wall": NOW, "server_cert_expiry": NOW + 5 * 86400}),
        status(system={"cpu_temperature": 81.0}),
        status(
            devices={
                "m": {"online": True, "polls": 5, "last_ok": NOW - 1, "last_error": "timeout: x", "last_error_at": NOW - 30, "error_counts": {"timeout": 2}}
            }
        ),
    ):
        f = evaluate(st, NOW)
        assert exit_code(f) == 1, [x for x in f if x["level"] != "ok"]


def test_broken_cases_exit_2() -> None:
    for st, subject in (
        (status(uplink={"connected": False, "broker": "hub:8883", "last_error": "cannot reach hub:8883", "last_ack_wall": None}), "uplink"),
        (status(uplink={"connected": True, "broker": "hub:8883", "last_ack_wall": NOW, "server_cert_expiry": NOW - 86400}), "broker certificate"),
        (status(outbox={"depth": 5, "degraded": True, "last_error": "disk I/O error"}), "outbox"),
        (status(tasks={"vision": {"failing": True, "restarts": 4, "last_error": "RuntimeError: x"}}), "vision"),
        (status(system={"disk_total": 32e9, "disk_free": 1e8}), "disk"),
        (status(cameras={"worker": {"alive": False, "restarts": 5, "last_error": "model missing"}}), "vision worker"),
        (status(cameras={"worker": {"alive": True}, "cam-1": {"fps": 0, "error": "cannot open rtsp://cam"}}), "cam-1"),
        (status(cameras={"worker": {"alive": True}, "cam-2": {"fps": 0, "error": "model 'vehicle_tiny' failed to load"}}), "cam-2"),
    ):
        f = evaluate(st, NOW)
        assert exit_code(f) == 2 and f[0]["subject"] == subject, f[0]
        assert f[0]["hint"], "every problem says what to do"


def test_camera_hints_tell_a_missing_model_from_a_dead_camera() -> None:
    dead = evaluate(status(cameras={"c": {"fps": 0, "error": "cannot open rtsp://10.0.0.5/stream"}}), NOW)[0]
    model = evaluate(status(cameras={"c": {"fps": 0, "error": "model 'x' failed to load: manifest.toml is missing"}}), NOW)[0]
    assert "power, cable or stream URL" in dead["hint"] and "model.onnx" in model["hint"]


def test_missing_bin_reference_tells_which_command_records_it() -> None:
    cam = {"fps": 5.0, "frames_analysed": 50, "reference_errors": {"bin-a": "no reference image .../bin-a_empty.png"}}
    f = evaluate(status(cameras={"worker": {"alive": True}, "cam-1": cam}), NOW)[0]
    assert f["level"] == "degraded" and "bin bin-a" in f["summary"]
    assert "diag camera reference cam-1 bin-a empty" in f["hint"]


def test_device_waiting_for_first_poll_is_not_an_alarm() -> None:
    f = evaluate(status(devices={"new": {"online": False, "polls": 0}}), time.time())
    assert [x for x in f if x["subject"] == "new"][0]["level"] == "ok"
