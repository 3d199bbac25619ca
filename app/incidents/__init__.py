"""Incidents: intake, lifecycle and queries."""
