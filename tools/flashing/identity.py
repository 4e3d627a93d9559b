"""Per-gateway credentials: a fresh key pair, a CSR, and a certificate from the installer's CA.

The private key is generated on the installer's machine for one gateway and
goes only onto that gateway's card; it is never written to the installer's
disk and never reused. With a CA directory the certificate is signed here;
without one a CSR is left for the city's CA.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .errors import FlashError

CA_CERT_NAMES = ("ca.crt", "ca.pem")
CA_KEY_NAMES = ("ca.key", "ca-key.pem")
CA_PASSPHRASE_ENV = "EDGE_CA_PASSPHRASE"


class CertificateAuthority:
    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | object, cert_pem: bytes) -> None:
        self.cert = cert
        self.key = key
        self.cert_pem = cert_pem

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> CertificateAuthority:
        """Load ca.crt and ca.key from a directory; the key may be encrypted ($EDGE_CA_PASSPHRASE)."""
        ca_dir = Path(directory)
        hint = (
            f"put the CA certificate ({' or '.join(CA_CERT_NAMES)}) and its key "
            f"({' or '.join(CA_KEY_NAMES)}) in {ca_dir}, or use --csr-dir to leave a CSR for the city's CA"
        )
        if not ca_dir.is_dir():
            raise FlashError(f"CA directory {ca_dir} does not exist", hint)
        cert_path = next((ca_dir / n for n in CA_CERT_NAMES if (ca_dir / n).is_file()), None)
        key_path = next((ca_dir / n for n in CA_KEY_NAMES if (ca_dir / n).is_file()), None)
        if cert_path is None or key_path is None:
            missing = "certificate" if cert_path is None else "private key"
            raise FlashError(f"the CA {missing} is missing in {ca_dir}", hint)
        cert_pem = cert_path.read_bytes()
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
        except ValueError as exc:
            raise FlashError(f"{cert_path} is not a PEM certificate ({exc})", hint) from exc
        passphrase = os.environ.get(CA_PASSPHRASE_ENV)
        try:
            key = serialization.load_pem_private_key(key_path.read_bytes(), passphrase.encode() if passphrase else None)
        except TypeError as exc:
            raise FlashError(f"{key_path} is encrypted", f"set {CA_PASSPHRASE_ENV} to its passphrase") from exc
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise FlashError(
                f"{key_path} cannot be read as a PEM private key ({exc})", f"check the file, and {CA_PASSPHRASE_ENV} if the key is encrypted"
            ) from exc
        if key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ):
            raise FlashError(f"{key_path} does not belong to the certificate {cert_path}", hint)
        try:
            constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
            is_ca = constraints.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise FlashError(f"{cert_path} is not a CA certificate (basicConstraints CA:TRUE missing)", hint)
        now = dt.datetime.now(dt.UTC)
        if cert.not_valid_after_utc < now:
            raise FlashError(f"the CA certificate {cert_path} expired on {cert.not_valid_after_utc:%Y-%m-%d}", "renew the CA certificate")
        return cls(cert, key, cert_pem)


class Identity:
    """One gateway's key, CSR and (when signed here) certificate, all PEM."""

    def __init__(
        self, gateway_id: str, key_pem: bytes, csr_pem: bytes, cert_pem: bytes | None, ca_pem: bytes | None, public_key_sha256: str, cert_sha256: str | None
    ) -> None:
        self.gateway_id = gateway_id
        self.key_pem = key_pem
        self.csr_pem = csr_pem
        self.cert_pem = cert_pem
        self.ca_pem = ca_pem
        self.public_key_sha256 = public_key_sha256
        self.cert_sha256 = cert_sha256

    @property
    def fingerprint(self) -> str:
        """What the registry matches: the certificate's SHA-256, or the public key's for a CSR."""
        return self.cert_sha256 or self.public_key_sha256


def _sha256_hex(data: bytes) -> str:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize().hex()


def create_identity(gateway_id: str, ca: CertificateAuthority | None, days: int = 825, organisation: str = "") -> Identity:
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    name_attrs = [x509.NameAttribute(NameOID.COMMON_NAME, gateway_id)]
    if organisation:
        name_attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    subject = x509.Name(name_attrs)
    san = x509.SubjectAlternativeName([x509.DNSName(gateway_id)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).add_extension(san, critical=False).sign(key, hashes.SHA256())
    public_der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    cert_pem = None
    cert_sha256 = None
    ca_pem = None
    if ca is not None:
        now = dt.datetime.now(dt.UTC)
        not_after = min(now + dt.timedelta(days=days), ca.cert.not_valid_after_utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_encipherment=False,
                    content_commitment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(san, critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.cert.public_key()), critical=False)
        )
        cert = builder.sign(ca.key, hashes.SHA256())  # type: ignore[arg-type]
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        cert_sha256 = cert.fingerprint(hashes.SHA256()).hex()
        ca_pem = ca.cert_pem
    return Identity(gateway_id, key_pem, csr.public_bytes(serialization.Encoding.PEM), cert_pem, ca_pem, _sha256_hex(public_der), cert_sha256)
