"""Contracts and plumbing shared by the reroute services. Never business logic of one service."""
