"""`python -m apps.container.certs DIR`: self-signed TLS files for a local compose stack, made once.

Writes DIR/ca.crt (the certificate clients trust), DIR/server.crt and DIR/server.key (one certificate for every
name the stack serves TLS under: nats, proxy, localhost, 127.0.0.1, or those given with --name; it allows client
authentication too, for the routes between NATS cluster nodes). The CA's key is thrown away once it has signed,
so nothing can sign another certificate these clients would trust. Files already there are kept: put real
certificates in DIR (same names) and this does nothing.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

FILES = ("ca.crt", "server.crt", "server.key")
NAMES = ("nats", "proxy", "localhost")
ADDRESSES = ("127.0.0.1", "::1")
VALID_DAYS = 397


def make(directory: Path, *, names: list[str], now: datetime) -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "reroute local CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
          .not_valid_after(now + timedelta(days=VALID_DAYS))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    alt_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ADDRESSES]
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
              .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=VALID_DAYS))
              .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              # client authentication too: NATS cluster nodes present it to each other on their routes
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                             critical=False)
              .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (directory / "ca.crt").write_bytes(ca.public_bytes(pem))
    (directory / "server.crt").write_bytes(server.public_bytes(pem))
    key_file = directory / "server.key"
    key_file.touch(mode=0o600)
    key_file.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--name", action="append", help=f"a DNS name to serve (default: {', '.join(NAMES)})")
    args = parser.parse_args(argv)
    directory: Path = args.directory
    present = [f for f in FILES if (directory / f).exists()]
    if len(present) == len(FILES):
        print(f"TLS files in {directory} already: kept")
        return 0
    if present:
        print(f"{directory} has {', '.join(present)} but not all of {', '.join(FILES)}: add the rest or remove them",
              file=sys.stderr)
        return 1
    directory.mkdir(parents=True, exist_ok=True)
    make(directory, names=args.name or list(NAMES), now=datetime.now(UTC))
    print(f"Self-signed TLS files made in {directory} (for local use; clients trust {directory / 'ca.crt'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
