"""How an app's process starts (the console, the notifier): its settings read and checked, its files private, its
logs configured, then served until stopped; a bad setting ends it at once with one line saying what to fix."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from pydantic import ValidationError

from shared.logs import configure_logging
from shared.settings import ConfigurationError, ServiceSettings, keep_files_private

S = TypeVar("S", bound=ServiceSettings)


def run(name: str, settings_type: Callable[[], S], serve: Callable[[S], Coroutine[Any, Any, None]]) -> None:
    try:
        settings = settings_type()
    except ValidationError as exc:
        sys.exit(f"{name}: bad configuration: {'; '.join(e['msg'] for e in exc.errors())}")
    keep_files_private()
    configure_logging(name, settings.log_level, settings.log_format)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(serve(settings))
    except ConfigurationError as exc:
        sys.exit(f"{name}: {exc}")
