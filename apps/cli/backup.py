"""`reroute backup create DIR` and `reroute backup restore DIR`: the three services' databases together with intake's
keys, without which no referral in them can be read (a backup without its keys is a backup of nothing).

A backup directory holds `manifest.json` (format, time, this version, the database kind, the schemas, each
service's migration revision and the SHA-256 of every other file), the databases (SQLite: `intake.db`, `risk.db`,
`scheduling.db`, each an online copy made with sqlite3's backup API; PostgreSQL: `postgresql.dump`, one `pg_dump` of
the three schemas, so one consistent snapshot) and `intake-keys.env` (0600, unless written elsewhere with --keys-out).

Restore checks every checksum and the keys against the manifest before it touches anything, refuses a store that
holds tables already unless --force (then it replaces them), and writes the keys where intake reads them: the data
dir's key files on the embedded default; with configured keys (REROUTE_INTAKE_*_KEY, as any PostgreSQL deployment
has) it only checks that they are the backup's. Stop the services first; start them once it has finished.
Erasures made after the backup are not in it: erase those people again (README, Operate).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import SecretStr
from rich.console import Console
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

from apps.cli.options import DataDir
from apps.devstack.processes import SERVICES
from shared.db import make_engine
from shared.migrations import current, head, schema_of
from shared.settings import ConfigurationError, ServiceSettings

backup_app = typer.Typer(help="Back up and restore the services' databases with intake's keys.", no_args_is_help=True)
console = Console()

FORMAT = 1
MANIFEST = "manifest.json"
KEYS_FILE = "intake-keys.env"
PG_DUMP_FILE = "postgresql.dump"
# where intake keeps its generated keys on the embedded default (services/intake/crypto.py; a unit test holds the two
# in step, since the CLI does not import a service)
KEY_FILES = {"REROUTE_INTAKE_ENCRYPTION_KEY": "intake-encryption.key",
             "REROUTE_INTAKE_MATCHING_KEY": "intake-matching.key"}


class BackupError(RuntimeError):
    """The backup or restore cannot go ahead; the message says why and what to do."""


class BackupSettings(ServiceSettings):
    """The shared settings plus intake's keys, as intake reads them (REROUTE_INTAKE_ENCRYPTION_KEY, ..._MATCHING_KEY)."""

    intake_encryption_key: SecretStr | None = None
    intake_matching_key: SecretStr | None = None

    def configured_keys(self) -> dict[str, str] | None:
        """Both keys when configured, None when neither is (the embedded default: key files in the data dir)."""
        given = {"REROUTE_INTAKE_ENCRYPTION_KEY": self.intake_encryption_key,
                 "REROUTE_INTAKE_MATCHING_KEY": self.intake_matching_key}
        if all(v is None for v in given.values()):
            return None
        missing = [name for name, v in given.items() if v is None]
        if missing:
            raise BackupError(f"{' and '.join(missing)} not set while the other key is: set both, or neither")
        return {name: v.get_secret_value().strip() for name, v in given.items() if v is not None}


def fingerprints(keys: dict[str, str]) -> dict[str, list[str]]:
    """For each variable, a short SHA-256 of each of its comma-separated keys: names a key without revealing it."""
    return {name: [hashlib.sha256(k.strip().encode()).hexdigest()[:16] for k in value.split(",") if k.strip()]
            for name, value in keys.items()}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_private(path: Path, content: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(content)


def read_keys_file(path: Path) -> dict[str, str]:
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise BackupError(f"cannot read the keys file {path}: {exc.strerror or exc}") from None
    keys: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            keys[name.strip()] = value
    if set(keys) != set(KEY_FILES):
        raise BackupError(f"{path} is not a keys file of a backup: it must set {' and '.join(KEY_FILES)}")
    return {name: value.strip() for name, value in keys.items()}


def current_keys(settings: BackupSettings) -> dict[str, str]:
    """Intake's keys as it reads them: configured, else its files in the data dir."""
    configured = settings.configured_keys()
    if configured is not None:
        return configured
    found = {name: settings.data_dir / file for name, file in KEY_FILES.items()}
    missing = [str(path) for path in found.values() if not path.is_file()]
    if missing:
        raise BackupError(f"no intake keys: REROUTE_INTAKE_ENCRYPTION_KEY and REROUTE_INTAKE_MATCHING_KEY are not set "
                          f"and {', '.join(missing)} do not exist (wrong --data-dir?)")
    return {name: path.read_text().strip() for name, path in found.items()}


@dataclass(frozen=True)
class Store:
    """Where the services' databases are: SQLite files in the data dir, or PostgreSQL schemas."""

    settings: BackupSettings

    @property
    def kind(self) -> str:
        return "postgresql" if self.settings.database_url else "sqlite"

    def sqlite_file(self, service: str) -> Path:
        return self.settings.data_dir / f"{service}.db"

    def schemas(self) -> dict[str, str]:
        out = {}
        for service in SERVICES:
            engine = make_engine(service, self.settings)
            out[service] = schema_of(engine) or service
            engine.dispose()
        return out

    def revisions(self) -> dict[str, str | None]:
        out = {}
        for service in SERVICES:
            engine = make_engine(service, self.settings)
            try:
                out[service] = current(engine)
            finally:
                engine.dispose()
        return out

    def holding_tables(self) -> list[str]:
        """The services whose database holds any table (a store a restore would overwrite)."""
        if self.kind == "sqlite":
            held = []
            for service in SERVICES:
                path = self.sqlite_file(service)
                if path.exists():
                    with sqlite3.connect(path) as conn:
                        if conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]:
                            held.append(service)
            return held
        schemas = self.schemas()
        engine = make_engine("intake", self.settings)
        with engine.connect() as conn:
            found = set(conn.execute(text("SELECT DISTINCT table_schema FROM information_schema.tables "
                                          "WHERE table_schema = ANY(:s)"), {"s": list(schemas.values())}).scalars())
        engine.dispose()
        return [service for service, schema in schemas.items() if schema in found]

    def pg_env(self) -> dict[str, str]:
        """libpq's variables for pg_dump and pg_restore: the password never on a command line."""
        assert self.settings.database_url is not None
        url: URL = make_url(self.settings.database_url)
        given = {"PGHOST": url.host, "PGPORT": str(url.port) if url.port else None, "PGUSER": url.username,
                 "PGPASSWORD": url.password, "PGDATABASE": url.database}
        return {**os.environ, **{k: v for k, v in given.items() if v}}


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not installed: install PostgreSQL's client tools (Debian: postgresql-client), "
                          "of the server's major version or newer")
    return found


def _run(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"{Path(args[0]).name} failed: {done.stderr.strip()[-2000:]}")


def create(settings: BackupSettings, target: Path, *, keys_out: Path | None = None) -> dict[str, Any]:
    """Write a backup of the three databases and intake's keys into the new directory `target`."""
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{target} is not empty: back up into a new directory")
    keys = current_keys(settings)
    store = Store(settings)
    revisions = store.revisions()
    if not any(revisions.values()):
        raise BackupError("no service database here to back up (wrong --data-dir, DATABASE_URL or schema prefix?)")
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    files: dict[str, str] = {}
    if store.kind == "sqlite":
        for service in SERVICES:
            source = store.sqlite_file(service)
            with sqlite3.connect(source) as src, sqlite3.connect(target / f"{service}.db") as dst:
                src.backup(dst)  # a consistent copy of this file, even while a service writes to it
            files[f"{service}.db"] = sha256(target / f"{service}.db")
    else:
        schemas = store.schemas()
        _run([_tool("pg_dump"), "--format=custom", "--file", str(target / PG_DUMP_FILE),
              *(arg for schema in schemas.values() for arg in ("--schema", schema))], store.pg_env())
        files[PG_DUMP_FILE] = sha256(target / PG_DUMP_FILE)
    keys_path = keys_out or target / KEYS_FILE
    _write_private(keys_path, "".join(f"{name}={value}\n" for name, value in keys.items()))
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "reroute_version": _version(),
        "database": store.kind,
        "schemas": store.schemas() if store.kind == "postgresql" else None,
        "migrations": revisions,
        "files": files,
        "keys": {"file": KEYS_FILE if keys_out is None else None, "fingerprints": fingerprints(keys)},
    }
    _write_private(target / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(source: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((source / MANIFEST).read_text())
    except OSError as exc:
        raise BackupError(f"{source} holds no backup: cannot read {MANIFEST} ({exc.strerror or exc})") from None
    except ValueError:
        raise BackupError(f"{source / MANIFEST} is not JSON: not a backup this version made") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{source} is a backup of format {manifest.get('format')!r}; this version reads {FORMAT}")
    for name, expected in manifest["files"].items():
        path = source / name
        if not path.is_file():
            raise BackupError(f"{path} is missing: the backup is incomplete")
        if sha256(path) != expected:
            raise BackupError(f"{path} does not match its checksum in the manifest: the backup is damaged")
    return manifest


def _restore_keys(settings: BackupSettings, manifest: dict[str, Any], keys: dict[str, str], *, force: bool) -> str:
    """Put the backup's keys where intake reads them, or check that the configured ones are they; says which."""
    wanted = manifest["keys"]["fingerprints"]
    configured = settings.configured_keys()
    if configured is not None:
        have = fingerprints(configured)
        short = [name for name, prints in wanted.items() if not set(prints) <= set(have.get(name, []))]
        if short:
            raise BackupError(f"{' and '.join(short)} as configured are not the backup's keys: set them from the "
                              "backup's keys file, or no restored referral can be read")
        return "the configured keys are the backup's"
    for name, file in KEY_FILES.items():
        path = settings.data_dir / file
        if path.exists() and path.read_text().strip() != keys[name] and not force:
            raise BackupError(f"{path} holds another key than the backup's: --force replaces it (keep a copy: data "
                              "written under it is unreadable without it)")
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name, file in KEY_FILES.items():
        path = settings.data_dir / file
        path.unlink(missing_ok=True)
        _write_private(path, keys[name] + "\n")
    return f"the keys are in {settings.data_dir}"


def restore(settings: BackupSettings, source: Path, *, keys_file: Path | None = None,
            force: bool = False) -> tuple[dict[str, Any], str]:
    """Bring the three databases and intake's keys back from the backup in `source`; returns its manifest and where
    the keys are."""
    manifest = read_manifest(source)
    store = Store(settings)
    if manifest["database"] != store.kind:
        raise BackupError(f"this backup is of {manifest['database']}, but the configured store is {store.kind} "
                          "(DATABASE_URL)")
    if keys_file is None and manifest["keys"]["file"] is None:
        raise BackupError("this backup's keys were written apart from it (--keys-out): give that file with --keys")
    keys = read_keys_file(keys_file or source / KEYS_FILE)
    if fingerprints(keys) != manifest["keys"]["fingerprints"]:
        raise BackupError("the keys file is not the one made with this backup (its fingerprints differ)")
    if store.kind == "postgresql" and store.schemas() != manifest["schemas"]:
        raise BackupError(f"the backup holds the schemas {manifest['schemas']}, but the configured prefix names "
                          f"{store.schemas()}: set REROUTE_DB_SCHEMA_PREFIX (or REROUTE_NAMESPACE) as it was")
    held = store.holding_tables()
    if held and not force:
        raise BackupError(f"the store holds data already ({', '.join(held)}): restore into an empty one, or --force "
                          "to replace it")
    where = _restore_keys(settings, manifest, keys, force=force)
    if store.kind == "sqlite":
        for service in SERVICES:
            with sqlite3.connect(source / f"{service}.db") as src, sqlite3.connect(store.sqlite_file(service)) as dst:
                src.backup(dst)
    else:
        engine = make_engine("intake", settings)
        with engine.begin() as conn:  # pg_restore makes each schema; drop what a force, or an empty schema, left
            for schema in manifest["schemas"].values():
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()
        _run([_tool("pg_restore"), "--exit-on-error", "--single-transaction", "--dbname",
              store.pg_env()["PGDATABASE"], str(source / PG_DUMP_FILE)], store.pg_env())
    restored = store.revisions()
    if restored != manifest["migrations"]:
        raise BackupError(f"after the restore the migrations are at {restored}, not the backup's "
                          f"{manifest['migrations']}")
    return manifest, where


def _version() -> str:
    try:
        return version("reroute")
    except PackageNotFoundError:
        return "unknown"


def _settings(data_dir: Path | None) -> BackupSettings:
    try:
        return BackupSettings(data_dir=data_dir) if data_dir is not None else BackupSettings()
    except (ConfigurationError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]", markup=False)
        raise typer.Exit(2) from None


@backup_app.command("create")
def create_cmd(
    directory: Annotated[Path, typer.Argument(metavar="DIRECTORY", help="A new directory for the backup.")],
    keys_out: Annotated[Path | None, typer.Option("--keys-out", help="Write intake's keys to this new file instead "
                                                  "of into DIRECTORY, to keep them apart from the data.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Back up the three services' databases and intake's keys into the new DIRECTORY."""
    try:
        manifest = create(_settings(data_dir), directory, keys_out=keys_out)
    except BackupError as exc:
        console.print(f"[red]Not backed up: {exc}[/red]", markup=False)
        raise typer.Exit(1) from None
    console.print(f"Backed up {', '.join(SERVICES)} ({manifest['database']}) into {directory} at "
                  f"{manifest['created_at']}.", markup=False)
    console.print(f"Intake's keys are in {keys_out or directory / KEYS_FILE}: without them no referral in the backup "
                  "can be read, and with them anyone can read it. Keep them safe, apart from the data.", markup=False)


@backup_app.command("restore")
def restore_cmd(
    directory: Annotated[Path, typer.Argument(metavar="DIRECTORY", help="A directory `reroute backup create` wrote.")],
    keys: Annotated[Path | None, typer.Option("--keys", help="The backup's keys file, if it was written apart "
                                              "(--keys-out).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a store that holds data already.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Restore the services' databases and intake's keys from DIRECTORY (stop the services first)."""
    settings = _settings(data_dir)
    try:
        manifest, where = restore(settings, directory, keys_file=keys, force=force)
    except BackupError as exc:
        console.print(f"[red]Not restored: {exc}[/red]", markup=False)
        raise typer.Exit(1) from None
    behind = [s for s, revision in manifest["migrations"].items() if revision != head(s)]
    console.print(f"Restored {', '.join(SERVICES)} from the backup of {manifest['created_at']}; {where}.",
                  markup=False)
    if behind:
        console.print(f"The schemas of {', '.join(behind)} are behind this version: run `reroute db upgrade`.",
                      markup=False)
    console.print(f"Erasures made since {manifest['created_at']} are not in this backup: erase those people again "
                  "(`reroute person erase PERSON_ID`) before anyone uses their data.", markup=False)
