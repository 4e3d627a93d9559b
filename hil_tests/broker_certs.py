"""A throw-away certificate authority for TLS tests against a real broker.

Everything is generated at test time with `cryptography` (EC P-256, which is
fast to generate and accepted by Mosquitto's OpenSSL), so no key material is
ever committed. Typical use through the `test_ca` fixture:

    pair = test_ca.client_cert("gw-0001")            # valid client cert, CN=gw-0001
    old = test_ca.client_cert("gw-0002", expired=True)
    rogue = test_ca.other_ca().client_cert("gw-0001")  # signed by a CA the broker does not trust
    server = test_ca.server_cert()                    # SAN 127.0.0.1 and localhost

Every issued pair is written as PEM files in the CA's directory; `CertPair`
holds their paths, ready for `paho.Client.tls_set(ca_certs=..., certfile=..., keyfile=...)`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import itertools
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


class CertPair(NamedTuple):
    cert: Path
    key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "edge-gateway tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _validity(expired: bool) -> tuple[dt.datetime, dt.datetime]:
    now = dt.datetime.now(dt.UTC)
    if expired:
        # Expired well before "now" so clock skew between the test and the
        # broker cannot make it valid again.
        return now - dt.timedelta(days=30), now - dt.timedelta(days=2)
    # Back-dated by an hour for the same reason in the other direction.
    return now - dt.timedelta(hours=1), now + dt.timedelta(days=30)


class CertAuthority:
    """A CA key and self-signed certificate in `directory`, issuing leaf certificates."""

    def __init__(self, directory: Path, name: str = "edge-gateway test CA") -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.name = name
        self._serial = itertools.count(2)
        self._others = 0
        self._key = ec.generate_private_key(ec.SECP256R1())
        not_before, not_after = _validity(expired=False)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self._key.public_key())
            .serial_number(1)
            .not_valid_before(not_before)
            .not_valid_after(not_after + dt.timedelta(days=335))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.ca_file = self.directory / "ca.pem"
        self.ca_file.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        self.key_file = self.directory / "ca.key"
        _write_key(self.key_file, self._key)

    def _issue(
        self,
        stem: str,
        cn: str,
        usage: x509.ObjectIdentifier,
        sans: Iterable[x509.GeneralName] = (),
        expired: bool = False,
    ) -> CertPair:
        key = ec.generate_private_key(ec.SECP256R1())
        not_before, not_after = _validity(expired)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(next(self._serial))
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
        )
        sans = list(sans)
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        pair = CertPair(self.directory / f"{stem}.pem", self.directory / f"{stem}.key")
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(pair.key, key)
        return pair

    def server_cert(self, hosts: Iterable[str] = ("127.0.0.1", "localhost"), expired: bool = False) -> CertPair:
        """A server certificate whose SAN lists `hosts` (IP addresses and DNS names)."""
        sans: list[x509.GeneralName] = []
        for host in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        serial = next(self._serial)
        stem = f"server-{serial}{'-expired' if expired else ''}"
        return self._issue(stem, "localhost", ExtendedKeyUsageOID.SERVER_AUTH, sans, expired)

    def client_cert(self, cn: str, expired: bool = False) -> CertPair:
        """A client certificate with common name `cn` (the broker's username with
        use_identity_as_username)."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in cn)
        stem = f"client-{safe}-{next(self._serial)}{'-expired' if expired else ''}"
        return self._issue(stem, cn, ExtendedKeyUsageOID.CLIENT_AUTH, (), expired)

    def other_ca(self) -> CertAuthority:
        """A fresh, unrelated CA: certificates it issues must be refused by anyone
        trusting only this one."""
        self._others += 1
        return CertAuthority(self.directory / f"wrong-ca-{self._others}", name="rogue test CA")
