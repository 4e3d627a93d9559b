"""Small pure parts of the flashing tool: known-answer vectors and parsers."""

from __future__ import annotations

import io
import lzma

import pytest

from tools.flashing.cli import block_size
from tools.flashing.errors import FlashError
from tools.flashing.fat_names import lfn_checksum, make_short_name
from tools.flashing.network import NetworkSettings, wpa_psk
from tools.flashing.payload import hostname_for, patch_cmdline
from tools.flashing.progress import ProgressBar
from tools.flashing.source import xz_uncompressed_size
from tools.flashing.sshkeys import key_fingerprint
from tools.flashing.wheels import TargetPython


def test_wpa_psk_matches_the_ieee_802_11i_test_vector() -> None:
    assert wpa_psk("IEEE", "password") == "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"


def test_progress_line_shows_throughput_and_time_left() -> None:
    bar = ProgressBar(out=io.StringIO())
    bar.start("writing")
    bar._start = 100.0
    line = bar.line(done=50_000_000, total=200_000_000, now=110.0)
    assert "25.0%" in line and "5.0 MB/s" in line and "0:30 left" in line and "50.0/200.0 MB" in line


def test_xz_size_read_from_the_index_of_concatenated_streams() -> None:
    data = lzma.compress(b"a" * 100_000) + b"\0" * 8 + lzma.compress(b"b" * 12_345)
    assert xz_uncompressed_size(io.BytesIO(data), len(data)) == 112_345
    with pytest.raises(ValueError):
        xz_uncompressed_size(io.BytesIO(data[:-30]), len(data) - 30)


def test_cmdline_patch_is_one_line_and_idempotent() -> None:
    base = "console=tty1 root=PARTUUID=x-02 rootwait\n"
    once = patch_cmdline(base, " systemd.run=/boot/firmware/firstrun.sh cfg80211.ieee80211_regdom=DE")
    assert patch_cmdline(once, " systemd.run=/boot/firmware/firstrun.sh cfg80211.ieee80211_regdom=DE") == once
    assert once.count("\n") == 1 and once.startswith("console=tty1 root=PARTUUID=x-02 rootwait systemd.run=")


def test_short_names_and_lfn_checksum() -> None:
    assert make_short_name("user-data", set()) == b"USER-D~1   "
    assert make_short_name("user-data", {b"USER-D~1   "}) == b"USER-D~2   "
    assert make_short_name("network-config", set()) == b"NETWOR~1   "
    assert make_short_name("gateway.toml", set()) == b"GATEWA~1TOM"
    assert lfn_checksum(b"USER-D~1   ") == lfn_checksum(b"USER-D~1   ")


def test_ssh_key_fingerprint_refuses_mismatched_type() -> None:
    line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDT6lpbWFU9maJTtOq8cSq6hiOIbf+zL5FdqyFnOLt2a x"
    assert key_fingerprint(line).startswith("SHA256:")
    with pytest.raises(ValueError, match="does not match"):
        key_fingerprint(line.replace("ssh-ed25519", "ssh-rsa", 1))


def test_wheel_tags_for_the_gateway_python() -> None:
    py313 = TargetPython("3.13")
    assert py313.accepts("pydantic_core-2.50.4-cp313-cp313-manylinux2014_aarch64.manylinux_2_17_aarch64.whl")
    assert py313.accepts("cryptography-50.0.2-cp311-abi3-manylinux_2_28_aarch64.whl")
    assert py313.accepts("pyserial-3.5-py2.py3-none-any.whl")
    assert not py313.accepts("pydantic_core-2.50.4-cp311-cp311-manylinux_2_17_aarch64.whl")
    assert not py313.accepts("numpy-2.3.0-cp313-cp313-manylinux_2_28_x86_64.whl")


def test_network_settings_validation() -> None:
    with pytest.raises(FlashError, match="country"):
        NetworkSettings(wifi_ssid="net", wifi_passphrase="long enough pass")
    with pytest.raises(FlashError, match="8 to 63"):
        NetworkSettings(wifi_ssid="net", wifi_passphrase="short", wifi_country="DE")
    with pytest.raises(FlashError, match="outside"):
        NetworkSettings(eth_address="10.0.0.5/24", eth_gateway="10.0.1.1")
    assert "10.0.0.5/24" in NetworkSettings(eth_address="10.0.0.5/24").network_config()


def test_hostname_and_block_size() -> None:
    assert hostname_for("gw_cabinet_01") == "gw-cabinet-01"
    assert block_size("4M") == 4 << 20 and block_size("1024K") == 1 << 20
    with pytest.raises(Exception, match="multiple of 4K"):
        block_size("100000")


def test_unknown_time_zone_is_refused(tmp_path) -> None:
    import zoneinfo

    from tools.flashing.payload import Settings

    assert zoneinfo.available_timezones(), "no time zone database: apt-get install tzdata (tools/test.sh installs it as root)"

    class Cfg:
        gateway_id = "gw-1"

    with pytest.raises(FlashError, match="not a tz database name"):
        Settings(Cfg(), ["ssh-ed25519 AAAA x"], timezone="Europe/Atlantis", unit_text=b"[Unit]\n")  # type: ignore[arg-type]


def test_encrypted_ca_key_needs_its_passphrase(tmp_path, monkeypatch) -> None:
    from cryptography import x509
    from flash_support import make_ca

    from tools.flashing.identity import CertificateAuthority, create_identity

    ca_dir = make_ca(tmp_path / "ca", encrypted=b"s3cret-pass")
    monkeypatch.delenv("EDGE_CA_PASSPHRASE", raising=False)
    with pytest.raises(FlashError, match="is encrypted") as info:
        CertificateAuthority.load(ca_dir)
    assert "EDGE_CA_PASSPHRASE" in info.value.hint
    monkeypatch.setenv("EDGE_CA_PASSPHRASE", "s3cret-pass")
    ca = CertificateAuthority.load(ca_dir)
    one, two = create_identity("gw-1", ca), create_identity("gw-1", ca)
    assert one.key_pem != two.key_pem and one.fingerprint != two.fingerprint  # never reused
    x509.load_pem_x509_certificate(one.cert_pem).verify_directly_issued_by(ca.cert)
