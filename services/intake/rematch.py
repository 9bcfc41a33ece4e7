"""Storing every person under the current match key again (`reroute keys rematch`): after an upgrade that changed
how names are compared (the confusables skeleton), or a new matching key put in front of the old one.

A person's match key is recomputed from the names and birth date in their latest referral, decrypted in memory,
never from the old hash, so it works whichever keys are still configured. Batch by batch in person id order, one
transaction each; an interrupted run leaves every person either under their old key (still recognised while that
key is configured, and moved by the next run) or under the new one, never half-way.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import ColumnElement, Connection, delete, func, select, update
from sqlmodel import col

from services.intake.crypto import IntakeKeys, UnreadablePersonalData
from services.intake.people import match_keys_of
from services.intake.tables import PersonRecord, ReferralRecord, as_utc

log = logging.getLogger(__name__)


@dataclass
class Rematching:
    """What one batch of `rematch` did."""

    total: int  # people intake recognises
    checked: int = 0
    rematched: int = 0  # were under an older key or an earlier way of comparing names, now under the current one
    current: int = 0  # under the current key already
    merged: int = 0  # one young person recorded twice (names spelt with look-alike letters): now one
    forgotten: int = 0  # no referral left (every one purged): nothing to recognise them by, so the hash is deleted
    changed: int = 0  # changed by intake meanwhile (erased, or matched again): left to the next run
    unreadable: int = 0  # their referral cannot be decrypted with the configured keys: left as they are
    last: str | None = None  # the person id of the last person checked


class ChangedMeanwhile(RuntimeError):
    """A person this batch merges was changed by intake meanwhile (erased): the batch is rolled back, to be redone."""


@dataclass(frozen=True)
class _Person:
    person_id: str
    match_key: str
    created_at: datetime


def rematch(conn: Connection, keys: IntakeKeys, *, after: str, limit: int) -> Rematching:
    """Store up to `limit` people whose id sorts after `after` under the current match key of their names."""
    done = Rematching(total=conn.execute(select(func.count()).select_from(PersonRecord)).scalar_one())
    people = [_Person(p.person_id, p.match_key, as_utc(p.created_at)) for p in conn.execute(
        select(PersonRecord).where(col(PersonRecord.person_id) > after).order_by(col(PersonRecord.person_id))
        .limit(limit))]
    latest = _latest_bodies(conn, [p.person_id for p in people])
    merged_away: set[str] = set()
    for person in people:
        done.checked, done.last = done.checked + 1, person.person_id
        if person.person_id in merged_away:  # merged into another person earlier in this batch
            continue
        if person.person_id not in latest:
            _count(done, "forgotten", conn.execute(delete(PersonRecord).where(*_still(person))).rowcount)
            continue
        try:
            key = _current_key(keys, latest[person.person_id])
        except UnreadablePersonalData:
            done.unreadable += 1
            log.warning("person %s: their latest referral cannot be decrypted with any configured key: left under "
                        "their old match key", person.person_id)
            continue
        if key == person.match_key:
            done.current += 1
            continue
        holder = conn.execute(select(PersonRecord).where(col(PersonRecord.match_key) == key)).first()
        if holder is None:
            _count(done, "rematched", conn.execute(update(PersonRecord).where(*_still(person))
                                                   .values(match_key=key)).rowcount)
        else:
            other = _Person(holder.person_id, holder.match_key, as_utc(holder.created_at))
            if (away := _merge(conn, person, other, key)) is None:
                done.changed += 1
            else:
                done.merged += 1
                merged_away.add(away)
    return done


def _still(person: _Person) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """The person's row, if it still holds what was read."""
    return col(PersonRecord.person_id) == person.person_id, col(PersonRecord.match_key) == person.match_key


def _latest_bodies(conn: Connection, person_ids: list[str]) -> dict[str, str]:
    """Each person's most recently received referral body (encrypted), for those who have one left."""
    latest: dict[str, tuple[datetime, str]] = {}
    if not person_ids:
        return {}
    rows = conn.execute(select(col(ReferralRecord.person_id), col(ReferralRecord.received_at), col(ReferralRecord.body))
                        .where(col(ReferralRecord.person_id).in_(person_ids), col(ReferralRecord.body) != ""))
    for person_id, received_at, body in rows:
        when = as_utc(received_at)
        if person_id not in latest or when > latest[person_id][0]:
            latest[person_id] = (when, body)
    return {person_id: body for person_id, (_, body) in latest.items()}


def _current_key(keys: IntakeKeys, token: str) -> str:
    """The current match key of the young person in this encrypted referral body."""
    yp = json.loads(keys.cipher.decrypt(token))["young_person"]
    return match_keys_of(keys.matcher, yp["given_name"], yp["family_name"], date.fromisoformat(yp["date_of_birth"]))[0]


def _merge(conn: Connection, person: _Person, holder: _Person, key: str) -> str | None:
    """Make two records of one young person one: the one intake made first stays (its id is the one risk and
    scheduling have known longest), under `key`, with the other's referrals. The id merged away; None when the
    other changed meanwhile."""
    first, second = sorted((person, holder), key=lambda p: (p.created_at, p.person_id))
    if not conn.execute(delete(PersonRecord).where(*_still(second))).rowcount:
        return None
    conn.execute(update(ReferralRecord).where(col(ReferralRecord.person_id) == second.person_id)
                 .values(person_id=first.person_id))
    if not conn.execute(update(PersonRecord).where(*_still(first)).values(match_key=key)).rowcount:
        raise ChangedMeanwhile(f"person {first.person_id} changed while being merged")
    log.info("people %s and %s are one young person (look-alike spellings): now %s", first.person_id,
             second.person_id, first.person_id)
    return second.person_id


def _count(done: Rematching, what: str, rowcount: int) -> None:
    if rowcount:
        setattr(done, what, getattr(done, what) + 1)
    else:
        done.changed += 1
