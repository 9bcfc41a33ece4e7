"""`python -m services.risk` runs the risk service until SIGINT/SIGTERM."""

from services.risk.app import RiskSettings, create_app
from shared.service import run_service

run_service("risk", RiskSettings, create_app)
