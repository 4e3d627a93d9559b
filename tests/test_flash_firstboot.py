"""The first-boot script, run from a written card in a scratch root.

System commands that need a real Raspberry Pi (useradd, systemctl, chown ...)
are stand-ins on PATH that record their arguments; files, modes, the Python
venv and the offline pip install are real.
"""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

import pytest
from flash_support import Kit, extract_boot, needs_disk_tools

from tools.flashing.cli import main

pytestmark = [needs_disk_tools, pytest.mark.slow]  # each test 20-30 s on 2 busy cores: a real venv and offline pip install
STUBS = ("useradd", "usermod", "groupmod", "chown", "systemctl", "logger", "rfkill", "raspi-config")


def make_root(tmp: Path) -> tuple[Path, Path, dict[str, str]]:
    root = tmp / "root"
    for d in ("etc", "var/lib/systemd/rfkill", "home/pi", "usr/share/zoneinfo/Europe"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\npi:x:1000:1000:,,,:/home/pi:/bin/bash\n")
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\traspberrypi\n")
    (root / "var/lib/systemd/rfkill/platform-fe300000.mmcnr:wlan").write_text("1\n")
    bin_dir = tmp / "stubs"
    bin_dir.mkdir()
    calls = tmp / "calls.log"
    for name in STUBS:
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{calls}"\n')
        script.chmod(0o755)
    env = {**os.environ, "EDGE_ROOT": str(root), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return root, calls, env


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def card_for(kit: Kit, tmp: Path, *extra: str) -> Path:
    out = tmp / "card.img"
    assert main(kit.args(out, *extra) + ["--inventory", str(tmp / "inv")]) == 0
    return extract_boot(out, tmp / "root" / "boot" / "firmware")


@pytest.fixture(scope="module")
def bookworm(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    return Kit(tmp_path_factory.mktemp("fb-bookworm"), "bookworm")


@pytest.fixture(scope="module")
def trixie(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    return Kit(tmp_path_factory.mktemp("fb-trixie"), "trixie")


def test_legacy_first_boot_sets_up_system_and_agent(bookworm: Kit, tmp_path: Path, monkeypatch) -> None:
    root, calls, env = make_root(tmp_path)
    monkeypatch.setenv("EDGE_WIFI_PSK", "correct horse battery")
    boot = card_for(
        bookworm,
        tmp_path,
        "--timezone",
        "Europe/Berlin",
        "--ntp",
        "ntp1.city.example",
        "--ntp",
        "ntp2.city.example",
        "--wifi-ssid",
        "cabinet-net",
        "--wifi-country",
        "DE",
    )
    payload = boot / "edge-agent"
    for phase in ("system", "agent"):
        result = subprocess.run(["bash", str(payload / "setup.sh"), phase], env=env, capture_output=True, text=True, timeout=240)
        assert result.returncode == 0, result.stdout + result.stderr
    log = calls.read_text()

    assert (root / "etc/hostname").read_text() == "gw-test-01\n"
    assert "127.0.1.1\tgw-test-01" in (root / "etc/hosts").read_text()
    # the image's first user becomes the admin, password locked, keys only
    assert "usermod -l edgeadmin -d /home/edgeadmin -m pi" in log
    assert "usermod -L edgeadmin" in log
    ssh_dir = root / "home/edgeadmin/.ssh"
    assert mode(ssh_dir) == 0o700 and mode(ssh_dir / "authorized_keys") == 0o600
    assert (ssh_dir / "authorized_keys").read_text().strip() == bookworm.key.read_text().strip()
    sshd = (root / "etc/ssh/sshd_config.d/50-edge-agent.conf").read_text()
    assert "PasswordAuthentication no" in sshd and "PermitRootLogin no" in sshd
    assert mode(root / "etc/sudoers.d/010-edge-admin") == 0o440
    assert os.readlink(root / "etc/localtime") == "/usr/share/zoneinfo/Europe/Berlin"
    assert (root / "etc/systemd/timesyncd.conf.d/50-edge-agent.conf").read_text() == "[Time]\nNTP=ntp1.city.example ntp2.city.example\n"
    wifi = root / "etc/NetworkManager/system-connections/edge-wifi.nmconnection"
    assert mode(wifi) == 0o600 and "ssid=cabinet-net" in wifi.read_text()
    assert (root / "var/lib/systemd/rfkill/platform-fe300000.mmcnr:wlan").read_text() == "0\n"

    # the agent: user, offline install into the venv, config, owner-only credentials, service enabled
    assert "useradd --system --user-group --home-dir /var/lib/edge-agent --shell /usr/sbin/nologin" in log
    venv_python = root / "opt/edge-agent/venv/bin/python"
    probe = subprocess.run([str(venv_python), "-c", "import edge_agent_probe, paho_probe, pydantic_core_probe"], capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr
    assert mode(root / "etc/edge-agent") == 0o750
    assert mode(root / "etc/edge-agent/gateway.toml") == 0o640
    assert (root / "etc/edge-agent/gateway.toml").read_bytes() == bookworm.config.read_bytes()
    assert f"chown root:edge-agent {root}/etc/edge-agent {root}/etc/edge-agent/gateway.toml" in log
    tls = root / "etc/edge-agent/tls"
    assert mode(tls) == 0o700
    assert sorted(p.name for p in tls.iterdir()) == ["ca.pem", "gateway.csr", "gateway.key", "gateway.pem"]
    assert all(mode(p) == 0o600 for p in tls.iterdir())
    assert f"chown -R edge-agent:edge-agent {tls}" in log
    unit = root / "etc/systemd/system/edge-agent.service"
    assert mode(unit) == 0o644 and unit.read_bytes() == Path("config/systemd/edge-agent.service").read_bytes()
    assert f"systemctl --root={root} enable edge-agent.service" in log
    assert f"systemctl --root={root} enable ssh.service" in log
    assert "systemctl start" not in log  # firstrun reboots afterwards; nothing is started early
    # sequence numbers of this card start above anything an earlier card of the gateway used
    from agent.config.loader import load_config

    seq = root / (load_config(bookworm.config).gateway.data_dir.lstrip("/") + "/outbox.db.seq")
    assert abs(int(seq.read_text()) - time.time() * 1_000_000) < 3600 * 1_000_000
    assert f"chown edge-agent:edge-agent {seq.parent} {seq}" in log
    # secrets leave the boot partition, a marker says it is done
    assert not any((payload / "tls").iterdir())
    assert not any((payload / "network").iterdir())
    assert (payload / "FIRSTBOOT-DONE").exists()
    assert not (payload / "FIRSTBOOT-FAILED").exists()


def test_cloud_init_first_boot_installs_agent_and_starts_it(trixie: Kit, tmp_path: Path) -> None:
    root, calls, env = make_root(tmp_path)
    boot = card_for(trixie, tmp_path)
    result = subprocess.run(["bash", str(boot / "edge-agent/setup.sh"), "agent"], env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    log = calls.read_text()
    assert f"systemctl --root={root} enable edge-agent.service" in log
    assert "systemctl start --no-block edge-agent.service" in log  # cloud-init runs after boot: start now
    assert (root / "etc/edge-agent/tls/gateway.key").exists()
    assert "usermod" not in log  # users and keys are cloud-init's job on these images


def test_damaged_payload_stops_first_boot_with_a_marker(trixie: Kit, tmp_path: Path) -> None:
    root, calls, env = make_root(tmp_path)
    boot = card_for(trixie, tmp_path)
    with open(boot / "edge-agent/gateway.toml", "ab") as f:
        f.write(b"# flipped\n")
    result = subprocess.run(["bash", str(boot / "edge-agent/setup.sh"), "agent"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "damaged" in (boot / "edge-agent/FIRSTBOOT-FAILED").read_text()
    assert not (root / "etc/edge-agent").exists()
    assert not calls.exists() or "useradd" not in calls.read_text()


def test_image_without_python3_venv_bootstraps_pip_from_the_card(trixie: Kit, tmp_path: Path) -> None:
    import ensurepip
    import shutil
    import sys

    bundled = sorted((Path(ensurepip.__file__).parent / "_bundled").glob("pip-*.whl"))
    assert bundled, "this Python has no bundled pip wheel (Debian: apt-get install python3-venv)"
    house = tmp_path / "house"
    shutil.copytree(trixie.wheelhouse, house)
    shutil.copy(bundled[-1], house)
    root, calls, env = make_root(tmp_path)
    # python3 as on an image without python3-venv: `-m venv` fails unless --without-pip
    stub = tmp_path / "stubs" / "python3"
    stub.write_text(
        f'#!/bin/sh\ncase "$*" in *"-m venv"*--without-pip*) exec {sys.executable} "$@";;\n'
        f'  *"-m venv"*) echo "ensurepip is not available" >&2; exit 1;;\nesac\nexec {sys.executable} "$@"\n'
    )
    stub.chmod(0o755)
    out = tmp_path / "card.img"
    argv = trixie.args(out, "--wheelhouse", str(house)) + ["--inventory", str(tmp_path / "inv")]  # the last one wins
    assert main(argv) == 0
    boot = extract_boot(out, root / "boot" / "firmware")
    result = subprocess.run(["bash", str(boot / "edge-agent/setup.sh"), "agent"], env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ensurepip is not available" in result.stderr  # the fallback really ran
    venv_python = root / "opt/edge-agent/venv/bin/python"
    probe = subprocess.run([str(venv_python), "-c", "import edge_agent_probe, pip"], capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr
