"""Where issued calendar links point: calendar apps must reach them, over TLS unless on this machine."""

from __future__ import annotations

import pytest

from services.scheduling.calendar_feed import FeedRefused, check_feed_url, feed_base_url


def test_the_configured_public_url_wins() -> None:
    assert feed_base_url("https://calendars.example.org", "http://10.0.0.5:8082") == "https://calendars.example.org"


def test_without_one_only_a_face_on_this_machine_issues_its_own_address() -> None:
    assert feed_base_url(None, "http://127.0.0.1:8082") == "http://127.0.0.1:8082"
    with pytest.raises(FeedRefused, match="set REROUTE_CALENDAR_URL"):
        feed_base_url(None, "http://0.0.0.0:8082")


@pytest.mark.parametrize("url", ["http://calendars.example.org", "ftp://calendars.example.org", "calendars.example.org",
                                 "https://calendars.example.org/?a=1"])
def test_a_public_url_must_be_https_and_a_base(url: str) -> None:
    with pytest.raises(ValueError, match="REROUTE_CALENDAR_URL"):
        check_feed_url(url)


def test_plain_http_is_fine_on_this_machine_and_a_trailing_slash_is_dropped() -> None:
    assert check_feed_url("http://localhost:8082/") == "http://localhost:8082"
    assert check_feed_url("https://example.org/calendars/") == "https://example.org/calendars"
