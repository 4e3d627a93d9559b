"""Serial sensor codec throughput under CPython and MicroPython, clean and noisy lines.

Run: PYTHONPATH=. python bench/bench_codecs.py [--write]

The same measuring code (below, MicroPython-compatible) runs in both
interpreters; the results are ratios within one run: MicroPython vs CPython,
and a line with 10 % noise bytes vs a clean one. Absolute figures depend on
the host; the CPU share at each sensor's real frame rate is what matters on
a gateway.
"""

import sys

try:
    from time import ticks_diff, ticks_us  # MicroPython

    def now_us():
        return ticks_us()

    def elapsed_us(t0):
        return ticks_diff(ticks_us(), t0)

except ImportError:
    from time import perf_counter

    def now_us():
        return perf_counter() * 1e6

    def elapsed_us(t0):
        return perf_counter() * 1e6 - t0


CHUNK = 64
FRAMES = 2000
REPEATS = 3


def _streams():
    from drivers.codecs import maxbotix, nmea, pms5003, sds011

    sentences = nmea.build_sentence("GPGGA,092725.00,4717.11399,N,00833.91590,E,1,08,1.01,499.6,M,48.0,M,,") + nmea.build_sentence(
        "GPRMC,083559.00,A,4717.11437,N,00833.91522,E,0.004,77.52,091202,,,A"
    )
    return [
        # name, scan, one unit of stream, frames in it, frames per second a real sensor sends
        ("sds011", sds011.scan, sds011.encode_frame(12.3, 45.6), 1, 1.0),
        ("pms5003", pms5003.scan, pms5003.encode_frame({"pm2_5": 18, "pm10": 21, "count_0_3": 2118}), 1, 1.0),
        ("nmea", nmea.scan, sentences, 2, 2.0),
        ("maxbotix", maxbotix.scan, maxbotix.encode_frame(1234), 1, 6.7),
    ]


def _noisy(frame, n, seed):
    # 10 % noise bytes, from a fixed LCG so both interpreters see the same stream
    out = bytearray()
    x = seed
    for _ in range(n):
        out += frame
        for _ in range(len(frame) // 10):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            out.append(x & 0xFF)
    return bytes(out)


def _run(scan, data):
    best = None
    for _ in range(REPEATS):
        rest = b""
        frames = 0
        t0 = now_us()
        for k in range(0, len(data), CHUNK):
            events, rest = scan(rest + data[k : k + CHUNK])
            for ev in events:
                if ev[0] == "frame":
                    frames += 1
        took = elapsed_us(t0)
        # best of a few: the host is shared, and interference only ever adds time
        if best is None or took < best:
            best = took
    return frames, best


def measure():
    """One line per codec: name, frames/s clean, frames/s noisy, frames decoded noisy, per-second rate."""
    for name, scan, frame, per, rate in _streams():
        n = FRAMES // per
        clean_frames, clean_us = _run(scan, frame * n)
        noisy_frames, noisy_us = _run(scan, _noisy(frame, n, 7))
        print("RESULT", name, clean_frames * 1e6 / clean_us, noisy_frames * 1e6 / noisy_us, noisy_frames, n * per, rate)


def main():
    import argparse
    import os
    import platform
    import subprocess

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="replace the Serial codecs section of docs/benchmarks.md")
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    results = {}
    env = dict(os.environ)
    env["PYTHONPATH"] = root
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--inner"], capture_output=True, text=True, env=env, check=True)
    results["CPython"] = _parse(out.stdout)
    mp = os.path.join(os.path.dirname(sys.executable), "micropython")
    env["MICROPYPATH"] = ".frozen:" + root
    out = subprocess.run([mp, "-X", "heapsize=16M", os.path.abspath(__file__), "--inner"], capture_output=True, text=True, env=env, check=True)
    results["MicroPython"] = _parse(out.stdout)
    load = os.getloadavg()[0]
    lines = [
        "## Serial codecs",
        "",
        "Command: `PYTHONPATH=. python bench/bench_codecs.py --write`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, MicroPython unix port; load average {load:.1f} at start; one run.",
        "",
        f"Stream scanning in {CHUNK}-byte reads, {FRAMES} frames per codec (NMEA: sentences, GGA + RMC), best of {REPEATS}; noisy = 10 % random bytes between frames.",
        "",
        "| codec | CPython frames/s clean | noisy/clean | MicroPython frames/s clean | MicroPython/CPython | CPython CPU at the sensor's rate | frames kept with noise |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, (clean, noisy, kept, sent, rate) in results["CPython"].items():
        mp_clean = results["MicroPython"][name][0]
        lines.append(
            f"| {name} | {clean:,.0f} | {noisy / clean:.2f} | {mp_clean:,.0f} | {mp_clean / clean:.2f} | {100 * rate / clean:.4f} % ({rate:g}/s) | {kept}/{sent} |"
        )
    lines += [
        "",
        "At real sensor rates (1-7 frames/s) decoding costs well under 0.1 % of one core. On a shared, loaded host the noisy/clean and MicroPython/CPython ratios scatter by a factor of 2 or more between runs: read them as orders of magnitude (MicroPython within a few times CPython; noise no worse than a few times slower). `frames kept` counts frames decoded out of those sent in the noisy stream (noise can only swallow a frame by forming a false header with a matching checksum).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        path = os.path.join(root, "docs", "benchmarks.md")
        with open(path, encoding="utf-8") as fh:
            doc = fh.read()
        start = doc.find("## Serial codecs")
        if start >= 0:
            end = doc.find("\n## ", start + 1)
            doc = doc[:start] + text + (doc[end + 1 :] if end >= 0 else "")
        else:
            doc = doc.rstrip("\n") + "\n\n" + text
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(doc)


def _parse(stdout):
    out = {}
    for line in stdout.splitlines():
        parts = line.split()
        if parts and parts[0] == "RESULT":
            out[parts[1]] = (float(parts[2]), float(parts[3]), int(parts[4]), int(parts[5]), float(parts[6]))
    return out


if __name__ == "__main__":
    if "--inner" in sys.argv:
        measure()
    else:
        main()
