"""The console's page areas, each a module here with its router and templates/<name>/ (apps/console/areas.py).
To add one: write pages/<name>.py with `AREA = area(...)` and its routes, its templates, and list it below."""

from __future__ import annotations

from apps.console.areas import Area
from apps.console.pages import access, alerts, calendar, identity, operations, referrals, risk, traces, waitlist

AREAS: list[Area] = [alerts.AREA, risk.AREA, identity.AREA, access.AREA, waitlist.AREA, referrals.AREA, calendar.AREA,
                     operations.AREA, traces.AREA]
