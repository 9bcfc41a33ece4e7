"""The safeguarding notifier: emails the safeguarding leads each alert as it is raised, and the deputies each alert
left unacknowledged past its deadline (`python -m apps.notifier`; `reroute up` runs it)."""
