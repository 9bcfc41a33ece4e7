"""Pydantic models of every event on the wire, one module per producing party."""
