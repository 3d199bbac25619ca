"""The security audit log (log.py), the hash chains over it and the event log (chain.py),
and their verification (verify.py, `python -m app audit verify`)."""
