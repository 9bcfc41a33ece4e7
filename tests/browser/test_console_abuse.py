"""Abuses of the console tried through its public door (Debian's Chromium against a real `reroute up`): a session key
planted before log-in, a removed person's open console, a child's name on a list, a child's name in a span of a
referral's trace."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from playwright.async_api import Browser, expect

from apps.console.receiver import stored_spans
from shared.span_store import SpanStore
from tests.support.console import ConsoleStack, log_in, new_person_logged_in, said
from tests.support.console_pages import traced
from tests.support.console_risk import assessed_referral, decide_tier

pytestmark = [pytest.mark.browser]
COOKIE = "reroute-console"  # the stack is reached on loopback, without TLS: no `__Host-` prefix
CHILD = ("Jordan", "Testperson")  # the young person's names in every referral the stack is sent
"""tests/support/cluster.py's referral(): the names the console must never show on a list."""


async def test_a_session_key_planted_before_log_in_is_never_logged_in(browser: Browser, stack: ConsoleStack) -> None:
    person = stack.person("scheduler")
    victim = await (await browser.new_context()).new_page()
    await victim.goto(stack.url + "/login")
    planted = {c["name"]: c["value"] for c in await victim.context.cookies()}[COOKIE]  # what an attacker would plant

    await log_in(victim, stack, person, stack.one_time_password(person))
    await expect(victim.get_by_role("heading", name="Choose your console password")).to_be_visible()
    assert {c["name"]: c["value"] for c in await victim.context.cookies()}[COOKIE] != planted

    attacker = await browser.new_context()
    await attacker.add_cookies([{"name": COOKIE, "value": planted, "url": stack.url}])
    page = await attacker.new_page()
    for path in ("/password", "/"):
        await page.goto(stack.url + path)
        await expect(page.get_by_role("heading", name="Log in to the reroute console")).to_be_visible()


async def test_a_removed_persons_open_console_is_shut_at_their_next_request(browser: Browser,
                                                                            stack: ConsoleStack) -> None:
    person, page = await new_person_logged_in(browser, stack, "risk_lead", path="/risk")
    await expect(page.get_by_role("heading", name="Risk reviews", level=1)).to_be_visible()

    removed = await asyncio.to_thread(stack.reroute, "people", "remove", person)
    assert removed.returncode == 0, said(removed)
    await page.reload()
    await expect(page.get_by_role("heading", name="Log in to the reroute console")).to_be_visible()
    fetched = await page.request.get(stack.url + "/risk", max_redirects=0)
    assert fetched.status == 303 and fetched.headers["location"].startswith("/login")


async def test_no_list_shows_a_childs_name(browser: Browser, stack: ConsoleStack) -> None:
    rid = await assessed_referral(stack, "threat_to_life_warning", "intent_to_use_weapon")
    _, page = await new_person_logged_in(browser, stack, "dsl", "risk_lead")
    await decide_tier(page, stack, rid, "very_high", "Seen with older associates")  # a review is now due
    await page.goto(stack.url + "/alerts")
    await expect(page.get_by_text(rid).first).to_be_visible()
    shown = {"/alerts": await page.content()}
    for path in ("/alerts/list", "/risk?within=365"):
        response = await page.request.get(stack.url + path)
        assert response.status == 200, path
        shown[path] = await response.text()
    assert rid in shown["/risk?within=365"]
    for path, html in shown.items():
        assert not [n for n in CHILD if n.lower() in html.lower()], f"{path} shows the child's name"


def _said(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def a_span_naming_the_child(trace_id: str, parent_id: str, referral_id: str) -> ExportTraceServiceRequest:
    """A failed span in the referral's trace with the child's name everywhere a span can hold text besides its name:
    its status description, an event and a recorded exception, its outcome and another attribute (what a service's
    bug could send the console's OTLP receiver)."""
    name = " ".join(CHILD)
    now = time.time_ns()
    span = Span(trace_id=bytes.fromhex(trace_id), span_id=os.urandom(8), parent_span_id=bytes.fromhex(parent_id),
                name="scheduling planted span", start_time_unix_nano=now, end_time_unix_nano=now + 1_000_000,
                status=Status(code=Status.STATUS_CODE_ERROR, message=f"no slot for {name}"),
                attributes=[_said("referral.id", referral_id), _said("reroute.outcome", name), _said("note", name)],
                events=[Span.Event(time_unix_nano=now, name=name, attributes=[_said("child", name)]),
                        Span.Event(time_unix_nano=now, name="exception",
                                   attributes=[_said("exception.message", f"{name} has no mentor")])])
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=Resource(attributes=[_said("service.name", "scheduling")]), scope_spans=[ScopeSpans(spans=[span])])])


async def test_no_page_of_a_referral_s_trace_shows_a_childs_name_even_from_a_span_that_carries_one(
        browser: Browser, stack: ConsoleStack) -> None:
    """The scheduler's waterfall (from the referral's page) and the operator's show the failed span, and not the name:
    the store keeps no status description or event, and a page shows an outcome only when it is a code word."""
    referral_id = await asyncio.to_thread(stack.refer, "peers_offending")
    await traced(stack, referral_id)
    store = SpanStore.of(stack.up.data_dir)
    try:
        root = next(s for s in store.spans_of_referral(referral_id) if s.attributes.get("referral.id") == referral_id)
        # as the receiver keeps what a sender with the spans token posts (apps/console/receiver.py)
        assert store.add(stored_spans(a_span_naming_the_child(root.trace_id, root.span_id, referral_id))) == 1
    finally:
        store.close()
    for role, path in (("scheduler", f"/referrals/{referral_id}/trace"),
                       ("operator", f"/traces/referral?referral_id={referral_id}")):
        _, page = await new_person_logged_in(browser, stack, role, path=path)
        planted = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="scheduling planted span"))
        await expect(planted).to_contain_text("Error")
        html = await page.content()
        assert not [n for n in CHILD if n.lower() in html.lower()], f"{path} shows the child's name"
