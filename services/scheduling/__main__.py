"""`python -m services.scheduling` runs the scheduling service until SIGINT/SIGTERM."""

from services.scheduling.app import SchedulingSettings, create_app
from shared.service import run_service

run_service("scheduling", SchedulingSettings, create_app)
