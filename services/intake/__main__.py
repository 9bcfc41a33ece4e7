"""`python -m services.intake` runs the intake service until SIGINT/SIGTERM."""

import asyncio

from services.intake.app import create_app
from shared.service import configure_logging
from shared.settings import ServiceSettings

settings = ServiceSettings()
configure_logging("intake", settings.log_level)
asyncio.run(create_app(settings).run())
