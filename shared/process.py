"""How every reroute process starts (the three services, the console, the notifier): its files private, its
settings read and checked, its logs configured, then served until stopped; a bad setting ends it at once (exit 2)
with one line saying what to fix."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, TypeVar

from pydantic import ValidationError

from shared.logs import configure_logging
from shared.settings import ConfigurationError, ServiceSettings, keep_files_private

S = TypeVar("S", bound=ServiceSettings)


def run(name: str, load: Callable[[], S], serve: Callable[[S], Coroutine[Any, Any, None]]) -> None:
    """Private files, settings (a bad one refused with its reason, exit 2), the data dir (0700), logging, then
    `serve(settings)` until it returns."""
    keep_files_private()
    try:
        settings = load()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        keep_files_private(settings.data_dir)
        configure_logging(name, settings.log_level, settings.log_format)
    except (ConfigurationError, ValidationError) as exc:
        _cannot_start(name, exc)
    try:
        asyncio.run(serve(settings))
    except ConfigurationError as exc:  # a setting checked as the process starts (intake's keys); a ValidationError
        _cannot_start(name, exc)       # while it serves is a bug, with its traceback


def _cannot_start(name: str, exc: ConfigurationError | ValidationError) -> NoReturn:
    print(f"{name} cannot start: {setting_problems(exc)}", file=sys.stderr)
    sys.exit(2)


def setting_problems(exc: ConfigurationError | ValidationError) -> str:
    """What to fix: a ValidationError as each setting and what is wrong with it, never its value (it may be a
    secret: a password in NATS_URL, a token)."""
    if isinstance(exc, ConfigurationError):
        return str(exc)
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors())
