"""The modbus driver against emulated devices, end to end over real sockets and pty pairs.

Readings are collected from what the driver emits (ctx.emit). Every wait is
bounded; nothing asserts how fast anything is (that is bench/bench_modbus.py).
"""

from __future__ import annotations

import asyncio

import pytest

from agent.readings import BAD_FRAME, EXCEPTION, OFFLINE, OK, TIMEOUT
from hil_tests.emulators.modbus_devices import EmulatedDevice, profile_device
from hil_tests.emulators.modbus_harness import TRANSPORTS, ModbusHarness, poll, wait_for

pytestmark = pytest.mark.asyncio

TYPED_VALUES = [
    ("int16", -1234),
    ("uint16", 54321),
    ("int32", -123456789),
    ("uint32", 3_000_000_000),
    ("int64", -(2**40) - 7),
    ("uint64", 2**63 + 5),
    ("float32", -1234.5),
    ("float64", 1234.56789012345),
]
ORDERS = [("big", "big"), ("big", "little"), ("little", "big"), ("little", "little")]


def typed_points_and_device(unit: int) -> tuple[list[dict], EmulatedDevice, dict[str, object]]:
    dev = EmulatedDevice(unit)
    points: list[dict] = []
    expected: dict[str, object] = {}
    address = 0
    for type_name, value in TYPED_VALUES:
        for bo, wo in ORDERS:
            name = f"{type_name}_{bo[0]}{wo[0]}"
            points.append({"name": name, "address": address, "type": type_name, "byte_order": bo, "word_order": wo})
            dev.set_value("holding", address, value, type_name, byte_order=bo, word_order=wo)
            expected[name] = value
            address += 4
    extra = [
        ({"name": "model", "table": "input", "address": 10, "type": "string", "length": 4}, "SDM630"),
        ({"name": "scaled", "table": "input", "address": 20, "type": "int16", "scale": 0.1, "offset": -40}, 23.5),
        ({"name": "alarm", "table": "input", "address": 30, "type": "bool", "bit": 3}, True),
        ({"name": "mode", "table": "input", "address": 30, "type": "bits", "bit": 4, "width": 4}, 9),
        ({"name": "relay", "table": "coil", "address": 5, "type": "bool"}, True),
        ({"name": "door", "table": "discrete", "address": 17, "type": "bool"}, True),
        ({"name": "window", "table": "discrete", "address": 18, "type": "bool"}, False),
    ]
    dev.set_value("input", 10, "SDM630", "string", length=4)
    dev.set_value("input", 20, 23.5, "int16", scale=0.1, offset=-40)
    dev.set_registers("input", 30, [0b1001_1000])
    dev.set_value("coil", 5, True)
    dev.set_value("discrete", 17, True)
    for p, v in extra:
        points.append(p)
        expected[p["name"]] = v
    return points, dev, expected


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_every_type_and_byte_word_order_decoded(transport: str) -> None:
    points, dev, expected = typed_points_and_device(7)
    async with ModbusHarness(transport, [dev]) as h:
        d = h.driver(7, points=points, max_gap=4)
        got = await poll(d)
    assert {m: r.status for m, r in got.items() if r.status != OK} == {}
    for name, value in expected.items():
        if isinstance(value, float):
            assert got[name].value == pytest.approx(value, rel=1e-6), name
        else:
            assert got[name].value == value, name
    assert d.requests < len(points) / 4  # blocks, not one request per point


async def test_shipped_profiles_share_an_rtu_line() -> None:
    devices = [profile_device("eastron_sdm630", 1), profile_device("eastron_sdm120", 2, seed=2), profile_device("xy_md02", 3), profile_device("rs485_noise", 4)]
    async with ModbusHarness("rtu", devices, baudrate=19200) as h:
        drivers = [
            h.driver(1, profile="eastron_sdm630", poll_interval=0.3),
            h.driver(2, profile="eastron_sdm120", poll_interval=0.3),
            h.driver(3, profile="xy_md02", poll_interval=0.3),
            h.driver(4, profile="rs485_noise", poll_interval=0.3),
        ]
        tasks = [asyncio.create_task(d.run()) for d in drivers]
        try:
            assert await wait_for(lambda: all(len(h.readings(d.cfg.name, next(iter(d.points)))) >= 3 for d in drivers), limit=20)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    assert all(r.status == OK for r in h.emitted), [r for r in h.emitted if r.status != OK][:3]
    energy = [r.value for r in h.readings("dev-1", "energy_import")]
    assert energy == sorted(energy) and energy[-1] > energy[0]  # a meter's energy only rises
    assert all(200 < r.value < 260 for r in h.readings("dev-1", "voltage_l2"))
    assert all(-40 <= r.value <= 60 for r in h.readings("dev-3", "temperature"))
    assert all(30 <= r.value <= 120 and r.unit == "dB(A)" for r in h.readings("dev-4", "sound_level"))
    assert all(d.health.online for d in drivers)
    # SDM630: 39 values in 5 block reads per poll
    assert drivers[0].requests <= 5 * drivers[0].health.polls


FAULTS = {
    "silent": ({"silent": True}, TIMEOUT, "no answer from unit 5"),
    "slow": ({"delay": 0.6}, TIMEOUT, "no answer"),
    "exception": ({"exception_code": 6}, EXCEPTION, "exception code 6 (server device busy)"),
    "wrong_unit": ({"wrong_unit": True}, BAD_FRAME, "answer from unit 6, expected 5"),
    "crc": ({"crc_error": True}, BAD_FRAME, "CRC error"),
}


# Every fault on every transport, except CRC errors on Modbus TCP, whose frames carry no CRC.
FAULT_CASES = [(t, f) for t in TRANSPORTS for f in sorted(FAULTS) if not (f == "crc" and t == "tcp")]


@pytest.mark.parametrize(("transport", "fault"), FAULT_CASES)
async def test_fault_reported_as_status_and_recovered(transport: str, fault: str) -> None:
    settings, status, detail = FAULTS[fault]
    dev = profile_device("xy_md02", 5)
    async with ModbusHarness(transport, [dev, profile_device("rs485_noise", 6)]) as h:
        d = h.driver(5, profile="xy_md02")
        assert {r.status for r in (await poll(d)).values()} == {OK}
        for k, v in settings.items():
            setattr(dev, k, v)
        got = await poll(d)
        assert {r.status for r in got.values()} == {status}
        assert detail in got["temperature"].detail
        assert got["temperature"].value is None
        assert d.health.online == (status == EXCEPTION)  # an exception is an answer
        dev.clear_faults()
        await asyncio.sleep(0.7 if fault == "slow" else 0)  # let a late answer drain off the line
        got = await poll(d)
        assert {r.status for r in got.values()} == {OK}
        assert d.health.online
        # the neighbour on the same bus was never affected
        assert (await poll(h.driver(6, profile="rs485_noise")))["sound_level"].status == OK


async def test_slow_answer_within_timeout_is_fine() -> None:
    dev = profile_device("xy_md02", 5)
    dev.delay = 0.1
    async with ModbusHarness("rtu", [dev]) as h:
        got = await poll(h.driver(5, profile="xy_md02", failure={"timeout": 0.5}))
    assert {r.status for r in got.values()} == {OK}


@pytest.mark.parametrize("transport", ["tcp", "rtu_over_tcp"])
async def test_dropped_connection_reconnects_at_once(transport: str) -> None:
    async with ModbusHarness(transport, [profile_device("xy_md02", 5)]) as h:
        d = h.driver(5, profile="xy_md02", failure={"retries": 1})
        assert {r.status for r in (await poll(d)).values()} == {OK}
        assert h.emulator.drop_connections() == 1
        await asyncio.sleep(0.05)
        got = await poll(d)
        assert {r.status for r in got.values()} == {OK}  # reconnected, no poll lost
        assert sum(line.endswith("-- connected") for line in h.bus.frames(50)) == 2
        assert h.bus.health.online and d.health.error_counts == {}


async def test_tcp_server_gone_then_back_is_polled_again() -> None:
    dev = profile_device("xy_md02", 5)
    async with ModbusHarness("tcp", [dev]) as h:
        d = h.driver(5, profile="xy_md02", poll_interval=0.1)
        task = asyncio.create_task(d.run())
        try:
            assert await wait_for(lambda: len(h.readings("dev-5", "temperature")) >= 1)
            await h.emulator.stop()
            assert await wait_for(lambda: h.readings("dev-5", "temperature")[-1].status == OFFLINE)
            assert not d.health.online and not h.bus.health.online
            await h.emulator.start()  # same port
            assert await wait_for(lambda: h.readings("dev-5", "temperature")[-1].status == OK)
            assert d.health.online and h.bus.health.online
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_silent_device_polled_again_when_it_comes_back() -> None:
    dev = profile_device("rs485_noise", 9)
    async with ModbusHarness("rtu", [dev]) as h:
        d = h.driver(9, profile="rs485_noise", poll_interval=0.1, failure={"timeout": 0.1, "backoff_initial": 0.1, "backoff_max": 0.4})
        task = asyncio.create_task(d.run())
        try:
            assert await wait_for(lambda: len(h.readings("dev-9", "sound_level")) >= 1)
            dev.silent = True
            assert await wait_for(lambda: sum(r.status == TIMEOUT for r in h.readings("dev-9", "sound_level")) >= 4)
            dev.silent = False
            assert await wait_for(lambda: h.readings("dev-9", "sound_level")[-1].status == OK)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert d.health.online and d.health.error_counts == {TIMEOUT: d.health.error_counts[TIMEOUT]}
    # retries back off but never wait longer than the cap
    assert all(d.retry_delay() <= 0.4 for _ in range(20))


async def test_illegal_address_block_is_split_and_remembered() -> None:
    dev = EmulatedDevice(3, strict=True)  # unmapped registers answer exception 2
    for a in (0, 2, 6):
        dev.set_value("holding", a, float(a), "float32")
    async with ModbusHarness("tcp", [dev]) as h:
        d = h.driver(3, points=[{"name": f"v{a}", "address": a, "type": "float32"} for a in (0, 2, 6)], max_gap=10)
        first = await poll(d)
        after_first = dev.requests
        second = await poll(d)
    assert {m: r.value for m, r in first.items()} == {"v0": 0.0, "v2": 2.0, "v6": 6.0}
    assert all(r.status == OK for r in second.values())
    assert after_first == 3  # the 8-register block was rejected, then read as 0..3 and 6..7
    assert dev.requests - after_first == 2  # later polls go straight to the working shape


async def test_forbidden_range_is_never_read() -> None:
    dev = EmulatedDevice(3)
    dev.forbidden = [("holding", 4, 5)]
    async with ModbusHarness("rtu", [dev]) as h:
        d = h.driver(
            3,
            points=[
                {"name": "a", "address": 0, "type": "float32"},
                {"name": "b", "address": 2, "type": "float32"},
                {"name": "c", "address": 6, "type": "float32"},
            ],
            forbidden=[{"table": "holding", "start": 4, "end": 5}],
        )
        got = await poll(d)
    assert all(r.status == OK for r in got.values())
    assert dev.reads == [("holding", 0, 4), ("holding", 6, 2)]


@pytest.mark.parametrize("transport", ["tcp", "rtu"])
async def test_write_and_read_back_points(transport: str) -> None:
    dev = EmulatedDevice(2)
    dev.set_registers("holding", 20, [0b0001])
    points = [
        {"name": "setpoint", "address": 10, "type": "float32", "word_order": "little", "scale": 0.5, "writable": True},
        {"name": "fan", "address": 20, "type": "bool", "bit": 2, "writable": True},
        {"name": "relay", "table": "coil", "address": 3, "type": "bool", "writable": True},
        {"name": "limit", "address": 30, "type": "int16"},
    ]
    async with ModbusHarness(transport, [dev]) as h:
        d = h.driver(2, points=points)
        await d.write_point("setpoint", 21.5)
        await d.write_point("fan", True)
        await d.write_point("relay", True)
        assert (await d.read_point("setpoint")).value == pytest.approx(21.5)
        assert (await d.read_point("fan")).value is True
        assert (await d.read_point("relay")).value is True
        with pytest.raises(ValueError, match="not writable"):
            await d.write_point("limit", 3)
        with pytest.raises(KeyError, match="no point 'nope'"):
            await d.read_point("nope")
    assert dev.tables["holding"][20] == 0b0101  # the other bit of the register was kept
    assert dev.tables["coil"][3] == 1


async def test_missing_unit_id_times_out_with_a_hint() -> None:
    async with ModbusHarness("rtu", [profile_device("xy_md02", 1)]) as h:
        got = await poll(h.driver(42, profile="xy_md02"))
    assert got["temperature"].status == TIMEOUT
    assert "check unit_id" in got["temperature"].detail


async def test_rtu_inter_frame_gap_kept_at_9600_baud() -> None:
    devices = [profile_device("xy_md02", 1), profile_device("rs485_noise", 2)]
    async with ModbusHarness("rtu", devices, baudrate=9600, timing=True) as h:
        a, b = h.driver(1, profile="xy_md02"), h.driver(2, profile="rs485_noise")
        for _ in range(5):
            results = await asyncio.gather(poll(a), poll(b))
            assert all(r.status == OK for res in results for r in res.values())
        responder = h.emulator.responder
    assert responder.answered == 10
    assert responder.gap_violations == 0


async def test_points_read_at_their_own_intervals_in_one_loop() -> None:
    dev = EmulatedDevice(4)
    async with ModbusHarness("tcp", [dev]) as h:
        d = h.driver(4, poll_interval=0.05, points=[{"name": "fast", "address": 0}, {"name": "slow", "address": 50, "poll_interval": 1.0}])
        task = asyncio.create_task(d.run())
        try:
            assert await wait_for(lambda: len(h.readings("dev-4", "fast")) >= 12)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    fast, slow = len(h.readings("dev-4", "fast")), len(h.readings("dev-4", "slow"))
    assert 1 <= slow <= fast // 3
    # only the due points are read: most requests cover the fast register alone
    assert dev.reads.count(("holding", 0, 1)) >= fast - slow


async def test_unit_missing_behind_tcp_gateway_is_an_exception_status() -> None:
    async with ModbusHarness("tcp", [profile_device("xy_md02", 1)]) as h:
        got = await poll(h.driver(33, profile="xy_md02"))
    assert got["temperature"].status == EXCEPTION
    assert "code 11" in got["temperature"].detail
