"""The append-only event log: every state change writes one."""
