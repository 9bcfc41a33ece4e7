"""`python -m services.intake` runs the intake service until SIGINT/SIGTERM."""

import asyncio
import sys

from pydantic import ValidationError

from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from shared.service import configure_logging
from shared.settings import ConfigurationError

try:
    settings = IntakeSettings()
    configure_logging("intake", settings.log_level)
    asyncio.run(create_app(settings).run())
except (ConfigurationError, ValidationError) as exc:
    print(f"intake cannot start: {exc}", file=sys.stderr)
    sys.exit(2)
