"""What the console's routes share, made once in `create_app` and kept on the app (no module-level state)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from fastapi.templating import Jinja2Templates

from apps.console.client import ServicesClient
from apps.console.live import AlertFeed
from apps.console.sessions import LoginLimiter, Sessions
from apps.console.settings import ConsoleSettings
from shared.span_store import SpanStore


@dataclass(frozen=True)
class ConsoleState:
    settings: ConsoleSettings
    client: ServicesClient
    sessions: Sessions
    limiter: LoginLimiter
    alerts: AlertFeed
    templates: Jinja2Templates
    spans: SpanStore


def state_of(request: Request) -> ConsoleState:
    state: ConsoleState = request.app.state.console
    return state
