"""The CLI's NATS client: request-reply to the services, as the person at the terminal, with errors a person can
act on.

Who that person is comes from their credentials file (`reroute people add` writes it; the registry keeps only a
hash): REROUTE_CREDENTIALS names it; without it, the data dir's `admin-credentials.json`, the first admin that
`reroute up` makes for local use, when this is that local server. With credentials the CLI connects as the
person's own NATS user and asks on subjects that end in their id (`reroute.ask.<id>.<service>.<verb>`), which is
where the services read who asked; without, it asks the services' own subjects, which only a server without users
(a test's) lets it do.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import nats
import nats.errors
from nats.aio.client import Client
from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.contracts.intake_rpc import PersonCredentials
from shared.contracts.rpc import Endpoint, ServiceError, decode_reply
from shared.nats_auth import ADMIN, PROVISIONER, LocalCredentials
from shared.settings import CREDENTIALS_FILE, ServiceSettings
from shared.subjects import Subjects

Req = TypeVar("Req", bound=BaseModel)
Rep = TypeVar("Rep", bound=BaseModel)

LOCAL_ADMIN_FILE = "admin-credentials.json"
"""The first admin `reroute up` makes on its own server, for local use only (in the data dir, 0600)."""


class CliError(RuntimeError):
    """Something the person at the terminal can fix; printed without a traceback."""


class NoAnswer(CliError):
    """A running service did not answer in time (busy, or its machine overloaded): asking again may work."""


class Who(BaseSettings):
    """REROUTE_CREDENTIALS: the file with the person's credentials."""

    model_config = SettingsConfigDict(env_prefix="REROUTE_", extra="ignore", hide_input_in_errors=True)

    credentials: Path | None = None


def read_credentials(path: Path) -> PersonCredentials:
    try:
        return PersonCredentials.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise CliError(f"Cannot read the credentials file {path} ({exc.strerror}).") from None
    except ValidationError:
        raise CliError(f"{path} is not a reroute credentials file (`reroute people add` writes one).") from None


def identity(settings: ServiceSettings) -> PersonCredentials | None:
    """The person the CLI acts as: REROUTE_CREDENTIALS, else the local first admin on `reroute up`'s own server."""
    given = Who().credentials
    if given is not None:
        return read_credentials(given)
    local = settings.data_dir / LOCAL_ADMIN_FILE
    if not settings.nats_url and local.exists():
        return read_credentials(local)
    return None


@dataclass
class Refusals:
    """The server's permission violations on this connection (its -ERR arrives apart from the request)."""

    seen: list[str]

    async def record(self, exc: Exception) -> None:
        self.seen.append(str(exc))

    def of(self, subject: str) -> bool:
        return any(f'"{subject}"' in e for e in self.seen)


class ServiceClient:
    """Asks the services over NATS request-reply; every reply is validated into its contract's model."""

    def __init__(self, nc: Client, subjects: Subjects, url: str, *, person: PersonCredentials | None = None,
                 refusals: Refusals | None = None) -> None:
        self.nc = nc
        self.subjects = subjects
        self.url = url
        self.person = person
        self._refusals = refusals or Refusals([])

    async def call(self, endpoint: Endpoint[Req, Rep], request: Req, *, service: str | None = None,
                   timeout: float = 5) -> Rep:
        """The typed reply; a service's refusal is raised as `ServiceError` (its code and message), no answer
        as `CliError` saying what to do."""
        asked = endpoint.service(service)
        if self.person is None:
            subject = self.subjects.rpc(asked, endpoint.verb)
        else:
            if not set(self.person.roles) & endpoint.roles:
                raise CliError(self._not_yours(asked, endpoint))
            subject = self.subjects.ask(self.person.person_id, asked, endpoint.verb)
        try:
            reply = await self.nc.request(subject, request.model_dump_json().encode(), timeout=timeout)
        except nats.errors.NoRespondersError:
            raise CliError(f"The {asked} service is not running (no answer on {self.url}). Start it with `reroute "
                           "up`.") from None
        except nats.errors.TimeoutError:
            if self._refusals.of(subject):
                raise CliError(self._not_yours(asked, endpoint) + " (the NATS server refused it)") from None
            raise NoAnswer(f"The {asked} service did not answer within {timeout:.0f} s.") from None
        try:
            return decode_reply(endpoint, reply.data)
        except ServiceError as exc:
            raise ServiceError(exc.code, f"{asked}: {exc.message}") from None

    def _not_yours(self, service: str, endpoint: Endpoint[Req, Rep]) -> str:
        who = f"{self.person.person_id} ({', '.join(self.person.roles)})" if self.person else "this connection"
        needs = ", ".join(sorted(endpoint.roles)) or "none: only the services ask it"
        return f"{who} may not ask {service} {endpoint.verb}; the roles that may: {needs}."


def operator_url(settings: ServiceSettings) -> str:
    """NATS_URL as given; else the local server `reroute up` started, as the installation's operator account."""
    url = settings.resolved_nats_url()
    creds = settings.data_dir / CREDENTIALS_FILE
    if settings.nats_url or not creds.exists():
        return url
    return LocalCredentials.load_or_create(creds).url(ADMIN, url)


def provisioner_url(settings: ServiceSettings) -> str:
    """NATS_URL as given (a deployment's migrate step names the provisioner there); else the local server `reroute
    up` started, as its provisioner, the one user that may create and update the streams."""
    url = settings.resolved_nats_url()
    creds = settings.data_dir / CREDENTIALS_FILE
    if settings.nats_url or not creds.exists():
        return url
    return LocalCredentials.load_or_create(creds).url(PROVISIONER, url)


def person_url(settings: ServiceSettings, person: PersonCredentials) -> str:
    """The server (NATS_URL without any user in it, else `reroute up`'s), as the person's own user."""
    servers = []
    for server in settings.resolved_nats_url().split(","):
        scheme, rest = server.strip().split("://", 1) if "://" in server else ("nats", server.strip())
        servers.append(f"{scheme}://{person.nats_user}:{person.password}@{rest.rsplit('@', 1)[-1]}")
    return ",".join(servers)


RELOAD_WITHIN = 3.0
RELOAD_PAUSE = 0.2
"""nats-server refuses every user for a moment while it reloads its users (2.15: `Authorization Violation` for a user
whose entry did not change, logged as an authentication error), and `reroute up` reloads whenever people or agencies
change. So a refused connection is tried again, `RELOAD_PAUSE` seconds apart, for up to `RELOAD_WITHIN` seconds (a
reload on a loaded machine can take longer than a few tries), before a person is told they are not let in."""


def _refused(exc: Exception, refusals: Refusals) -> bool:
    return any("authorization" in e.lower() for e in (str(exc), *refusals.seen))


async def _open(url: str, person: PersonCredentials | None) -> tuple[Client, Refusals]:
    """A connection, tried again when the server refused or dropped it while it was being made (`RELOAD_WITHIN`)."""
    until = time.monotonic() + RELOAD_WITHIN
    while True:
        refusals = Refusals([])
        try:
            nc = await nats.connect(url.split(","), max_reconnect_attempts=1, connect_timeout=3, reconnect_time_wait=0.2,
                                    allow_reconnect=False, name="reroute-cli", error_cb=refusals.record,
                                    **({"inbox_prefix": person.inbox_prefix} if person is not None else {}))
            return nc, refusals
        except (OSError, TimeoutError, nats.errors.Error) as exc:
            refused = _refused(exc, refusals)
            if time.monotonic() < until and (refused or isinstance(exc, ConnectionResetError)):
                await asyncio.sleep(RELOAD_PAUSE)
                continue
            shown = url.split("@")[-1]
            if person is not None and refused:
                raise CliError(f"NATS at {shown} does not let {person.person_id} in: removed, or an old credentials "
                               "file (an admin can add them again).") from None
            if refused:
                raise CliError(f"NATS at {shown} does not let the operator account in: is this the data dir (or "
                               "NATS_URL) of the server it was made for?") from None
            raise CliError(f"Cannot reach NATS at {shown}. Is `reroute up` running (or NATS_URL right)?") from None


@asynccontextmanager
async def connect(settings: ServiceSettings, *, as_operator: bool = False) -> AsyncIterator[ServiceClient]:
    """A client acting as the person (`identity`); `as_operator`: as the installation's operator account instead
    (what `reroute up` and a deployment's first-admin bootstrap use)."""
    person = None if as_operator else identity(settings)
    url = person_url(settings, person) if person is not None else operator_url(settings)
    nc, refusals = await _open(url, person)
    try:
        yield ServiceClient(nc, Subjects(settings.namespace), url.split("@")[-1], person=person, refusals=refusals)
    finally:
        await nc.close()


def refuse_existing(path: Path) -> None:
    """Said before a password is made, so that none is made that could not be written."""
    if path.exists() or path.is_symlink():
        raise CliError(f"{path} exists already: give another --out (nothing was changed).")


def write_credentials(path: Path, credentials: PersonCredentials) -> None:
    """A new file only the person can read (0600, never over an existing file or through a symlink)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise CliError(f"{path} exists already: give another --out (nothing was written).") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(credentials.model_dump(mode="json"), indent=2) + "\n")


def write_private(path: Path, text: str, *, replace: bool) -> None:
    """Write `text` to a new file that only its user can read from its first byte (0600), never through a symlink.
    An existing path is refused unless `replace`: then a new file takes its place (a symlink there is replaced,
    whatever it points at is left alone), so a reader never sees it half-written."""
    data = text.encode("utf-8")
    try:
        if not replace:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
            try:
                fd = os.open(path, flags, 0o600)
            except FileExistsError:
                raise CliError(f"{path} exists: choose another file, or --force to replace it") from None
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
            except BaseException:
                path.unlink(missing_ok=True)
                raise
            return
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")  # 0600, new
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(temporary, path)  # renames over the path itself: a symlink there goes, its target stays
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None
