"""Integrations with police systems: outbound webhooks and CAP export."""
