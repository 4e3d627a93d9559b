"""Write-and-verify throughput of edge-flash against dd, same image, same target, same block size.

    python bench/bench_flash.py [--size-mb 1024] [--block-size 4M] [--rounds 3] [--dir DIR]

Builds a Raspberry-Pi-OS-like image (FAT32 boot partition + data partition;
needs sfdisk, mkfs.vfat, mtools), warms it into the page cache, then in each
round, in alternating order:
  dd       dd if=IMG of=T1 bs=BS conv=fsync; drop T1's cached pages;
           dd if=T1 bs=BS | sha256sum            (write, then read back and hash)
  flash    edge-flash write --image IMG --target T2 --block-size BS
           (validates config, makes a key and certificate, customises the boot
           partition, writes, syncs, drops cached pages, reads back and hashes)
Times are wall clock for the whole command; the ratio is flash / dd throughput
per round, and the median over rounds is reported (the machine is shared, so
only ratios measured in one run are meaningful).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from flash_support import Kit, build_image  # noqa: E402

from tools.flashing.cli import block_size, parser  # noqa: E402
from tools.flashing.errors import FlashError  # noqa: E402
from tools.flashing.progress import SilentProgress  # noqa: E402
from tools.flashing.provision import Context, Job, flash_one  # noqa: E402


def drop_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def run_dd(image: Path, target: Path, bs: int) -> tuple[float, float]:
    target.unlink(missing_ok=True)
    start = time.monotonic()
    subprocess.run(["dd", f"if={image}", f"of={target}", f"bs={bs}", "conv=fsync", "status=none"], check=True)
    wrote = time.monotonic()
    drop_cache(target)
    subprocess.run(f"dd if={target} bs={bs} status=none | sha256sum > /dev/null", shell=True, check=True)
    return wrote - start, time.monotonic() - start


def run_flash(kit: Kit, image: Path, target: Path, bs: int, inventory: Path) -> tuple[float, float]:
    """(seconds of the write phase incl. fsync, seconds of the whole command incl. verification)."""
    target.unlink(missing_ok=True)
    argv = kit.args(target, "--block-size", str(bs), "--replace", image=image) + ["--inventory", str(inventory)]
    args = parser().parse_args(argv)
    sink = io.StringIO()
    start = time.monotonic()
    try:
        row = flash_one(Context(args, out=sink, progress=SilentProgress()), Job(args.config, args.target))
    except FlashError as exc:
        raise SystemExit(f"edge-flash failed: {exc.render()}\n{sink.getvalue()}") from exc
    return row["write_seconds"], time.monotonic() - start


def main_bench() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size-mb", type=int, default=1024, help="image size (boot partition 300 MiB + data)")
    p.add_argument("--block-size", type=block_size, default=4 << 20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--dir", help="where image and targets go (default: a temp dir under /tmp)")
    args = p.parse_args()
    if args.size_mb < 400:
        p.error("--size-mb must be at least 400 (the boot partition alone is 300 MiB)")
    work = Path(args.dir or tempfile.mkdtemp(prefix="bench-flash-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        run_rounds(args, work)
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)


def run_rounds(args: argparse.Namespace, work: Path) -> None:
    kit = Kit(work, "trixie")
    image = build_image(work / "bench.img", "trixie", boot_mb=300, root_mb=args.size_mb - 301)
    size = image.stat().st_size
    with open(image, "rb") as f:  # both contenders read the source from the page cache
        while f.read(8 << 20):
            pass
    ratios, ratios_write, dd_rates, flash_rates, dd_write_rates, flash_write_rates = [], [], [], [], [], []
    for round_no in range(args.rounds):
        order = ("dd", "flash") if round_no % 2 == 0 else ("flash", "dd")
        results: dict[str, float] = {}
        for who in order:
            if who == "dd":
                dd_write, dd_total = run_dd(image, work / "dd.img", args.block_size)
                results["dd"], results["dd_write"] = dd_total, dd_write
            else:
                results["flash_write"], results["flash"] = run_flash(kit, image, work / "flash.img", args.block_size, work / f"inv{round_no}")
        ratios.append(results["dd"] / results["flash"])
        ratios_write.append(results["dd_write"] / results["flash_write"])
        dd_rates.append(size / results["dd"] / 1e6)
        flash_rates.append(size / results["flash"] / 1e6)
        dd_write_rates.append(size / results["dd_write"] / 1e6)
        flash_write_rates.append(size / results["flash_write"] / 1e6)
        print(
            f"round {round_no + 1}: write+verify dd {dd_rates[-1]:6.1f} MB/s, edge-flash {flash_rates[-1]:6.1f} MB/s, "
            f"ratio {ratios[-1]:.2f}; write phase dd {dd_write_rates[-1]:6.1f} MB/s, edge-flash "
            f"{flash_write_rates[-1]:6.1f} MB/s, ratio {ratios_write[-1]:.2f}",
            flush=True,
        )
    print(
        f"\nimage {size / 1e6:.0f} MB, block size {args.block_size >> 10} KiB, {args.rounds} rounds, target: file on "
        f"{subprocess.run(['df', '--output=fstype', str(work)], capture_output=True, text=True).stdout.split()[-1]}"
    )
    med = statistics.median
    print("| measure | dd | edge-flash | ratio edge-flash / dd (median of rounds) |")
    print("|---|---|---|---|")
    print(
        f"| write + read-back hash | {med(dd_rates):.0f} MB/s | {med(flash_rates):.0f} MB/s | {med(ratios):.2f} "
        f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)}) |"
    )
    print(
        f"| write phase only (incl. fsync) | {med(dd_write_rates):.0f} MB/s | {med(flash_write_rates):.0f} MB/s | "
        f"{med(ratios_write):.2f} (rounds: {', '.join(f'{r:.2f}' for r in ratios_write)}) |"
    )


if __name__ == "__main__":
    main_bench()
