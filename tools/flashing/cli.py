"""`edge-flash`: argument parsing and exit codes (0 done, 2 bad input or not verified)."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

from .batch import run_batch
from .errors import EXIT_BAD_INPUT, FlashError
from .inspect_image import inspect
from .provision import Context, Job, flash_one
from .release import MECHANISMS
from .target import PROC_MOUNTS, SYSFS


def block_size(text: str) -> int:
    match = re.fullmatch(r"(\d+)([KkMm]?)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError("use a size like 4M or 1024K")
    value = int(match.group(1)) * {"": 1, "k": 1024, "m": 1 << 20}[match.group(2).lower()]
    if not (64 << 10) <= value <= (64 << 20) or value % 4096:
        raise argparse.ArgumentTypeError("block size must be 64K..64M and a multiple of 4K")
    return value


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("image and agent")
    g.add_argument("--image", required=True, help="Raspberry Pi OS image: .img, .img.xz or .zip")
    g.add_argument("--agent-wheel", help="agent wheel to install (default: build it from this repository)")
    g.add_argument("--wheelhouse", help="directory of dependency wheels for the gateway's Python and CPU")
    g.add_argument("--extras", action="append", default=[], help="agent extras the gateway needs, e.g. vision")
    g.add_argument("--arch", default="aarch64", help="gateway CPU for wheel checks (default aarch64)")
    g.add_argument("--unit", help="systemd unit (default config/systemd/edge-agent.service)")
    g.add_argument("--mechanism", choices=MECHANISMS, default="auto", help="first-boot mechanism; auto: cloud-init on Trixie images, firstrun.sh on Bookworm")
    i = p.add_argument_group("identity")
    i.add_argument("--ca-dir", help="installer CA directory with ca.crt and ca.key: sign the certificate here")
    i.add_argument("--csr-dir", help="leave <gateway>.csr here for the city's CA instead of signing")
    i.add_argument("--hub-ca", help="CA certificate the gateway trusts for the hub (default: the --ca-dir CA)")
    i.add_argument("--cert-days", type=int, default=825, help="certificate validity in days (default 825)")
    i.add_argument("--replace", action="store_true", help="allow a new card for a gateway already in the inventory")
    i.add_argument("--inventory", default="inventory", help="directory for inventory.csv and inventory.json")
    s = p.add_argument_group("system")
    s.add_argument("--ssh-key", action="append", help="SSH public key file for the admin user (repeatable, required)")
    s.add_argument("--hostname", help="host name (default: the gateway id, with _ as -)")
    s.add_argument("--admin-user", default="edgeadmin", help="admin login (keys only, no password); default edgeadmin")
    s.add_argument("--timezone", help="tz database name, e.g. Europe/Berlin")
    s.add_argument("--ntp", action="append", help="time server (repeatable)")
    s.add_argument("--wifi-ssid", help="Wi-Fi network name")
    s.add_argument("--wifi-psk-file", help="file holding the Wi-Fi passphrase (or set EDGE_WIFI_PSK)")
    s.add_argument("--wifi-country", help="two-letter Wi-Fi regulatory country, e.g. DE")
    s.add_argument("--wifi-hidden", action="store_true", help="the Wi-Fi network does not broadcast its name")
    s.add_argument("--eth-address", help="static Ethernet address with prefix, e.g. 10.20.0.21/24 (default DHCP)")
    s.add_argument("--eth-gateway", help="default router for the static address")
    s.add_argument("--dns", action="append", help="DNS server for the static address (repeatable)")
    w = p.add_argument_group("writing")
    w.add_argument("--block-size", type=block_size, default=4 << 20, help="write block size (default 4M)")
    w.add_argument("--yes", action="store_true", help="do not ask before overwriting the target")
    w.add_argument("--force", action="store_true", help="allow a target that is not removable (never the system disk)")
    w.add_argument("--dry-run", action="store_true", help="check everything and show what would be written")
    w.add_argument("--scratch-dir", help="where the boot partition is edited (default $TMPDIR or /tmp)")
    w.add_argument("--sysfs", default=SYSFS, help=argparse.SUPPRESS)
    w.add_argument("--mounts", default=PROC_MOUNTS, help=argparse.SUPPRESS)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-flash", description="Provision and flash edge-agent gateways.")
    sub = p.add_subparsers(dest="command", required=True)
    write = sub.add_parser("write", help="customise an image for one gateway and write it to a card or file")
    write.add_argument("--config", required=True, help="the gateway's TOML config")
    write.add_argument("--target", help="card (/dev/sdX, /dev/mmcblkN) or image file to write")
    _common(write)
    batch = sub.add_parser("batch", help="flash one card per row of a CSV of gateways")
    batch.add_argument("csv", help="CSV with a config column (see docs/flashing.md)")
    batch.add_argument("--target", default="", help="card, or file pattern with {gateway_id}")
    _common(batch)
    ins = sub.add_parser("inspect", help="show what an image or card carries")
    ins.add_argument("path", help="image (.img/.img.xz/.zip) or card device")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "inspect":
            print(inspect(args.path))
            return 0
        ctx = Context(args)
        if args.command == "batch":
            return run_batch(ctx, args.csv, args.target)
        flash_one(ctx, Job(args.config, args.target or ""))
        return 0
    except FlashError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted; nothing more was written", file=sys.stderr)
        return EXIT_BAD_INPUT
