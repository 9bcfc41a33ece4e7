"""The intake service: agencies' referrals in (NATS and HTTP), accepted or rejected events out.

It alone holds personal data (encrypted), the agencies' API keys, and the log of who asked for a first name."""

from __future__ import annotations

import logging
from functools import partial

from faststream import FastStream

from services.intake import outcomes, rpc
from services.intake.agencies import AgencyRegistry
from services.intake.console_logins import ConsoleLogins
from services.intake.crypto import load_keys
from services.intake.handlers import handle_submissions
from services.intake.http import create_http_api
from services.intake.settings import IntakeSettings
from services.intake.staff import StaffRegistry
from services.intake.tables import TABLES
from shared.contracts import intake_rpc
from shared.contracts.intake_rpc import Purged, PurgeRequest
from shared.service import ServiceHost

log = logging.getLogger(__name__)


def create_app(settings: IntakeSettings | None = None) -> FastStream:
    """Wiring only: the consumer of submissions, the HTTP API, and the endpoints of services/intake/rpc.py."""
    settings = settings or IntakeSettings()
    keys = load_keys(settings)  # before anything else: a bad key refuses start-up with its reason
    host = ServiceHost("intake", settings, TABLES)
    host.seal_dead_letters(keys.cipher.seal, keys.cipher.unseal)  # a submission holds personal data
    s = host.subjects
    host.consume(stream=s.submissions_stream, subjects=s.raw_submissions(), what="submitted",
                 handler=partial(handle_submissions, subjects=s, keys=keys,
                                 max_body_bytes=settings.intake_max_body_bytes,  # the HTTP door's limit too
                                 tracer=host.tracer,
                                 status_base=(settings.intake_public_url or "") if settings.intake_http_port else None))
    agencies = AgencyRegistry(host.engine)
    intake = rpc.Intake(host, keys, agencies, StaffRegistry(host.engine), ConsoleLogins(host.engine))

    async def purge_now(request: PurgeRequest) -> Purged:
        return await rpc.purge(settings.retention_days if request.days is None else request.days, intake)

    async def scheduled_purge() -> None:
        log.info("retention purge: %s", await rpc.purge(settings.retention_days, intake))

    host.reply(intake_rpc.STATUS)(partial(rpc.status, intake=intake))
    host.reply(intake_rpc.FIRST_NAME)(partial(rpc.first_name, intake=intake))
    host.reply(intake_rpc.FIND_PERSON)(partial(rpc.person_find, intake=intake))
    host.reply(intake_rpc.IDENTITY)(partial(rpc.identity, intake=intake))
    host.reply(intake_rpc.ACCESS_LOG)(partial(rpc.personal_data_access_log, intake=intake))
    host.reply(intake_rpc.ADD_AGENCY)(partial(rpc.add_agency, intake=intake))
    host.reply(intake_rpc.ROTATE_AGENCY)(partial(rpc.rotate_agency, intake=intake))
    host.reply(intake_rpc.REVOKE_AGENCY)(partial(rpc.revoke_agency, intake=intake))
    host.reply(intake_rpc.LIST_AGENCIES)(partial(rpc.list_agencies, intake=intake))
    host.reply(intake_rpc.AGENCY_NATS_HASHES)(partial(rpc.agency_nats_hashes, intake=intake))
    host.reply(intake_rpc.PERSON_REFERRALS)(partial(rpc.person_referrals, intake=intake))
    host.reply(intake_rpc.EXPORT_PERSON)(partial(rpc.export_person, intake=intake))
    host.reply(intake_rpc.ERASE_PERSON)(partial(rpc.erase_person, intake=intake))
    host.reply(intake_rpc.PURGE)(purge_now)
    host.reply(intake_rpc.AUDIT)(partial(rpc.fairness_audit, intake=intake))
    host.reply(intake_rpc.REENCRYPT)(partial(rpc.reencrypt, intake=intake))
    host.reply(intake_rpc.REMATCH)(partial(rpc.rematch, intake=intake))
    host.reply(intake_rpc.ADD_PERSON)(partial(rpc.add_person, intake=intake))
    host.reply(intake_rpc.BOOTSTRAP_ADMIN)(partial(rpc.bootstrap_admin, intake=intake))
    host.reply(intake_rpc.REMOVE_PERSON)(partial(rpc.remove_person, intake=intake))
    host.reply(intake_rpc.LIST_PEOPLE)(partial(rpc.list_people, intake=intake))
    host.reply(intake_rpc.PEOPLE_NATS_HASHES)(partial(rpc.people_nats_hashes, intake=intake))
    host.reply(intake_rpc.WHOAMI)(partial(rpc.whoami, intake=intake))
    host.reply(intake_rpc.ISSUE_CONSOLE_PASSWORD)(partial(rpc.issue_console_password, intake=intake))
    host.reply(intake_rpc.CONSOLE_LOGIN)(partial(rpc.console_login, intake=intake))
    host.reply(intake_rpc.CONSOLE_PASSWORD)(partial(rpc.console_password, intake=intake))
    host.reply(intake_rpc.SECOND_FACTOR_BEGIN)(partial(rpc.begin_second_factor, intake=intake))
    host.reply(intake_rpc.SECOND_FACTOR_CONFIRM)(partial(rpc.confirm_second_factor, intake=intake))
    host.every(settings.purge_every_hours * 3600, scheduled_purge, name="retention-purge")
    host.every(300, partial(outcomes.keep_for_active_agencies, host, agencies), name="agency-outcome-consumers",
               at_start=True)
    host.every(10, partial(rpc.encrypt_plain_answers, intake=intake), name="equality-encryption")  # migration 0003

    if settings.intake_http_port:
        api = create_http_api(host=host, keys=keys, agencies=agencies, max_body_bytes=settings.intake_max_body_bytes)
        host.serve_http(api, port=settings.intake_http_port, host=settings.intake_http_host,
                        port_setting="REROUTE_INTAKE_HTTP_PORT")
    host.finish_routes()
    return host.app
