"""End to end: customise small Pi-like images, write them to image files, check every byte that matters."""

from __future__ import annotations

import json
import lzma
import zipfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from flash_support import BOOT_START, CMDLINE, Kit, extract_boot, mtype, needs_disk_tools, partition2, run

from tools.flashing.cli import main

pytestmark = needs_disk_tools


@pytest.fixture(scope="module")
def trixie(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    return Kit(tmp_path_factory.mktemp("trixie"), "trixie")


@pytest.fixture(scope="module")
def bookworm(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    return Kit(tmp_path_factory.mktemp("bookworm"), "bookworm")


def test_trixie_card_carries_cloud_init_agent_config_and_credentials(trixie: Kit, tmp_path: Path, capsys) -> None:
    out = tmp_path / "card.img"
    inventory = tmp_path / "inv"
    argv = trixie.args(out, "--timezone", "Europe/Berlin", "--ntp", "ntp1.city.example", "--wifi-ssid", "cabinet-net", "--wifi-country", "de") + [
        "--inventory",
        str(inventory),
    ]
    import os

    os.environ["EDGE_WIFI_PSK"] = "correct horse battery"
    try:
        assert main(argv) == 0
    finally:
        del os.environ["EDGE_WIFI_PSK"]
    assert "verified:" in capsys.readouterr().out
    assert out.stat().st_size == trixie.image.stat().st_size
    assert partition2(out) == partition2(trixie.image)  # root file system byte-for-byte untouched
    assert out.read_bytes()[:440] == trixie.image.read_bytes()[:440]  # boot code unchanged
    assert out.read_bytes()[:512] == trixie.image.read_bytes()[:512]  # same partition table
    boot = out.read_bytes()[BOOT_START * 512 :]
    (tmp_path / "boot.fat").write_bytes(boot[: 40 << 20])
    assert run("fsck.fat", "-n", str(tmp_path / "boot.fat")).returncode == 0

    files = extract_boot(out, tmp_path / "boot")
    user_data = (files / "user-data").read_text()
    assert user_data.startswith("#cloud-config\n")
    assert 'hostname: "gw-test-01"' in user_data and "ssh_pwauth: false" in user_data
    assert "lock_passwd: true" in user_data and "passwd:" not in user_data.replace("lock_passwd", "")
    assert trixie.key.read_text().strip() in user_data
    assert 'timezone: "Europe/Berlin"' in user_data and '"ntp1.city.example"' in user_data
    assert "[bash, /boot/firmware/edge-agent/setup.sh, agent]" in user_data
    net = (files / "network-config").read_text()
    assert '"cabinet-net":' in net and 'regulatory-domain: "DE"' in net
    assert "correct horse" not in net  # only the derived PSK goes on the card
    assert "instance-id:" in (files / "meta-data").read_text()
    assert (files / "cmdline.txt").read_text() == CMDLINE  # cloud-init images keep cmdline.txt as it was
    assert not (files / "firstrun.sh").exists()

    payload = files / "edge-agent"
    assert (payload / "gateway.toml").read_bytes() == trixie.config.read_bytes()
    assert (payload / "edge-agent.service").read_bytes() == (Path("config/systemd/edge-agent.service")).read_bytes()
    assert sorted(p.name for p in (payload / "wheels").iterdir()) == [
        "edge_agent-0.1.0-py3-none-any.whl",
        "paho_mqtt-2.2.0-py3-none-any.whl",
        "pydantic-2.14.0-py3-none-any.whl",
        "pydantic_core-2.50.0-py3-none-any.whl",
    ]
    # credentials where [uplink.tls] says, key and certificate belong together, signed by the CA for client auth
    key = serialization.load_pem_private_key((payload / "tls" / "gateway.key").read_bytes(), None)
    cert = x509.load_pem_x509_certificate((payload / "tls" / "gateway.pem").read_bytes())
    ca = x509.load_pem_x509_certificate((trixie.ca / "ca.crt").read_bytes())
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    cert.verify_directly_issued_by(ca)
    assert cert.subject.rfc4514_string() == "CN=gw-test-01"
    assert ExtendedKeyUsageOID.CLIENT_AUTH in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert (payload / "tls" / "ca.pem").read_bytes() == (trixie.ca / "ca.crt").read_bytes()
    # the set-up script's own checksum list matches what is on the card
    assert run("sha256sum", "--quiet", "-c", "SHA256SUMS", cwd=payload).returncode == 0
    settings = (payload / "settings.env").read_text()
    assert "START_NOW=1" in settings and "MECHANISM=cloud-init" in settings

    rows = json.loads((inventory / "inventory.json").read_text())
    assert len(rows) == 1
    row = rows[0]
    assert row["gateway_id"] == "gw-test-01" and row["status"] == "verified" and row["identity"] == "signed"
    assert row["certificate_sha256"] == cert.fingerprint(__import__("cryptography.hazmat.primitives.hashes", fromlist=["SHA256"]).SHA256()).hex()
    import hashlib

    assert row["image_sha256"] == hashlib.sha256(trixie.image.read_bytes()).hexdigest()
    assert row["written_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    csv_lines = (inventory / "inventory.csv").read_text().splitlines()
    assert csv_lines[0].startswith("gateway_id,site,hostname,status,certificate_sha256")
    assert csv_lines[1].startswith("gw-test-01,district-07,gw-test-01,verified,")


def test_bookworm_card_uses_firstrun_and_cmdline(bookworm: Kit, tmp_path: Path) -> None:
    out = tmp_path / "card.img"
    argv = bookworm.args(out, "--eth-address", "10.20.0.21/24", "--eth-gateway", "10.20.0.1", "--dns", "10.20.0.2", "--hostname", "cabinet-0412")
    assert main(argv) == 0
    assert partition2(out) == partition2(bookworm.image)
    cmdline = mtype(out, "cmdline.txt").decode()
    assert cmdline == CMDLINE.strip() + (" systemd.run=/boot/firmware/firstrun.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target\n")
    firstrun = mtype(out, "firstrun.sh").decode()
    assert 'setup.sh" system && bash' in firstrun and "sed -i 's| systemd.run.*||g'" in firstrun
    eth = mtype(out, "edge-agent/network/edge-eth0.nmconnection").decode()
    assert "address1=10.20.0.21/24,10.20.0.1" in eth and "dns=10.20.0.2;" in eth
    settings = mtype(out, "edge-agent/settings.env")
    assert b"MECHANISM=firstrun" in settings and b"HOST_NAME=cabinet-0412" in settings and b"GATEWAY_ID=gw-test-01" in settings
    listing = run("mdir", "-b", "-i", f"{out}@@{BOOT_START * 512}", "::").stdout
    assert "user-data" not in listing  # no cloud-init on Bookworm


def test_xz_and_zip_sources_stream_to_the_same_disk_layout(trixie: Kit, tmp_path: Path) -> None:
    xz = tmp_path / "image.img.xz"
    xz.write_bytes(lzma.compress(trixie.image.read_bytes(), preset=0))
    archive = tmp_path / "image.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(trixie.image, "2025-10-01-raspios-trixie-arm64-lite.img")
    for source in (xz, archive):
        out = tmp_path / f"{source.name}.card"
        assert main(trixie.args(out, image=source, config=trixie.config) + ["--replace"]) == 0
        assert partition2(out) == partition2(trixie.image)
        assert b"gw-test-01" in mtype(out, "edge-agent/manifest.json")
    rows = json.loads((trixie.inventory / "inventory.json").read_text())
    import hashlib

    assert rows[-2]["image_sha256"] == hashlib.sha256(xz.read_bytes()).hexdigest()
    assert rows[-1]["image_sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    # every card has its own key
    keys = [r["public_key_sha256"] for r in rows]
    assert len(set(keys)) == len(keys)


def test_dry_run_writes_nothing_and_shows_the_plan(trixie: Kit, tmp_path: Path, capsys) -> None:
    out = tmp_path / "card.img"
    assert main(trixie.args(out, "--dry-run") + ["--inventory", str(tmp_path / "inv")]) == 0
    text = capsys.readouterr().out
    assert not out.exists()
    assert not (tmp_path / "inv").exists()
    assert "dry run: nothing was written" in text
    assert "/edge-agent/tls/gateway.key" in text and "/user-data" in text
    assert "first boot via cloud-init" in text


def test_csr_mode_leaves_a_csr_and_no_certificate(trixie: Kit, tmp_path: Path) -> None:
    out = tmp_path / "card.img"
    argv = trixie.args(out, "--csr-dir", str(tmp_path / "csr"), "--hub-ca", str(trixie.ca / "ca.crt"))
    argv.remove("--ca-dir")
    argv.remove(str(trixie.ca))
    argv += ["--inventory", str(tmp_path / "inv")]
    assert main(argv) == 0
    csr = x509.load_pem_x509_csr((tmp_path / "csr" / "gw-test-01.csr").read_bytes())
    assert csr.is_signature_valid and csr.subject.rfc4514_string() == "CN=gw-test-01"
    key = serialization.load_pem_private_key(mtype(out, "edge-agent/tls/gateway.key"), None)
    assert csr.public_key().public_numbers() == key.public_key().public_numbers()
    listing = run("mdir", "-b", "-i", f"{out}@@{BOOT_START * 512}", "::edge-agent/tls").stdout
    assert "gateway.pem" not in listing
    row = json.loads((tmp_path / "inv" / "inventory.json").read_text())[0]
    assert row["identity"] == "csr" and row["certificate_sha256"] == ""


def test_inspect_shows_what_the_card_carries(trixie: Kit, tmp_path: Path, capsys) -> None:
    out = tmp_path / "card.img"
    assert main(trixie.args(out) + ["--inventory", str(tmp_path / "inv")]) == 0
    capsys.readouterr()
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "edge-agent: gateway gw-test-01 (site district-07)" in text
    assert "0 damaged, 0 missing" in text
    assert "CN=gw-test-01" in text
    assert "BEGIN" not in text  # no key material printed
    assert main(["inspect", str(trixie.image)]) == 0
    assert "not customised" in capsys.readouterr().out
