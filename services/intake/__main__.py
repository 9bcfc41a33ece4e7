"""`python -m services.intake` runs the intake service until SIGINT/SIGTERM."""

from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from shared.service import run_service

run_service("intake", IntakeSettings, create_app)
