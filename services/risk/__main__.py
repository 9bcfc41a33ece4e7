"""`python -m services.risk` runs the risk service until SIGINT/SIGTERM."""

import asyncio

from services.risk.app import RiskSettings, create_app
from shared.service import configure_logging

settings = RiskSettings()
configure_logging("risk", settings.log_level)
asyncio.run(create_app(settings).run())
