"""A fleet of emulated Modbus TCP meters in a process of their own, for load tests.

Each meter is its own endpoint (one connection each, as separate cabinets'
meters would be) holding 25 uint16 and 25 float32 points in 75 holding
registers: one block read per poll with the profile written by
`write_profile`. The overload test and the end-to-end benchmark share it.

    python -m hil_tests.emulators.modbus_fleet --devices 80   # prints the ports as JSON, serves until killed
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from pathlib import Path

U16, F32 = 25, 25  # 75 holding registers: one block read per poll
ROOT = Path(__file__).resolve().parents[2]


async def _serve(devices: int) -> None:
    from hil_tests.emulators.modbus_devices import EmulatedDevice
    from hil_tests.emulators.modbus_servers import TcpEmulator

    emus = []
    for i in range(devices):
        dev = EmulatedDevice(1)
        for a in range(U16):
            dev.set_value("holding", a, (i * 100 + a) % 65536, "uint16")
        for k in range(F32):
            dev.set_value("holding", U16 + 2 * k, 20.0 + k + i / 10, "float32")
        for attempt in range(5):  # a free port may be taken by another process before we bind it
            emu = TcpEmulator([dev], size=128)
            try:
                await emu.start()
                break
            except RuntimeError:
                if attempt == 4:
                    raise
        emus.append(emu)
    print(json.dumps([e.port for e in emus]), flush=True)
    await asyncio.Event().wait()


def start_fleet(devices: int) -> tuple[subprocess.Popen[str], list[int]]:
    """Start the fleet process; returns it and the meters' ports (kill it to stop)."""
    proc = subprocess.Popen([sys.executable, "-m", "hil_tests.emulators.modbus_fleet", "--devices", str(devices)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError("the Modbus emulators did not start (see their output above)")
    return proc, json.loads(line)


def write_profile(path: Path, name: str = "meter50") -> None:
    """The register map of a fleet meter, as a profile file."""
    lines = [f'[profile]\nname = "{name}"\nmax_gap = 0\n']
    lines += [f'[[points]]\nname = "u{a}"\ntable = "holding"\naddress = {a}\ntype = "uint16"\n' for a in range(U16)]
    lines += [f'[[points]]\nname = "f{k}"\ntable = "holding"\naddress = {U16 + 2 * k}\ntype = "float32"\n' for k in range(F32)]
    path.write_text("\n".join(lines))


def fleet_devices_toml(ports: list[int], profile: Path, poll_interval: float, *, timeout: float, prefix: str = "meter") -> str:
    """[[buses]] and [[devices]] entries for the fleet, one bus per meter."""
    parts = []
    for i, port in enumerate(ports):
        parts.append(f'[[buses]]\nname = "lan-{i}"\ntype = "modbus_tcp"\nhost = "127.0.0.1"\nport = {port}\n')
        parts.append(
            f'[[devices]]\nname = "{prefix}-{i:02d}"\ndriver = "modbus"\nbus = "lan-{i}"\nunit_id = 1\nprofile = "{profile}"\n'
            f"poll_interval = {poll_interval}\n[devices.failure]\ntimeout = {timeout}\nretries = 0\n"
        )
    return "\n".join(parts)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, required=True)
    asyncio.run(_serve(ap.parse_args().devices))
