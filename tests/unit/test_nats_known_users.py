"""The local server's users survive a restart of `reroute up`: the agencies and people it last let in are kept
beside its configuration (hashes only, 0600), so it lets them in at once, before intake answers the first sync."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from shared.nats_auth import (
    SERVICES_ACCOUNT,
    AgencyCredential,
    LocalCredentials,
    NatsAuthFile,
    PersonCredential,
    agency_account,
)


def test_a_restarted_local_server_lets_in_the_agencies_and_people_it_knew(tmp_path: Path) -> None:
    creds = LocalCredentials.load_or_create(tmp_path / "credentials.json")
    yot = AgencyCredential("yot-camden", "$2a$04$" + "a" * 53)
    sam = PersonCredential("sam", ("scheduler",), "$2a$04$" + "b" * 53)
    NatsAuthFile(tmp_path / "nats-auth.conf", creds).write(agencies=[yot], people=[sam])

    restarted = NatsAuthFile(tmp_path / "nats-auth.conf", creds)
    agencies, people = restarted.known.load()
    assert restarted.write(agencies=agencies, people=people)

    config = json.loads((tmp_path / "nats-auth.conf").read_text())
    assert config["accounts"][agency_account("yot-camden")]["users"][0]["password"] == yot.password_hash
    assert "person-sam" in {u["user"] for u in config["accounts"][SERVICES_ACCOUNT]["users"]}
    for kept in (restarted.known.agencies_file, restarted.known.people_file, tmp_path / "nats-auth.conf"):
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600, kept


def test_unreadable_kept_users_start_with_none_until_the_first_sync(tmp_path: Path) -> None:
    auth = NatsAuthFile(tmp_path / "nats-auth.conf", LocalCredentials.load_or_create(tmp_path / "credentials.json"))
    auth.known.agencies_file.write_text("{not json")
    auth.known.people_file.write_text('[{"person_id": "sam"}]')  # no roles, no hash
    assert auth.known.load() == ([], [])


def test_a_configuration_whose_reload_failed_is_written_again(tmp_path: Path) -> None:
    auth = NatsAuthFile(tmp_path / "nats-auth.conf", LocalCredentials.load_or_create(tmp_path / "credentials.json"))
    yot = AgencyCredential("yot-camden", "$2a$04$" + "a" * 53)
    assert auth.write(agencies=[yot], people=[])
    assert not auth.write(agencies=[yot], people=[]), "unchanged: nothing to reload"
    auth.forget()
    assert auth.agency_ids == set(), "so the agency counts as added again: two reloads"
    assert auth.write(agencies=[yot], people=[])
