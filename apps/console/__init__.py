"""The web console for the people who run the service (apps/console/app.py)."""
