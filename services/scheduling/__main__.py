"""`python -m services.scheduling` runs the scheduling service until SIGINT/SIGTERM."""

import asyncio

from services.scheduling.app import SchedulingSettings, create_app
from shared.service import configure_logging

settings = SchedulingSettings()
configure_logging("scheduling", settings.log_level)
asyncio.run(create_app(settings).run())
