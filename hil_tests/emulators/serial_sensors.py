"""Serial sensor emulators: real frames written into pseudo-terminals.

Each emulator opens a pty pair, puts it in raw mode and writes the frames its
sensor sends, at the sensor's rate, with plausible changing values, into the
master side; the driver under test opens the slave side like a USB adapter.
`port` is a symlink to the current slave: `unplug()` closes the pty (the
reader sees the device vanish: read errors, then a missing path) and
`replug()` opens a fresh pty and re-points the symlink, as udev does with
/dev/serial/by-id/ names when an adapter comes back.

Faults, as attributes (probabilities per frame, for the demo) or one-shot
counters (exact, for tests): noise bytes between frames, frames cut short,
corrupted checksums, raw bytes. Every good frame's values are appended to
`sent` so tests can compare what the driver decoded with what was sent.

Usable from sync code (a thread per emulator): start(), stop(), or as a
context manager.
"""

from __future__ import annotations

import math
import os
import random
import tempfile
import threading
import time
import tty
from typing import Any

from drivers.codecs import maxbotix, nmea, pms5003, sds011

# Noise bytes avoid every codec's frame markers so a test can count exactly
# which faults it injected; the fuzz tests cover noise that contains them.
_NOISE_ALPHABET = bytes(b for b in range(256) if b not in b"\xaa\xab\x42\x4d$R\r\n")


class SerialSensorEmulator:
    """Base: subclasses implement make_frame() -> (bytes, values) and corrupt(frame)."""

    interval = 1.0
    name = "sensor"

    def __init__(self, port: str | None = None, *, interval: float | None = None, seed: int = 1) -> None:
        self._dir = None
        if port is None:
            self._dir = tempfile.mkdtemp(prefix=f"emu-{self.name}-")
            port = os.path.join(self._dir, "tty")
        self.port = port
        if interval is not None:
            self.interval = interval
        self.rng = random.Random(seed)
        # probabilities per frame (demo)
        self.noise_probability = 0.0
        self.partial_probability = 0.0
        self.corrupt_probability = 0.0
        # exact one-shot faults (tests)
        self._noise_next = 0
        self._partial_next = 0
        self._corrupt_next = 0
        self._raw: list[bytes] = []
        self.sent: list[dict[str, Any]] = []
        self.counts = {"frames": 0, "noise": 0, "partial": 0, "corrupt": 0, "dropped_bytes": 0}
        self.paused = False
        self._lock = threading.Lock()
        self._master: int | None = None
        self._slave: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.t = 0  # frame counter driving the value curves

    # -- pty handling --------------------------------------------------------------

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        os.set_blocking(master, False)
        tmp = self.port + ".new"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.port)
        self._master, self._slave = master, slave

    def _close_pty(self) -> None:
        if os.path.lexists(self.port):
            os.unlink(self.port)
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None

    def unplug(self) -> None:
        """Pull the adapter: the pty closes and the port path disappears."""
        with self._lock:
            self._close_pty()

    def replug(self) -> None:
        """Plug it back: a new pty behind the same port path."""
        with self._lock:
            if self._master is None:
                self._open_pty()

    @property
    def plugged(self) -> bool:
        return self._master is not None

    # -- faults ----------------------------------------------------------------------

    def noise_next(self, n: int = 1) -> None:
        """Put noise bytes before each of the next n frames."""
        with self._lock:
            self._noise_next += n

    def partial_next(self, n: int = 1) -> None:
        """Cut each of the next n frames short (the frame after it is whole)."""
        with self._lock:
            self._partial_next += n

    def corrupt_next(self, n: int = 1) -> None:
        """Send the next n frames with a wrong checksum (MaxBotix: a bad digit)."""
        with self._lock:
            self._corrupt_next += n

    def send_raw(self, data: bytes) -> None:
        with self._lock:
            self._raw.append(data)

    # -- running -----------------------------------------------------------------------

    def start(self) -> SerialSensorEmulator:
        self._open_pty()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"emu-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self._lock:
            self._close_pty()
        if self._dir is not None:
            try:
                os.rmdir(self._dir)
            except OSError:
                pass

    def __enter__(self) -> SerialSensorEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            if not self.paused:
                with self._lock:
                    if self._master is not None:
                        self._write(self._next_bytes())
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _write(self, data: bytes) -> None:
        assert self._master is not None
        try:
            written = os.write(self._master, data)
        except BlockingIOError:
            written = 0  # nobody reading and the buffer is full: a real sensor loses bytes too
        except OSError:
            written = 0
        self.counts["dropped_bytes"] += len(data) - written

    def _take(self, attr: str, probability: float) -> bool:
        if getattr(self, attr) > 0:
            setattr(self, attr, getattr(self, attr) - 1)
            return True
        return probability > 0 and self.rng.random() < probability

    def _next_bytes(self) -> bytes:
        out = b"".join(self._raw)
        self._raw = []
        if self._take("_noise_next", self.noise_probability):
            out += bytes(self.rng.choice(_NOISE_ALPHABET) for _ in range(self.rng.randint(1, 12)))
            self.counts["noise"] += 1
        if self._take("_partial_next", self.partial_probability):
            frame, _ = self.make_frame()
            # at least two bytes: a lone first byte is just noise to any reader
            out += frame[: self.rng.randint(2, len(frame) - 1)]
            self.counts["partial"] += 1
        frame, values = self.make_frame()
        self.t += 1
        if self._take("_corrupt_next", self.corrupt_probability):
            out += self.corrupt(frame)
            self.counts["corrupt"] += 1
        else:
            out += frame
            self.sent.append(values)
            self.counts["frames"] += 1
        return out

    # -- what a sensor sends ----------------------------------------------------------

    def make_frame(self) -> tuple[bytes, dict[str, Any]]:
        raise NotImplementedError

    def corrupt(self, frame: bytes) -> bytes:
        """Flip the last checksum bit, the way a bad line does."""
        return frame[:-2] + bytes([frame[-2] ^ 0x01]) + frame[-1:]


def _wave(t: int, base: float, amplitude: float, period: float, rng: random.Random, jitter: float) -> float:
    return max(0.0, base + amplitude * math.sin(2 * math.pi * t / period) + rng.uniform(-jitter, jitter))


class Sds011Emulator(SerialSensorEmulator):
    """Nova SDS011: one 10-byte frame a second, PM2.5 and PM10 in 0.1 ug/m3."""

    interval = 1.0
    name = "sds011"
    device_id = 0x60A1

    def make_frame(self) -> tuple[bytes, dict[str, Any]]:
        pm2_5 = round(_wave(self.t, 12.0, 6.0, 120, self.rng, 1.5), 1)
        pm10 = round(pm2_5 * 1.6 + self.rng.uniform(0, 3), 1)
        return sds011.encode_frame(pm2_5, pm10, self.device_id), {"pm2_5": pm2_5, "pm10": pm10}


class Pms5003Emulator(SerialSensorEmulator):
    """Plantower PMS5003: a 32-byte frame about every second in active mode."""

    interval = 1.0
    name = "pms5003"

    def make_frame(self) -> tuple[bytes, dict[str, Any]]:
        pm2_5 = int(_wave(self.t, 14, 8, 90, self.rng, 2))
        values = {
            "pm1_0": max(0, pm2_5 - 4),
            "pm2_5": pm2_5,
            "pm10": pm2_5 + 5,
            "count_0_3": 150 * pm2_5 + 300,
            "count_0_5": 45 * pm2_5 + 90,
            "count_1_0": 8 * pm2_5,
            "count_2_5": pm2_5 // 2,
            "count_5_0": pm2_5 // 6,
            "count_10": pm2_5 // 12,
        }
        words = dict(values)
        # CF=1 reads the same as atmospheric up to ~30 ug/m3 and higher above
        words.update({"pm1_0_cf1": values["pm1_0"], "pm2_5_cf1": values["pm2_5"], "pm10_cf1": values["pm10"]})
        return pms5003.encode_frame(words), values

    def corrupt(self, frame: bytes) -> bytes:
        return frame[:-1] + bytes([frame[-1] ^ 0x01])


class NmeaGpsEmulator(SerialSensorEmulator):
    """A GPS receiver: GGA, RMC and GSV once a second, position wandering a few metres.

    `fix` switches between a 3D fix and none; `clock_offset` shifts the time
    it sends (a test of the time-source checks).
    """

    interval = 1.0
    name = "gps"

    def __init__(self, port: str | None = None, *, lat: float = 48.1173, lon: float = 11.5167, **kw: Any) -> None:
        super().__init__(port, **kw)
        self.lat, self.lon = lat, lon
        self.fix = True
        self.clock_offset = 0.0
        self.altitude = 545.4

    @staticmethod
    def _ddmm(value: float, width: int) -> tuple[str, str]:
        hemi = ("N", "S") if width == 2 else ("E", "W")
        v = abs(value)
        degrees = int(v)
        minutes = (v - degrees) * 60
        return f"{degrees:0{width}d}{minutes:07.4f}", hemi[0] if value >= 0 else hemi[1]

    def make_frame(self) -> tuple[bytes, dict[str, Any]]:
        now = time.time() + self.clock_offset
        tm = time.gmtime(now)
        hms = f"{tm.tm_hour:02d}{tm.tm_min:02d}{tm.tm_sec:02d}.{int(now % 1 * 100):02d}"
        date = f"{tm.tm_mday:02d}{tm.tm_mon:02d}{tm.tm_year % 100:02d}"
        lat = self.lat + 0.00002 * math.sin(self.t / 30) + self.rng.uniform(-1e-5, 1e-5)
        lon = self.lon + 0.00002 * math.cos(self.t / 30) + self.rng.uniform(-1e-5, 1e-5)
        lat_s, ns = self._ddmm(lat, 2)
        lon_s, ew = self._ddmm(lon, 3)
        sats = 7 + self.t % 4
        hdop = round(0.8 + 0.1 * (self.t % 5), 1)
        alt = round(self.altitude + self.rng.uniform(-1, 1), 1)
        if self.fix:
            gga = f"GPGGA,{hms},{lat_s},{ns},{lon_s},{ew},1,{sats:02d},{hdop},{alt},M,46.9,M,,"
            rmc = f"GPRMC,{hms},A,{lat_s},{ns},{lon_s},{ew},0.02,0.0,{date},,,A"
            # What the driver will decode: the rounded text, not the float
            values = {
                "latitude": (1 if ns == "N" else -1) * (int(lat_s[:2]) + float(lat_s[2:]) / 60),
                "longitude": (1 if ew == "E" else -1) * (int(lon_s[:3]) + float(lon_s[3:]) / 60),
                "altitude": alt,
                "satellites": sats,
                "hdop": hdop,
                "epoch": now,
            }
        else:
            gga = f"GPGGA,{hms},,,,,0,{sats % 3:02d},99.99,,,,,,"
            rmc = f"GPRMC,{hms},V,,,,,,,{date},,,N"
            values = {"latitude": None, "longitude": None, "satellites": sats % 3, "epoch": now}
        gsv = "GPGSV,1,1,04,03,03,111,00,04,15,270,00,06,01,010,00,13,06,292,00"
        frame = nmea.build_sentence(gga) + nmea.build_sentence(rmc) + nmea.build_sentence(gsv)
        return frame, values

    def corrupt(self, frame: bytes) -> bytes:
        # Damage the GGA's checksum digit; RMC and GSV stay intact.
        end = frame.index(b"\r\n")
        digit = frame[end - 1 : end]
        bad = b"0" if digit != b"0" else b"1"
        return frame[: end - 1] + bad + frame[end:]


class MaxbotixEmulator(SerialSensorEmulator):
    """A MaxBotix HRXL (mm, `R1234\\r`, ~6.7 Hz) or inch model (`R123\\r`) over a filling bin."""

    interval = 0.15
    name = "maxbotix"

    def __init__(self, port: str | None = None, *, unit: str = "mm", distance_mm: float = 1200.0, **kw: Any) -> None:
        super().__init__(port, **kw)
        self.unit = unit
        self.distance_mm = distance_mm  # where the target is; tests and the demo move it
        self.fill_rate_mm = 0.0  # per frame: the rubbish rising

    def make_frame(self) -> tuple[bytes, dict[str, Any]]:
        self.distance_mm = max(300.0, self.distance_mm - self.fill_rate_mm)
        if self.unit == "mm":
            value = int(round(self.distance_mm))
            return maxbotix.encode_frame(value, 4), {"range": value, "distance_mm": float(value)}
        value = int(round(self.distance_mm / maxbotix.UNIT_TO_MM[self.unit]))
        return maxbotix.encode_frame(value, 3), {"range": value, "distance_mm": value * maxbotix.UNIT_TO_MM[self.unit]}

    def corrupt(self, frame: bytes) -> bytes:
        # No checksum on this protocol: a damaged digit is what a bad line gives.
        return frame[:2] + b"?" + frame[3:]


EMULATORS = {
    "sds011": Sds011Emulator,
    "pms5003": Pms5003Emulator,
    "nmea_gps": NmeaGpsEmulator,
    "ultrasonic_bin": MaxbotixEmulator,
}
