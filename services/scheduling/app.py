"""The scheduling service: matches a suitable mentor and books sessions at the pace the risk tier sets."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import partial

from faststream import FastStream
from pydantic import Field, field_validator

from services.scheduling import privacy, rpc
from services.scheduling.calendar_feed import calendar_api, check_feed_url
from services.scheduling.handlers import handle_assessed, handle_intake
from services.scheduling.metrics import safeguarding_samples, waitlist_samples
from services.scheduling.planning import PLAN_TIMEOUT_S, Planner, Rounds
from services.scheduling.tables import TABLES
from shared.contracts import safeguarding_rpc, scheduling_rpc
from shared.contracts.rpc import Empty
from shared.service import ServiceHost
from shared.settings import HttpPort, ServiceSettings

log = logging.getLogger(__name__)


class SchedulingSettings(ServiceSettings):
    calendar_port: HttpPort = Field(default=8082, description="Calendar feeds' HTTP port; 0: none; auto: any free one.")
    calendar_url: str | None = Field(default=None, description=(
        "Public base URL of the calendar feeds (https://…, the address calendar apps reach): required unless the "
        "face listens on a loopback address, as under `reroute up`."))
    plan_every_minutes: float = Field(default=0, ge=0,
                                      description="Run the re-optimisation round this often; 0: on request.")
    plan_timeout_minutes: float = Field(default=PLAN_TIMEOUT_S / 60, gt=0, description=(
        "The longest a batch round's plan may take: past it the planning process is stopped and the round fails, "
        "booking nothing (the next round starts afresh)."))
    plan_memory_mib: int | None = Field(default=None, ge=128, description=(
        "The most memory a batch round's plan may take, in MiB (its planning process's data); past it the round "
        "fails, booking nothing. Unset: no cap of its own (a container's limit then takes the whole service)."))
    vetting_sweep_minutes: float = Field(default=60, ge=0, description=(
        "Hand on the cases of mentors who may no longer mentor (a check run out, a suspended licence) as the "
        "service starts and this often; 0: only when mentors are imported."))


    @field_validator("calendar_url")
    @classmethod
    def _calendar_url(cls, value: str | None) -> str | None:
        return check_feed_url(value) if value else None


def create_app(settings: SchedulingSettings | None = None) -> FastStream:
    """Wiring only: the consumers of recorded (and withdrawn) and assessed referrals, the calendar feeds, and the
    endpoints of services/scheduling/rpc.py."""
    settings = settings or SchedulingSettings()
    host = ServiceHost("scheduling", settings, TABLES)
    host.serve_http(calendar_api(host.engine), port=settings.calendar_port, port_setting="REROUTE_CALENDAR_PORT")
    s = host.subjects
    host.consume(stream=s.intake_stream, subjects=[s.recorded(), s.recorded_withdrawal()], what="recorded",
                 formerly=("accepted",),  # one consumer keeps their order
                 handler=partial(handle_intake, subjects=s, tracer=host.tracer))
    host.consume(stream=s.risk_stream, subjects=[s.assessed()], what="assessed",
                 handler=partial(handle_assessed, subjects=s))
    scheduling = rpc.Scheduling(host, settings.calendar_url,
                                Rounds(Planner(timeout_s=settings.plan_timeout_minutes * 60,
                                                memory_mib=settings.plan_memory_mib)))

    async def reoptimise_periodically() -> None:
        if (since := scheduling.rounds.since) is not None:  # one is running: this one would re-plan what it books
            running = (datetime.now(UTC) - since).total_seconds() / 60
            (log.warning if running > settings.plan_every_minutes else log.info)(
                "re-optimisation round skipped: one has been in progress on this replica for %.0f minutes", running)
            return
        log.info("re-optimisation round: %s", await rpc.reoptimise_now(Empty(), scheduling))

    host.every(settings.plan_every_minutes * 60, reoptimise_periodically, name="reoptimisation-round")
    host.metrics.live_gauge("scheduling.round.in_progress", lambda: float(scheduling.rounds.in_progress),
                            description="1 while a batch round runs on this replica (its read, its plan in a process "
                                        "of its own, its booking), else 0.")
    host.sample(waitlist_samples)
    host.sample(safeguarding_samples)
    host.every(settings.vetting_sweep_minutes * 60, partial(rpc.hand_on_barred_cases, scheduling), name="vetting-sweep",
               at_start=True)
    host.reply(scheduling_rpc.MENTORS_IMPORT)(partial(rpc.import_mentors, scheduling=scheduling))
    host.reply(scheduling_rpc.VENUES_IMPORT)(partial(rpc.import_venues, scheduling=scheduling))
    host.reply(scheduling_rpc.LEAVE)(partial(rpc.record_leave, scheduling=scheduling))
    host.reply(scheduling_rpc.MENTORS)(partial(rpc.list_mentors, scheduling=scheduling))
    host.reply(scheduling_rpc.CALENDAR)(partial(rpc.calendar, scheduling=scheduling))
    host.reply(scheduling_rpc.VENUES_WEEK)(partial(rpc.venues_week, scheduling=scheduling))
    host.reply(scheduling_rpc.CALENDAR_FEED)(partial(rpc.calendar_feed, scheduling=scheduling))
    host.reply(scheduling_rpc.CLOSE)(partial(rpc.close_case, scheduling=scheduling))
    host.reply(scheduling_rpc.CLOSED_BEFORE)(partial(rpc.closed_before, scheduling=scheduling))
    host.reply(scheduling_rpc.STATUS)(partial(rpc.status, scheduling=scheduling))
    host.reply(scheduling_rpc.SESSION)(partial(rpc.change, scheduling=scheduling))
    host.reply(scheduling_rpc.RECOMMEND)(partial(rpc.recommend_mentors, scheduling=scheduling))
    host.reply(scheduling_rpc.ASSIGN)(partial(rpc.assign_mentor, scheduling=scheduling))
    # two at once: a second round asked for while one runs is refused at once, not queued behind it
    host.reply(scheduling_rpc.REOPTIMISE, at_once=2)(partial(rpc.reoptimise_now, scheduling=scheduling))
    host.reply(scheduling_rpc.WAITLIST)(partial(rpc.waiting, scheduling=scheduling))
    host.reply(safeguarding_rpc.ALERTS)(partial(rpc.alerts_list, scheduling=scheduling))
    host.reply(safeguarding_rpc.ACKNOWLEDGE)(partial(rpc.alerts_ack, scheduling=scheduling))
    host.serve_personal_data(privacy.export, privacy.erase)
    host.finish_routes()
    return host.app
