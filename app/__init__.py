"""Police–security guard linkage dispatch service."""
