"""`python -m apps.container.env PATH`: a compose `.env` with fresh secrets (`make compose-env`); never overwrites a
value. An existing file that lacks a NATS user's password (one made before that user existed, such as the
provisioner) gets one added, and nothing else changed.

docker-compose.yml has no default password: every secret below must be set, and the stack refuses to start
without it. Keep the file private and back up REROUTE_INTAKE_ENCRYPTION_KEY and REROUTE_INTAKE_MATCHING_KEY with
the database: without them no stored referral can be read or matched.
"""

from __future__ import annotations

import argparse
import base64
import secrets
import sys
from pathlib import Path

from shared.nats_auth import hash_password

PORTS = {"REROUTE_PUBLISH_API_PORT": 8443, "REROUTE_PUBLISH_CALENDAR_PORT": 8444, "REROUTE_PUBLISH_CONSOLE_PORT": 8445,
         "REROUTE_PUBLISH_NATS_PORT": 14222}
PASSWORDS = ("POSTGRES_PASSWORD", "REROUTE_DB_OWNER_PASSWORD", "REROUTE_DB_INTAKE_PASSWORD", "REROUTE_DB_RISK_PASSWORD",
             "REROUTE_DB_SCHEDULING_PASSWORD", "REROUTE_NATS_INTAKE_PASSWORD", "REROUTE_NATS_RISK_PASSWORD",
             "REROUTE_NATS_SCHEDULING_PASSWORD", "REROUTE_NATS_OPERATOR_PASSWORD", "REROUTE_NATS_HEALTH_PASSWORD",
             "REROUTE_NATS_CONSOLE_PASSWORD", "REROUTE_NATS_NOTIFIER_PASSWORD", "REROUTE_NATS_PROVISIONER_PASSWORD")
NATS_PASSWORDS = tuple(name for name in PASSWORDS if name.startswith("REROUTE_NATS_"))
"""Read by NATS at each start (not kept in a volume, as PostgreSQL's are), so one missing can be added later."""
PROVISIONER_PASSWORD, PROVISIONER_HASH = "REROUTE_NATS_PROVISIONER_PASSWORD", "REROUTE_NATS_PROVISIONER_PASSWORD_HASH"
"""The password goes to the migrate step only; the NATS container gets its bcrypt hash."""
KEYS = ("REROUTE_INTAKE_ENCRYPTION_KEY", "REROUTE_INTAKE_MATCHING_KEY")
SMTP = {"REROUTE_SMTP_HOST": "", "REROUTE_SMTP_PORT": "587", "REROUTE_SMTP_SECURITY": "starttls", "REROUTE_SMTP_USER": "",
        "REROUTE_SMTP_PASSWORD": "", "REROUTE_ALERT_EMAIL_FROM": "", "REROUTE_ALERT_EMAILS": "",
        "REROUTE_ALERT_DEPUTY_EMAILS": ""}
"""The notifier's mail settings (apps/notifier/settings.py), left for the operator to fill in."""


def compose_env(*, ports: dict[str, int] | None = None, address: str = "127.0.0.1") -> str:
    """The text of a fresh `.env`: new passwords and keys, the published address and ports, the public URLs."""
    published = {**PORTS, **(ports or {})}
    lines = ["# reroute's compose secrets and published ports (python -m apps.container.env). Keep it private;",
             "# back up the two intake keys with the database: without them stored referrals cannot be read.",
             *_with_hash({name: secrets.token_urlsafe(24) for name in PASSWORDS}),
             *(f"{name}={base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()}" for name in KEYS),
             "# The services' spans go to the console's span store (its Traces pages) with this token, unless",
             "# OTEL_EXPORTER_OTLP_ENDPOINT names a tracing backend: then there, and REROUTE_CONSOLE_TRACE_URL links to it.",
             f"REROUTE_CONSOLE_SPANS_TOKEN={secrets.token_urlsafe(32)}",
             f"REROUTE_PUBLISH_ADDRESS={address}",
             *(f"{name}={port}" for name, port in published.items()),
             f"REROUTE_PUBLIC_URL=https://localhost:{published['REROUTE_PUBLISH_API_PORT']}",
             f"REROUTE_CALENDAR_URL=https://localhost:{published['REROUTE_PUBLISH_CALENDAR_PORT']}",
             f"REROUTE_CONSOLE_URL=https://localhost:{published['REROUTE_PUBLISH_CONSOLE_PORT']}",
             "# Safeguarding alert emails (the notifier): fill these in. Until REROUTE_SMTP_HOST and REROUTE_ALERT_EMAILS",
             "# are set no alert is emailed, and the notifier's healthcheck fails saying so. SMTP_SECURITY: starttls (port",
             "# 587), tls (465) or none (a relay on a private network only).",
             *(f"{name}={value}" for name, value in SMTP.items())]
    return "\n".join(lines) + "\n"


def _with_hash(passwords: dict[str, str]) -> list[str]:
    """`NAME=value` lines, with the provisioner's hash after its password, single-quoted: compose reads such a value
    literally (a bcrypt hash is full of `$`, which it would take for variables)."""
    lines = [f"{name}={value}" for name, value in passwords.items()]
    if PROVISIONER_PASSWORD in passwords:
        lines.append(f"{PROVISIONER_HASH}='{hash_password(passwords[PROVISIONER_PASSWORD])}'")
    return lines


def missing_nats_secrets(text: str) -> list[str]:
    """The lines to add to an existing `.env` (`text`): a fresh password for each NATS user it lacks, and the
    provisioner's hash where it lacks one (of its own password, when it has that)."""
    given = {line.split("=", 1)[0].strip(): line.split("=", 1)[1].strip() for line in text.splitlines()
             if "=" in line and not line.lstrip().startswith("#")}
    lines = _with_hash({name: secrets.token_urlsafe(24) for name in NATS_PASSWORDS if not given.get(name)})
    if given.get(PROVISIONER_PASSWORD) and not given.get(PROVISIONER_HASH):
        lines.append(f"{PROVISIONER_HASH}='{hash_password(given[PROVISIONER_PASSWORD])}'")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path)
    path: Path = parser.parse_args(argv).path
    if path.exists():
        text = path.read_text()
        if added := missing_nats_secrets(text):
            path.write_text(text + ("" if text.endswith("\n") or not text else "\n") + "\n".join(added) + "\n")
            names = ", ".join(line.split("=", 1)[0] for line in added)
            print(f"{path} exists: kept, with what it lacked added: {names}", file=sys.stderr)
            return 0
        print(f"{path} exists: kept (delete it first for new secrets, which a running stack's volumes will refuse)",
              file=sys.stderr)
        return 0
    path.touch(mode=0o600)
    path.write_text(compose_env())
    print(f"Wrote {path} (mode 0600) with new secrets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
