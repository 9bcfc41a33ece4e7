"""NATS accounts, users and permissions: each agency in an account of its own, confined to its own subjects; each
service to what it needs.

`render_config` writes the accounts nats-server reads; `reroute up` runs its server with it and reloads it when the
agency registry changes. deploy/nats-auth.md shows the same for an operator-run cluster.

Everyone but the agencies (the services, the operator, the provisioner, the console, the notifier and the people)
is in one account, `REROUTE`, which holds the streams. Each agency is in an account of its own that imports only its
own subjects from it, so whatever reply subject an agency names on a message (where the server sends that message's
acknowledgement or error) lies in the agency's own account, never on another agency's subjects or in a stream.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt

from shared.streams import ACCEPTED_DURABLES_BEFORE, INTAKE_DURABLE_BEFORE
from shared.subjects import Subjects

SERVICES = ("intake", "risk", "scheduling")
ADMIN = "operator"
SERVICES_ACCOUNT = "REROUTE"
"""The account everyone but the agencies is in, and where the streams are."""
AGENCY_JS_API = "$JS.REROUTE.API"
"""The JetStream API prefix an agency's client uses (`nc.jetstream(prefix=AGENCY_JS_API)`): its own account has no
JetStream, so it reaches the few calls it may make on the services' account's streams through this prefix."""
SERVICES_API = "$SRV.>"
"""The NATS services API (nats.micro): every service answers PING, INFO and STATS there; the operator asks."""

_SUBJECTS = Subjects()  # the bare contract subjects; a namespaced copy runs without authorization
# What each service publishes besides its dead-letter subject, and whom it asks over request-reply.
_PUBLISHES: dict[str, list[str]] = {
    "intake": [_SUBJECTS.accepted(), _SUBJECTS.rejected(), _SUBJECTS.withdrawn(), _SUBJECTS.recorded(),
               _SUBJECTS.recorded_withdrawal()],
    "risk": [_SUBJECTS.assessed(), _SUBJECTS.alert()],
    "scheduling": [_SUBJECTS.sessions(), _SUBJECTS.alert()],
}
_ASKS: dict[str, list[tuple[str, str]]] = {  # request-reply verbs each service may call on another
    "intake": [("risk", "assessment"), ("risk", "audit.rows"), ("risk", "person.erase"), ("risk", "deadletters.held"),
               ("scheduling", "status"), ("scheduling", "closed.before"), ("scheduling", "person.erase"),
               ("scheduling", "deadletters.held")],
    "risk": [("scheduling", "closed.before")],  # a closed referral is no longer due for review
    "scheduling": [("intake", "first_name")],
}


@dataclass(frozen=True)
class JetStreamUse:
    """What a service does with JetStream, stream by stream; its NATS permissions allow that and nothing else."""

    consumers: list[tuple[str, str]]
    """(stream, durable) of each durable consumer it binds: it may create, read and acknowledge only those."""
    writes: list[str]
    """The streams its events go into (publishing is by subject; it may read these streams' info)."""
    erases: list[str] = field(default_factory=list)
    """Streams whose messages it may read one by one and delete: intake, erasing a person from the broker."""

    @property
    def streams(self) -> list[str]:
        """The streams it needs (checked at start): those it consumes and those it writes."""
        return list(dict.fromkeys([*(stream for stream, _ in self.consumers), *self.writes]))


def jetstream_use(service: str, s: Subjects) -> JetStreamUse:
    """Each service's streams and consumers, spelled by `s` (a namespaced copy runs without authorization, so the
    permissions use the bare names). The services' create_app registers these consumers; a test holds them
    together. Risk and scheduling get nothing of the submissions stream, where raw referrals wait for intake, nor of
    REFERRALS, which holds only what agencies are told; they read intake's facts from the INTAKE stream."""
    if service == "intake":
        return JetStreamUse(consumers=[(s.submissions_stream, s.durable("intake", "submitted"))],
                            writes=[s.referrals_stream, s.intake_stream, s.dead_letter_stream],
                            erases=list(dict.fromkeys(stream for stream, _ in s.agency_events("*"))))
    if service == "risk":
        return JetStreamUse(consumers=[(s.intake_stream, s.durable("risk", "recorded"))],
                            writes=[s.risk_stream, s.safeguarding_stream, s.dead_letter_stream])
    if service == "scheduling":
        return JetStreamUse(consumers=[(s.intake_stream, s.durable("scheduling", "recorded")),
                                       (s.risk_stream, s.durable("scheduling", "assessed"))],
                            writes=[s.sessions_stream, s.safeguarding_stream, s.dead_letter_stream])
    raise ValueError(f"no service {service!r}")


def jetstream_permissions(service: str) -> list[str]:
    """The JetStream API subjects a service may publish to: for each of its consumers, create or update it, read
    its info, pull from it and acknowledge its messages; for each stream it uses, read its info (not its
    messages); for each stream it erases from, get and delete a message. No `$JS.API.>`: no listing, no other
    stream's messages, no other consumer."""
    use = jetstream_use(service, _SUBJECTS)
    allowed: list[str] = []
    for stream, durable in use.consumers:
        allowed += [f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}", f"$JS.API.CONSUMER.CREATE.{stream}.{durable}",
                    f"$JS.API.CONSUMER.INFO.{stream}.{durable}", f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}",
                    f"$JS.ACK.{stream}.{durable}.>"]
    allowed += [f"$JS.API.STREAM.INFO.{stream}" for stream in use.streams]
    for stream in use.erases:
        allowed += [f"$JS.API.STREAM.MSG.GET.{stream}", f"$JS.API.STREAM.MSG.DELETE.{stream}"]
    if service == "intake":  # it makes each agency's durable consumers of its outcomes, filtered to the agency
        allowed += [f"$JS.API.CONSUMER.CREATE.{c.stream}.*.{c.filter_subject}"
                    for c in _SUBJECTS.agency_outcomes("*")]
    return allowed


@dataclass(frozen=True)
class NatsUser:
    user: str
    password: str  # a bcrypt hash in the config
    publish: list[str]
    subscribe: list[str]
    allow_responses: bool = False
    deny_publish: list[str] = field(default_factory=list)
    deny_subscribe: list[str] = field(default_factory=list)
    account: str = SERVICES_ACCOUNT
    imports: list[dict[str, object]] = field(default_factory=list)
    """What the user's account imports from the services' account (an agency's account; `agency_imports`)."""


RESERVED_IDS = frozenset({*SERVICES, ADMIN, "admin", "reroute", "console", "notifier", "provisioner", "system",
                          "sys"})
"""Names no agency may take: the services', the operator's and the platform's own."""


def inbox_prefix(name: str) -> str:
    """A service's or the operator's private reply subjects (`_INBOX_<name>`)."""
    return f"_INBOX_{name}"


def agency_inbox_prefix(agency_id: str) -> str:
    """An agency's private reply subjects: `_INBOX_AGENCY.<id>`, a namespace of their own, so no agency id can
    name a service's inbox or another agency's, whatever it is (ids are whole subject tokens here)."""
    return f"_INBOX_AGENCY.{agency_id}"


def unanswerable(reply: str | None) -> str | None:
    """Why a request with reply subject `reply` gets no answer, or None to answer it.

    No reply subject: not a request from a client, but a message the server itself sent here because someone named
    this subject as the reply to something else (a publish's PubAck, the empty reply to an acknowledgement); it must
    not act on anyone's behalf. Otherwise the reply subject is the asker's to choose, so an answer goes only onto an
    inbox (`_INBOX.…`, `_INBOX_<name>.…`, a person's), never an agency's (its namespace holds its durable consumers'
    deliveries, which a stream export carries to the agency), nor any other subject (an event subject a stream keeps):
    a person could otherwise have an assessment published on an agency's outcome subject."""
    if not reply:
        return "ignored a message that asks for no reply"
    if not reply.startswith(("_INBOX.", "_INBOX_")) or reply.startswith("_INBOX_AGENCY."):
        return f"refused to answer onto {reply:.80}, which is not the asker's inbox"
    return None


def normalised_agency_id(agency_id: str) -> str:
    """The form two ids must not share: `yot-c` and `yot_c` look alike to people, so only one may exist."""
    return agency_id.lower().replace("-", "_")


def agency_consumer_permissions(agency_id: str) -> list[str]:
    """The JetStream API an agency may use: read the info of its own durable consumers of its outcomes (through
    `AGENCY_JS_API`) and acknowledge what they deliver. Intake makes those consumers; an agency may make none itself,
    since a consumer's configuration (its deliver subject, which the server publishes on for it) cannot be confined
    by a permission, and no pull (`MSG.NEXT`)."""
    allowed: list[str] = []
    for c in _SUBJECTS.agency_outcomes(agency_id):
        allowed += [f"{AGENCY_JS_API}.CONSUMER.INFO.{c.stream}.{c.durable}", f"$JS.ACK.{c.stream}.{c.durable}.>"]
    return allowed


def agency_account(agency_id: str) -> str:
    return f"agency-{agency_id}"


def agency_exports() -> list[dict[str, object]]:
    """What the services' account offers the agencies' accounts; each agency imports only its own part
    (`agency_imports`). A service export carries an agency's message in, and the server's answer back to the reply
    subject the agency named, in the agency's account; a stream export lets an agency's subscriptions see messages."""
    s = _SUBJECTS
    outcome_streams = dict.fromkeys(c.stream for c in s.agency_outcomes("*"))  # REFERRALS and SESSIONS only
    services = (s.submitted("*"), s.updated("*"), s.withdraw("*"),
                *(f"$JS.API.CONSUMER.INFO.{stream}.*" for stream in outcome_streams),
                *(f"$JS.ACK.{stream}.*.>" for stream in outcome_streams))
    streams = (s.about_referrals("*"), s.sessions("*"), "_INBOX_AGENCY.*.outcomes.>")
    exports: list[dict[str, object]] = [{"service": subject} for subject in services]
    return exports + [{"stream": subject} for subject in streams]


def agency_imports(agency_id: str) -> list[dict[str, object]]:
    """An agency's account imports its own submissions, updates and withdrawals (to the streams), its own events
    (live), its own durable consumers' info (as `AGENCY_JS_API`), their acknowledgements and what they push into
    its inbox namespace; nothing of any other agency's."""
    s, source = _SUBJECTS, SERVICES_ACCOUNT
    imports: list[dict[str, object]] = [
        {"service": {"account": source, "subject": subject}}
        for subject in (s.submitted(agency_id), s.updated(agency_id), s.withdraw(agency_id))]
    for c in s.agency_outcomes(agency_id):
        imports += [{"service": {"account": source, "subject": f"$JS.API.CONSUMER.INFO.{c.stream}.{c.durable}"},
                     "to": f"{AGENCY_JS_API}.CONSUMER.INFO.{c.stream}.{c.durable}"},
                    {"service": {"account": source, "subject": f"$JS.ACK.{c.stream}.{c.durable}.>"}},
                    {"stream": {"account": source, "subject": c.deliver_subject}}]
    imports += [{"stream": {"account": source, "subject": subject}}
                for subject in (s.about_referrals(agency_id), s.sessions(agency_id))]
    return imports


def agency_user(agency_id: str, password_hash: str) -> NatsUser:
    """An agency may publish (submit, update, withdraw) only its own referrals and read only its own outcomes, live or
    from its own durable consumers; no streams, no risk."""
    return NatsUser(
        user=f"agency-{agency_id}",
        password=password_hash,
        publish=[_SUBJECTS.submitted(agency_id), _SUBJECTS.updated(agency_id), _SUBJECTS.withdraw(agency_id),
                 *agency_consumer_permissions(agency_id)],
        subscribe=[_SUBJECTS.about_referrals(agency_id), _SUBJECTS.sessions(agency_id),
                   f"{agency_inbox_prefix(agency_id)}.>"],
        account=agency_account(agency_id),
        imports=agency_imports(agency_id),
    )


def service_user(service: str, password_hash: str) -> NatsUser:
    return NatsUser(
        user=service,
        password=password_hash,
        publish=[*_PUBLISHES[service], _SUBJECTS.dead_letter(service), *jetstream_permissions(service),
                 *(_SUBJECTS.rpc(other, verb) for other, verb in _ASKS[service])],
        subscribe=[_SUBJECTS.rpc(service, ">"), _SUBJECTS.ask("*", service, ">"), f"{inbox_prefix(service)}.>",
                   SERVICES_API],
        allow_responses=True,  # answers requests: its rpc endpoints', and the services API's PING, INFO and STATS
    )


OPERATOR_INBOX = "_INBOX"
"""The operator account's replies: a client's default inbox, which no other user may read (each has its own)."""


def operator_jetstream() -> list[str]:
    """The JetStream API subjects the operator account may publish to: the demo's reading of its alerts (an
    ephemeral ordered consumer of `SAFEGUARDING` and its flow control), nothing else. Provisioning is the
    provisioner's (`provisioner_jetstream`): the operator may not read, create, update or purge any stream."""
    alerts = _SUBJECTS.safeguarding_stream
    return [f"$JS.API.CONSUMER.CREATE.{alerts}", f"$JS.FC.{alerts}.>"]


def operator_publishes() -> list[str]:
    """What the operator account may publish, each for one job: pings (`reroute up`, a deployment's checks, and the
    NATS services API); keeping agency and people users in step (their password hashes) and making the first admin;
    and the demo's alerts (`operator_jetstream`)."""
    from shared.contracts.intake_rpc import AGENCY_NATS_HASHES, BOOTSTRAP_ADMIN, PEOPLE_NATS_HASHES
    from shared.contracts.rpc import PING

    return [_SUBJECTS.rpc("*", PING.verb),
            *(_SUBJECTS.rpc("intake", e.verb) for e in (AGENCY_NATS_HASHES, PEOPLE_NATS_HASHES, BOOTSTRAP_ADMIN)),
            SERVICES_API, *operator_jetstream()]


def admin_user(password_hash: str) -> NatsUser:
    """The installation's own account, not a person's: `reroute up`'s supervisor and a deployment's NATS process
    (pings, keeping agency and people users in step), the demo's alerts, and the first admin, once. It may do those
    and nothing else: ask no request a person may ask (so none that reads or changes anyone's data, and none in
    anyone's name), administer no stream (provisioning is the provisioner's), and subscribe to nothing but the
    replies to its own requests. Not closed: an ephemeral consumer's deliver subject is its creator's to choose, so
    it can have SAFEGUARDING's alerts (ids and rules, nothing about a person) delivered anywhere (deploy/nats-auth.md)."""
    return NatsUser(user=ADMIN, password=password_hash, publish=operator_publishes(),
                    subscribe=[f"{OPERATOR_INBOX}.>"])


PROVISIONER = "provisioner"
"""The user stream provisioning runs as (`reroute streams provision`, `reroute up`, a deployment's migrate step)."""


def provisioner_jetstream() -> list[str]:
    """The JetStream API subjects provisioning publishes to: read, create and update each of the streams by name;
    and for its upgrade of an earlier layout (shared/streams.py, docs/reliability.md), which reads, moves and erases
    the raw submissions that `REFERRALS` kept then, that stream's messages (get, delete, purge) and the earlier
    consumers (info, delete), on `REFERRALS` alone. No `$JS.API.>`: no listing, no other stream's messages (none of
    `SUBMISSIONS` by `MSG.GET` or `DIRECT.GET`), no consumer of any other stream, no stream deleted."""
    old = _SUBJECTS.referrals_stream
    return [*(f"$JS.API.STREAM.{verb}.{spec.name}" for spec in _SUBJECTS.streams()
              for verb in ("INFO", "CREATE", "UPDATE")),
            f"$JS.API.STREAM.MSG.GET.{old}", f"$JS.API.STREAM.MSG.DELETE.{old}", f"$JS.API.STREAM.PURGE.{old}",
            *(f"$JS.API.CONSUMER.{verb}.{old}.{durable}" for durable in (INTAKE_DURABLE_BEFORE, *ACCEPTED_DURABLES_BEFORE)
              for verb in ("INFO", "DELETE"))]


def provisioner_user(password_hash: str) -> NatsUser:
    """Stream provisioning and its upgrade of an earlier layout, nothing else: its JetStream API
    (`provisioner_jetstream`) and the subjects the upgrade moves pending messages to (raw submissions and updates,
    and intake's facts); no request, and no subscription but its own replies (`_INBOX_provisioner`). Updating a
    stream is administering it (a stream's configuration can take in any subject and republish it), so its
    password is kept only where provisioning runs: `reroute up`'s data dir, a deployment's migrate step; not the
    CLI containers, nor the NATS process, which has only its hash."""
    return NatsUser(user=PROVISIONER, password=password_hash,
                    publish=[*provisioner_jetstream(),
                             _SUBJECTS.submitted("*"), _SUBJECTS.updated("*"), _SUBJECTS.recorded("*")],
                    subscribe=[f"{inbox_prefix(PROVISIONER)}.>"])


# --- people: each their own user, confined to their own subjects, as agencies are ----------------------------

CONSOLE = "console"
PEOPLE_INBOXES = "_INBOX_PERSON"


def person_nats_user(person_id: str) -> str:
    return f"person-{person_id}"


def person_inbox_prefix(person_id: str) -> str:
    """A person's private reply subjects: `_INBOX_PERSON.<id>`, a namespace of their own (as agencies have)."""
    return f"{PEOPLE_INBOXES}.{person_id}"


def role_requests(person_id: str, roles: Iterable[str]) -> list[str]:
    """The request subjects a person with these roles may publish on: each endpoint one of the roles may call
    (`Endpoint.roles`, shared/contracts), on `reroute.ask.<person id>.<service>.<verb>`."""
    from shared.contracts.rpc import Role, all_endpoints

    held = {Role(r) for r in roles}
    return [_SUBJECTS.ask(person_id, service, e.verb) for e in all_endpoints() if held & e.roles
            for service in e.services]


def person_user(person_id: str, password_hash: str, roles: Iterable[str]) -> NatsUser:
    """A person may ask exactly what their roles allow, in their own name only, and read only their own replies.
    An operator may also submit referrals on an agency's behalf (`reroute submit`) and read their outcomes."""
    held = set(roles)
    submits = "operator" in held
    return NatsUser(
        user=person_nats_user(person_id),
        password=password_hash,
        publish=[*role_requests(person_id, held),
                 *([_SUBJECTS.submitted("*"), _SUBJECTS.updated("*")] if submits else [])],
        subscribe=[f"{person_inbox_prefix(person_id)}.>",
                   *([_SUBJECTS.accepted("*"), _SUBJECTS.rejected("*")] if submits else [])],
    )


def console_user(password_hash: str) -> NatsUser:
    """The web console: the one client trusted to act for the people logged in to it, so it may ask every request
    any role may ask, in anyone's name (it must check the person's roles, from `people.whoami`, itself); it alone
    may check and replace console passwords; it hears safeguarding alerts as they are raised (its live pages); it
    answers the requests to the console (`spans.erase`), asked in the name of the people whose roles may."""
    from shared.contracts.intake_rpc import CONSOLE_ONLY
    from shared.contracts.rpc import all_endpoints

    return NatsUser(user=CONSOLE, password=password_hash,
                    publish=[*(_SUBJECTS.ask("*", service, e.verb) for e in all_endpoints() if e.roles
                               for service in e.services),
                             *(_SUBJECTS.rpc(service, e.verb) for e in CONSOLE_ONLY for service in e.services)],
                    subscribe=[f"{inbox_prefix(CONSOLE)}.>", _SUBJECTS.alert("*"),
                               *(subject for e in all_endpoints() if CONSOLE in e.services
                                 for subject in (_SUBJECTS.ask("*", CONSOLE, e.verb), _SUBJECTS.rpc(CONSOLE, e.verb)))],
                    allow_responses=True)  # answers the requests to the console (ERASE_SPANS)


NOTIFIER = "notifier"


def notifier_user(password_hash: str) -> NatsUser:
    """The safeguarding notifier (apps/notifier): it reads the safeguarding alerts through its own durable consumer,
    asks risk and scheduling for their unacknowledged alerts (`alerts.list`, nothing else), and keeps the alerts it
    has escalated in a key-value bucket of its own. It reads no other stream, and asks nothing in a person's name."""
    from shared.contracts.safeguarding_rpc import ALERTS

    stream, durable = _SUBJECTS.safeguarding_stream, _SUBJECTS.durable(NOTIFIER, "alert")
    bucket = _SUBJECTS.escalations_bucket
    kv_stream = f"KV_{bucket}"
    return NatsUser(user=NOTIFIER, password=password_hash,
                    publish=[*(_SUBJECTS.rpc(service, ALERTS.verb) for service in ALERTS.services),
                             f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
                             f"$JS.API.CONSUMER.CREATE.{stream}.{durable}",
                             f"$JS.API.CONSUMER.CREATE.{stream}.{durable}.>",
                             f"$JS.API.CONSUMER.INFO.{stream}.{durable}", f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}",
                             f"$JS.ACK.{stream}.{durable}.>", f"$JS.API.STREAM.INFO.{stream}",
                             f"$JS.API.STREAM.CREATE.{kv_stream}", f"$JS.API.STREAM.INFO.{kv_stream}",
                             f"$JS.API.STREAM.MSG.GET.{kv_stream}", f"$JS.API.DIRECT.GET.{kv_stream}.>",
                             f"$KV.{bucket}.>"],
                    subscribe=[f"{inbox_prefix(NOTIFIER)}.>"])


def _user_entry(u: NatsUser) -> dict[str, object]:
    return {
        "user": u.user,
        "password": u.password,
        "permissions": {
            "publish": {"allow": u.publish, **({"deny": u.deny_publish} if u.deny_publish else {})},
            "subscribe": {"allow": u.subscribe, **({"deny": u.deny_subscribe} if u.deny_subscribe else {})},
            **({"allow_responses": True} if u.allow_responses else {}),
        },
    }


def render_config(users: list[NatsUser], *, host: str | None = None, port: int | None = None,
                  store_dir: Path | None = None) -> str:
    """A nats-server configuration with these users in their accounts (`SERVICES_ACCOUNT`, with JetStream and the
    exports the agencies import, and each agency's own), and JetStream when `store_dir` is given (JSON is valid NATS
    config syntax). Leave host, port and store out when the command line gives them."""
    accounts: dict[str, dict[str, object]] = {
        SERVICES_ACCOUNT: {"jetstream": "enabled", "users": [], "exports": agency_exports()}}
    for u in users:
        account = accounts.setdefault(u.account, {"users": [], "imports": u.imports})
        account["users"].append(_user_entry(u))  # type: ignore[attr-defined]
    config: dict[str, object] = {
        **({"host": host} if host else {}),
        **({"port": port} if port else {}),
        **({"jetstream": {"store_dir": str(store_dir)}} if store_dir else {}),
        "accounts": accounts,
    }
    return json.dumps(config, indent=2)


class StoreConflict(Exception):
    """Both an earlier version's streams (`jetstream/$G`) and this version's (`jetstream/REROUTE`) are in the store."""


def move_streams_into_account(store_dir: Path) -> bool:
    """Streams made before the accounts (this version) are in the global account's directory of a server's store
    (`jetstream/$G`): move them into the services' account's, where they are from now on. Only while the server is
    stopped, and only for a single server (a cluster's streams are assigned by its meta group: deploy/nats-auth.md).
    True when it moved them; nothing to move (a new store, or moved before) is False. Raises `StoreConflict` when
    both hold streams (an earlier version ran again after this one): neither may be dropped without a person's say."""
    old, new = store_dir / "jetstream" / "$G", store_dir / "jetstream" / SERVICES_ACCOUNT
    if not old.is_dir():
        return False
    if new.exists():
        if any((old / "streams").glob("*")):
            raise StoreConflict(
                f"{store_dir / 'jetstream'} holds streams in both $G (an earlier version's, made after this version "
                f"last ran: the earlier version was started again) and {SERVICES_ACCOUNT} (this version's). Neither is "
                f"dropped for you: keep the one with the newer data and move the other out of {store_dir / 'jetstream'}"
                " (deploy/nats-auth.md, 'Upgrading from a version without accounts'); to run the earlier version, "
                f"rename {SERVICES_ACCOUNT} to $G first.")
        return False  # an empty $G (a server started without accounts made it): nothing to keep
    old.rename(new)
    return True


NATS_BCRYPT_COST = 4
"""bcrypt's lowest cost, for NATS passwords: each is made by reroute, 192 random bits or more, so no cost could make
guessing one any harder, while nats-server checks the hash of every connected client again at each reload (about
60 ms a client at cost 10: a reload with a dozen clients took most of a second, and connections opened or closed
meanwhile were refused or logged as errors)."""


def hash_password(password: str) -> str:
    """The bcrypt hash nats-server reads (`$2a$`) of a password reroute made (`NATS_BCRYPT_COST`)."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=NATS_BCRYPT_COST)).decode().replace("$2b$", "$2a$", 1)


@dataclass
class LocalCredentials:
    """The services', the operator's and the provisioner's passwords for a local server, kept in the data dir
    (mode 0600)."""

    passwords: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load_or_create(cls, path: Path) -> LocalCredentials:
        """The passwords kept in `path`, with one made for any account the file does not have yet (the console's
        or the provisioner's in a data dir from before it existed); those kept are kept."""
        kept: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        missing = [name for name in (*SERVICES, ADMIN, CONSOLE, NOTIFIER, PROVISIONER) if name not in kept]
        creds = cls({**kept, **{name: secrets.token_urlsafe(24) for name in missing}})
        if missing:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(json.dumps(creds.passwords))
        return creds

    def url(self, name: str, base: str) -> str:
        """`base` (nats://host:port) with this user's credentials."""
        scheme, rest = base.split("://", 1)
        return f"{scheme}://{name}:{self.passwords[name]}@{rest}"


@dataclass(frozen=True)
class AgencyCredential:
    agency_id: str
    password_hash: str


@dataclass(frozen=True)
class PersonCredential:
    person_id: str
    roles: tuple[str, ...]
    password_hash: str


@dataclass(frozen=True)
class KnownUsers:
    """The agencies and people a server last let in (their password hashes), kept in two files beside its
    configuration (0600), so that a restarted server lets them in at once, before intake answers again."""

    agencies_file: Path
    people_file: Path

    def load(self) -> tuple[list[AgencyCredential], list[PersonCredential]]:
        """What was kept; nothing from a file that is missing or unreadable (the first sync brings them)."""
        try:
            agencies = [AgencyCredential(a["agency_id"], a["password_hash"])
                        for a in json.loads(self.agencies_file.read_text())]
        except (OSError, ValueError, KeyError, TypeError):
            agencies = []
        try:
            people = [PersonCredential(p["person_id"], tuple(p["roles"]), p["password_hash"])
                      for p in json.loads(self.people_file.read_text())]
        except (OSError, ValueError, KeyError, TypeError):
            people = []
        return agencies, people

    def save(self, agencies: list[AgencyCredential], people: list[PersonCredential]) -> None:
        write_private_json(self.agencies_file, [a.__dict__ for a in agencies])
        write_private_json(self.people_file, [{**p.__dict__, "roles": list(p.roles)} for p in people])


def write_private_json(path: Path, value: object) -> None:
    write_private_text(path, json.dumps(value, indent=2))


def write_private_text(path: Path, text: str) -> None:
    """`text` in `path`, readable by its owner only, replaced whole (a reader never sees it half-written)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.touch(mode=0o600)
    tmp.write_text(text)
    tmp.replace(path)


class NatsAuthFile:
    """The local server's configuration: the services, the operator, the provisioner, every active agency and
    person (kept beside it: `known`)."""

    def __init__(self, path: Path, creds: LocalCredentials) -> None:
        self.path = path
        self._hashes = {name: hash_password(pw) for name, pw in creds.passwords.items()}
        self._agencies: list[AgencyCredential] | None = None
        self._people: list[PersonCredential] = []
        self._written_people: list[PersonCredential] | None = None
        self.known = KnownUsers(path.with_name("nats-agencies.json"), path.with_name("nats-people.json"))

    @property
    def agency_ids(self) -> set[str]:
        """The agencies last written (each an account of its own)."""
        return {a.agency_id for a in self._agencies or []}

    def forget(self) -> None:
        """What was written is not known to be in force (its reload failed): the next `write` writes it again."""
        self._agencies = self._written_people = None

    def write(self, *, agencies: list[AgencyCredential], people: list[PersonCredential] | None = None) -> bool:
        """Write the configuration; False when the agencies and people are unchanged (nothing to reload).
        `people` None: as last written."""
        people = self._people if people is None else list(people)
        if agencies == self._agencies and people == self._written_people:
            return False
        users = [service_user(s, self._hashes[s]) for s in SERVICES]
        users += [admin_user(self._hashes[ADMIN]), provisioner_user(self._hashes[PROVISIONER]),
                  *(agency_user(a.agency_id, a.password_hash) for a in agencies)]
        users += [console_user(self._hashes[CONSOLE]), notifier_user(self._hashes[NOTIFIER]),
                  *(person_user(p.person_id, p.password_hash, p.roles) for p in people)]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_private_text(self.path, render_config(users))
        self.known.save(list(agencies), people)
        self._agencies = list(agencies)
        self._people = self._written_people = people
        return True
