"""Websocket endpoints and the in-process fan-out hub."""
