"""Provision one gateway: validate everything, customise the image, write, verify, record.

The order matters: every check that can fail on bad input (config, keys, CA,
image, target, wheelhouse, free space on the boot partition) runs before the
first byte reaches the target, so bad input leaves the target untouched.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TextIO

from .errors import FlashError
from .gatewayconf import load_gateway_config
from .identity import CertificateAuthority, create_identity
from .image import open_image
from .inventory import Inventory
from .network import NetworkSettings
from .payload import Settings, apply_payload, build_payload
from .progress import ProgressBar
from .release import detect_release
from .source import ImageSource
from .sshkeys import load_keys
from .target import check_target
from .wheels import REPO_ROOT, TargetPython, build_agent_wheel, check_wheelhouse
from .writer import WriteResult, verify_image, write_image

DEFAULT_UNIT = REPO_ROOT / "config" / "systemd" / "edge-agent.service"
WIFI_PSK_ENV = "EDGE_WIFI_PSK"


class Job:
    """One gateway to flash: its config, target and per-gateway network overrides."""

    def __init__(self, config: str, target: str, network: dict[str, Any] | None = None) -> None:
        self.config = config
        self.target = target
        self.network = network or {}


class Context:
    """What stays the same across a batch: options, CA, wheels, caches."""

    def __init__(self, opts: Any, out: TextIO | None = None, confirm: Callable[[str], bool] | None = None, progress: ProgressBar | None = None) -> None:
        self.opts = opts
        self.out = out or sys.stdout
        self.confirm = confirm or _ask
        self.progress = progress or ProgressBar()
        self.inventory = Inventory(opts.inventory)
        self._ca: CertificateAuthority | None = None
        self._ca_loaded = False
        self._wheels: dict[str, list[Path]] = {}
        self._agent_wheel: Path | None = None
        self._scratch = Path(opts.scratch_dir or os.environ.get("TMPDIR", "/tmp"))
        self.written_serials: dict[str, str] = {}  # card serial -> gateway, within this run
        self._image_hashes: dict[tuple[str, int, int, int], str] = {}

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def ca(self) -> CertificateAuthority | None:
        if not self._ca_loaded:
            if self.opts.ca_dir:
                self._ca = CertificateAuthority.load(self.opts.ca_dir)
            elif not self.opts.csr_dir:
                raise FlashError(
                    "no identity source: the gateway needs a certificate",
                    "pass --ca-dir DIR (ca.crt + ca.key) to sign here, or --csr-dir DIR to leave CSRs for the city's CA",
                )
            self._ca_loaded = True
        return self._ca

    def hub_ca_pem(self) -> bytes | None:
        if self.opts.hub_ca:
            try:
                return Path(self.opts.hub_ca).read_bytes()
            except OSError as exc:
                raise FlashError(f"cannot read --hub-ca {self.opts.hub_ca}: {exc.strerror}", "check the path") from exc
        ca = self.ca()
        return ca.cert_pem if ca else None

    def wheels(self, python: str) -> list[Path]:
        if python not in self._wheels:
            if self._agent_wheel is None:
                if self.opts.agent_wheel:
                    self._agent_wheel = Path(self.opts.agent_wheel)
                    if not self._agent_wheel.is_file():
                        raise FlashError(f"agent wheel {self._agent_wheel} does not exist", "build it with `pip wheel --no-deps -w dist .`")
                else:
                    self.say("building the agent wheel (pip wheel --no-deps) ...")
                    self._agent_wheel = build_agent_wheel(Path(self._scratch) / f"edge-flash-wheel-{os.getpid()}")
            wheelhouse = Path(self.opts.wheelhouse) if self.opts.wheelhouse else None
            self._wheels[python] = check_wheelhouse(self._agent_wheel, wheelhouse, TargetPython(python, self.opts.arch), set(self.opts.extras or ()))
        return self._wheels[python]

    def image_sha256(self, source: ImageSource) -> str:
        """SHA-256 of the base image file, hashed once per file and run (batches reuse it)."""
        st = source.path.stat()
        key = (str(source.path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
        if key not in self._image_hashes:
            self._image_hashes[key] = source.file_sha256()
        return self._image_hashes[key]

    def unit_text(self) -> bytes:
        unit = Path(self.opts.unit or DEFAULT_UNIT)
        try:
            return unit.read_bytes()
        except OSError as exc:
            raise FlashError(f"cannot read the systemd unit {unit}: {exc.strerror}", "pass --unit with the path of edge-agent.service") from exc


def _ask(question: str) -> bool:
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def wifi_passphrase(opts: Any) -> str:
    if not opts.wifi_ssid:
        return ""
    if opts.wifi_psk_file:
        try:
            return Path(opts.wifi_psk_file).read_text().strip("\r\n")
        except OSError as exc:
            raise FlashError(f"cannot read --wifi-psk-file: {exc.strerror}", "check the path") from exc
    if os.environ.get(WIFI_PSK_ENV):
        return os.environ[WIFI_PSK_ENV]
    raise FlashError(f"Wi-Fi {opts.wifi_ssid!r} needs its passphrase", f"pass --wifi-psk-file FILE or set {WIFI_PSK_ENV} (never on the command line)")


def network_for(opts: Any, overrides: dict[str, Any]) -> NetworkSettings:
    def pick(name: str, default: Any) -> Any:
        value = overrides.get(name)
        return value if value not in (None, "") else default

    ssid = pick("wifi_ssid", opts.wifi_ssid)
    passphrase = ""
    if ssid:
        passphrase = wifi_passphrase(type("O", (), {**vars(opts), "wifi_ssid": ssid})())
    dns = pick("dns", None)
    return NetworkSettings(
        wifi_ssid=ssid or "",
        wifi_passphrase=passphrase,
        wifi_country=pick("wifi_country", opts.wifi_country) or "",
        wifi_hidden=bool(opts.wifi_hidden),
        eth_address=pick("eth_address", opts.eth_address) or "",
        eth_gateway=pick("eth_gateway", opts.eth_gateway) or "",
        dns=dns.split() if isinstance(dns, str) else list(opts.dns or []),
    )


def flash_one(ctx: Context, job: Job) -> dict[str, Any]:
    """Flash one gateway; returns its inventory row. Raises FlashError before or during writing."""
    opts = ctx.opts
    config = load_gateway_config(job.config)
    for warning in config.warnings:
        ctx.say(f"warning: {warning}")
    settings = Settings(
        config,
        load_keys(opts.ssh_key or []),
        opts.admin_user,
        opts.timezone or "",
        opts.ntp or [],
        network_for(opts, job.network),
        ctx.unit_text(),
        job.network.get("hostname") or opts.hostname or "",
    )
    ca = ctx.ca()
    hub_ca = ctx.hub_ca_pem()
    ctx.inventory.check_new(config.gateway_id, replace=opts.replace)
    source = ImageSource.open_path(opts.image)
    target = check_target(job.target, source.size, opts.force, opts.sysfs, opts.mounts) if job.target else None
    if target is not None and target.kind == "file" and os.path.exists(target.path) and os.path.samefile(target.path, source.path):
        raise FlashError(f"the target {target.path} is the base image itself", "write to another file or a card")
    if target is not None and target.serial and target.serial in ctx.written_serials:
        raise FlashError(
            f"the card in {target.path} (serial {target.serial}) was just written for {ctx.written_serials[target.serial]}",
            "insert a fresh card for this gateway",
        )
    with open_image(source, str(ctx._scratch)) as opened:
        release = detect_release(opened.volume, opts.mechanism)
        wheels = ctx.wheels(release.python)
        if not any(w.name.startswith("pip-") for w in wheels):
            ctx.say("note: no pip wheel in the wheelhouse; first boot relies on the image's python3-venv (add pip to the wheelhouse to be safe)")
        identity = create_identity(config.gateway_id, ca, opts.cert_days)
        ctx.inventory.check_new(config.gateway_id, identity.public_key_sha256, replace=True)
        payload = build_payload(settings, release, identity, hub_ca, wheels)
        apply_payload(opened.volume, payload)
        ctx.say(f"gateway {config.gateway_id} (site {config.site}), host name {settings.hostname}")
        ctx.say(f"  image   {source.describe()}")
        ctx.say(f"  release {release.describe()}")
        ctx.say(f"  target  {target.describe() if target else '(none: dry run)'}")
        ctx.say(
            f"  identity {'certificate signed by ' + ca.cert.subject.rfc4514_string() if ca else 'key + CSR for the city CA'}"
            f", fingerprint {identity.fingerprint[:16]}..."
        )
        ctx.say(f"  network {settings.network.summary()}; admin {settings.admin_user} with {len(settings.ssh_keys)} SSH key(s)")
        ctx.say(
            f"  boot partition: {len(payload.files)} files, {payload.size / 1e6:.1f} MB"
            + (f"; cmdline.txt +{payload.cmdline_append.strip()!r}" if payload.cmdline_append else "")
        )
        if opts.dry_run:
            for path in sorted(payload.files):
                ctx.say(f"    {len(payload.files[path]):>10}  /{path}")
            ctx.say("dry run: nothing was written")
            return {"gateway_id": config.gateway_id, "status": "dry-run"}
        if target is None:
            raise FlashError("no --target given", "name the card (/dev/sdX) or an image file to write")
        if not opts.yes and not ctx.confirm(f"Write gateway {config.gateway_id} to {target.describe()}? Everything on it is lost."):
            raise FlashError("not confirmed; nothing was written", "answer y, or pass --yes")
        row: dict[str, Any] = {
            "gateway_id": config.gateway_id,
            "site": config.site,
            "hostname": settings.hostname,
            "certificate_sha256": identity.cert_sha256 or "",
            "public_key_sha256": identity.public_key_sha256,
            "identity": "signed" if identity.cert_pem else "csr",
            "image": str(source.path),
            "written_bytes": source.size,
            "target": target.path,
            "target_serial": target.serial,
            "mechanism": release.mechanism,
            "release": release.name,
            "flashed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        with ThreadPoolExecutor(max_workers=1) as pool:
            try:
                replay = opened.replayable
                sha, write_seconds = write_image(opened.chunks(opts.block_size), source.size, target, ctx.progress, hash_stream=not replay)
                image_sha = opened.stream.file_sha256()
                # reading the card back is I/O-bound: hash the base image file alongside it
                pending = None if image_sha else pool.submit(ctx.image_sha256, source)
                sha, verify_seconds = verify_image(target, source.size, sha, opts.block_size, ctx.progress, opened.replay(opts.block_size) if replay else None)
                image_sha = image_sha or pending.result()  # type: ignore[union-attr]
            except FlashError as exc:
                ctx.inventory.append({**row, "status": "failed", "error": exc.message})
                raise
        result = WriteResult(sha, source.size, write_seconds, verify_seconds)
        row.update(
            status="verified", written_sha256=result.sha256, write_seconds=result.write_seconds, verify_seconds=result.verify_seconds, image_sha256=image_sha
        )
    if opts.csr_dir and not identity.cert_pem:
        csr_dir = Path(opts.csr_dir)
        csr_dir.mkdir(parents=True, exist_ok=True)
        (csr_dir / f"{config.gateway_id}.csr").write_bytes(identity.csr_pem)
        ctx.say(f"  CSR for the city CA: {csr_dir / (config.gateway_id + '.csr')}")
    ctx.inventory.append(row)
    if target.serial:
        ctx.written_serials[target.serial] = config.gateway_id
    rate = source.size / result.seconds / 1e6 if result.seconds else 0.0
    ctx.say(
        f"verified: {target.path} holds sha256 {result.sha256[:16]}... "
        f"({source.size / 1e6:.1f} MB written and read back in {result.seconds:.1f} s, {rate:.1f} MB/s)"
    )
    return row
