"""What goes onto one gateway's boot partition, and writing it there.

Everything for first boot lives in /edge-agent on the boot partition (set-up
script, settings, config, credentials, unit, wheels, checksums, manifest).
The image's own mechanism starts it: cloud-init's user-data on Trixie images,
firstrun.sh via cmdline.txt on Bookworm.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import posixpath
import re
import secrets
import shlex
import zoneinfo
from pathlib import Path
from typing import Any

from .errors import FlashError
from .fat import FatVolume
from .firstboot import FIRSTRUN_CMDLINE, FIRSTRUN_SH, SETUP_SH
from .gatewayconf import GatewayConfig
from .identity import Identity
from .network import NetworkSettings
from .release import Release
from .sshkeys import key_fingerprint

PAYLOAD_DIR = "edge-agent"
BOOT_MOUNT = "/boot/firmware"
TOOL_VERSION = "1"
ADMIN_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
HOST_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
RESERVED_USERS = {"root", "edge-agent", "daemon", "bin", "sys", "nobody"}


def hostname_for(gateway_id: str) -> str:
    """Gateway ids may hold '_', host names may not."""
    return gateway_id.replace("_", "-").strip("-")[:63]


class Settings:
    """Everything an installer chooses for one gateway, besides the image and target."""

    def __init__(
        self,
        config: GatewayConfig,
        ssh_keys: list[str],
        admin_user: str = "edgeadmin",
        timezone: str = "",
        ntp_servers: list[str] | None = None,
        network: NetworkSettings | None = None,
        unit_text: bytes = b"",
        hostname: str = "",
    ) -> None:
        if not ADMIN_NAME.match(admin_user) or admin_user in RESERVED_USERS:
            raise FlashError(f"admin user name {admin_user!r} is not allowed", "use lower-case letters, digits, - and _ (and not root or edge-agent)")
        if timezone and (not re.match(r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$", timezone) or timezone not in (zoneinfo.available_timezones() or {timezone})):
            raise FlashError(f"time zone {timezone!r} is not a tz database name", "use e.g. Europe/Berlin or UTC")
        for server in ntp_servers or []:
            if not re.match(r"^[A-Za-z0-9.:-]+$", server):
                raise FlashError(f"time server {server!r} is not a host name or address", "check --ntp")
        if not unit_text:
            raise FlashError("the systemd unit for the agent is empty or missing", "pass --unit config/systemd/edge-agent.service")
        self.config = config
        self.gateway_id = config.gateway_id
        self.hostname = hostname or hostname_for(config.gateway_id)
        if not HOST_NAME.match(self.hostname):
            raise FlashError(
                f"host name {self.hostname!r} is not valid", "use letters, digits and inner hyphens, at most 63 characters (default: the gateway id)"
            )
        self.ssh_keys = ssh_keys
        self.admin_user = admin_user
        self.timezone = timezone
        self.ntp_servers = list(ntp_servers or [])
        self.network = network or NetworkSettings()
        self.unit_text = unit_text


class Payload:
    def __init__(self, files: dict[str, bytes], mechanism: str, cmdline_append: str, manifest: dict) -> None:
        self.files = files
        self.mechanism = mechanism
        self.cmdline_append = cmdline_append
        self.manifest = manifest

    @property
    def size(self) -> int:
        return sum(len(data) for data in self.files.values())


def _env(values: dict[str, str]) -> bytes:
    lines = ["# edge-agent first-boot settings (written by edge-flash)"]
    lines += [f"{key}={shlex.quote(value)}" for key, value in values.items()]
    return ("\n".join(lines) + "\n").encode()


def _user_data(s: Settings) -> bytes:
    q = json.dumps
    lines = [
        "#cloud-config",
        f"# edge-agent gateway {s.gateway_id}, written by edge-flash.",
        f"hostname: {q(s.hostname)}",
        "manage_etc_hosts: true",
        "ssh_pwauth: false",
        "disable_root: true",
    ]
    if s.timezone:
        lines.append(f"timezone: {q(s.timezone)}")
    if s.ntp_servers:
        lines += ["ntp:", "  enabled: true", f"  servers: [{', '.join(q(n) for n in s.ntp_servers)}]"]
    lines += [
        "users:",
        f"  - name: {q(s.admin_user)}",
        '    gecos: "Gateway administrator"',
        "    groups: [adm, sudo, dialout]",
        "    shell: /bin/bash",
        "    lock_passwd: true",
        '    sudo: "ALL=(ALL) NOPASSWD:ALL"',
        "    ssh_authorized_keys:",
    ]
    lines += [f"      - {q(key)}" for key in s.ssh_keys]
    lines += ["runcmd:", f"  - [bash, {BOOT_MOUNT}/{PAYLOAD_DIR}/setup.sh, agent]"]
    return ("\n".join(lines) + "\n").encode()


def seq_file_for(model: Any) -> str:
    """Where the agent keeps its sequence high-water mark (beside the outbox database)."""
    path = model.storage.path or posixpath.join(model.gateway.data_dir, "outbox.db")
    return path + ".seq"


def seq_seed(now: dt.datetime) -> int:
    # A replacement card for the same gateway must never reuse sequence numbers
    # the hub has already seen, and the Pi has no clock to go by at first boot.
    # The installer's clock in microseconds grows faster than any gateway hands
    # out numbers (1 million a second), so a later card always starts above
    # everything an earlier card of the gateway could have used.
    return int(now.timestamp() * 1_000_000)


def build_payload(s: Settings, release: Release, identity: Identity, hub_ca_pem: bytes | None, wheels: list[Path], now: dt.datetime | None = None) -> Payload:
    now = now or dt.datetime.now(dt.UTC)
    cfg = s.config
    d = PAYLOAD_DIR
    files: dict[str, bytes] = {
        f"{d}/setup.sh": SETUP_SH.encode(),
        f"{d}/gateway.toml": cfg.text,
        f"{d}/edge-agent.service": s.unit_text,
        f"{d}/authorized_keys": ("\n".join(s.ssh_keys) + "\n").encode(),
        f"{d}/tls/{cfg.tls_name('key_file')}": identity.key_pem,
        f"{d}/tls/gateway.csr": identity.csr_pem,
    }
    if identity.cert_pem:
        files[f"{d}/tls/{cfg.tls_name('cert_file')}"] = identity.cert_pem
    if hub_ca_pem:
        files[f"{d}/tls/{cfg.tls_name('ca_file')}"] = hub_ca_pem
    elif cfg.hub_ca_wanted:
        raise FlashError(
            f"the config expects the hub's CA certificate at {cfg.tls_paths['ca_file']} but none was given",
            "pass --hub-ca FILE, or --ca-dir (its ca.crt is used)",
        )
    for wheel in wheels:
        files[f"{d}/wheels/{wheel.name}"] = wheel.read_bytes()
    cloud_init = release.mechanism == "cloud-init"
    env = {
        "GATEWAY_ID": s.gateway_id,
        "HOST_NAME": s.hostname,
        "ADMIN_USER": s.admin_user,
        "TIMEZONE": s.timezone,
        "NTP_SERVERS": " ".join(s.ntp_servers),
        "WIFI_COUNTRY": s.network.wifi_country if s.network.wifi_ssid else "",
        "AGENT_WHEEL": wheels[0].name,
        "START_NOW": "1" if cloud_init else "0",
        "MECHANISM": release.mechanism,
        "SEQ_FILE": seq_file_for(cfg.model),
        "SEQ_SEED": str(seq_seed(now)),
    }
    files[f"{d}/settings.env"] = _env(env)
    cmdline_append = ""
    if cloud_init:
        files["user-data"] = _user_data(s)
        files["network-config"] = s.network.network_config().encode()
        files["meta-data"] = (
            f"instance-id: {json.dumps('edge-' + s.gateway_id + '-' + secrets.token_hex(4))}\nlocal-hostname: {json.dumps(s.hostname)}\n"
        ).encode()
    else:
        for name, text in s.network.nm_keyfiles().items():
            files[f"{d}/network/{name}"] = text.encode()
        files["firstrun.sh"] = FIRSTRUN_SH.encode()
        cmdline_append = FIRSTRUN_CMDLINE
        if s.network.wifi_ssid:
            cmdline_append += f" cfg80211.ieee80211_regdom={s.network.wifi_country}"
    # setup.sh checks these before touching the system: a damaged card fails loudly
    sums = sorted((path[len(d) + 1 :], hashlib.sha256(data).hexdigest()) for path, data in files.items() if path.startswith(d + "/"))
    files[f"{d}/SHA256SUMS"] = "".join(f"{digest}  {rel}\n" for rel, digest in sums).encode()
    manifest = {
        "tool": "edge-flash",
        "format": TOOL_VERSION,
        "created": now.isoformat(timespec="seconds"),
        "gateway_id": s.gateway_id,
        "site": cfg.site,
        "hostname": s.hostname,
        "admin_user": s.admin_user,
        "mechanism": release.mechanism,
        "release": release.name,
        "release_date": release.date,
        "certificate_sha256": identity.cert_sha256,
        "public_key_sha256": identity.public_key_sha256,
        "ssh_keys": [key_fingerprint(k) for k in s.ssh_keys],
        "network": s.network.summary(),
        "timezone": s.timezone,
        "ntp_servers": s.ntp_servers,
        "files": {path: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()} for path, data in sorted(files.items())},
        "cmdline_append": cmdline_append.strip(),
    }
    files[f"{d}/manifest.json"] = (json.dumps(manifest, indent=2) + "\n").encode()
    return Payload(files, release.mechanism, cmdline_append, manifest)


def patch_cmdline(text: str, append: str) -> str:
    """cmdline.txt is one line: drop earlier systemd.run parts, then append ours."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    line = re.sub(r"\s+systemd\.run.*$", "", line)
    line = re.sub(r"\s+cfg80211\.ieee80211_regdom=\S+", "", line)
    return line + append + "\n"


def apply_payload(vol: FatVolume, payload: Payload) -> None:
    clusters = sum((len(data) + vol.cluster_size - 1) // vol.cluster_size + 1 for data in payload.files.values())
    if clusters * vol.cluster_size > vol.free_bytes():
        raise FlashError(
            f"the boot partition has {vol.free_bytes() // 1_000_000} MB free but the card's payload needs about {clusters * vol.cluster_size // 1_000_000} MB",
            "trim the wheelhouse to what the gateway needs (no vision extras if it has no camera)",
        )
    if vol.exists(PAYLOAD_DIR):
        raise FlashError(
            "this image is already customised (it has /edge-agent on its boot partition)",
            "start from the original Raspberry Pi OS image; each card gets its own identity",
        )
    for path, data in payload.files.items():
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        if parent:
            vol.makedirs(parent)
        vol.write_file(path, data)
    cmdline = vol.read_file("cmdline.txt").decode("utf-8", "replace")
    vol.write_file("cmdline.txt", patch_cmdline(cmdline, payload.cmdline_append).encode())
    vol.flush()
