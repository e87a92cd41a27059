"""Self-signed certificates for the tests' TLS servers (the HTTPS gateway, a stand-in API
server) and kubeconfigs: made in process, valid from a few minutes ago for a day."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Certificate:
    """A certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes

    def write(self, directory: Path) -> tuple[Path, Path]:
        """The certificate and key as `cert.pem` and `key.pem` in `directory`."""
        cert_path, key_path = directory / "cert.pem", directory / "key.pem"
        cert_path.write_bytes(self.cert_pem)
        key_path.write_bytes(self.key_pem)
        return cert_path, key_path


def self_signed(
    common_name: str, *, dns: tuple[str, ...] = (), ips: tuple[str, ...] = ()
) -> Certificate:
    """A self-signed certificate for `common_name`, with `dns` names and `ips` addresses as
    subject alternative names (what clients check the host against)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    alternatives: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    alternatives += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    if alternatives:
        builder = builder.add_extension(x509.SubjectAlternativeName(alternatives), False)
    cert = builder.sign(key, hashes.SHA256())
    return Certificate(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
