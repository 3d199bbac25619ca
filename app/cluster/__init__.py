"""Several replicas on one PostgreSQL: what each process learns of the others.

- `relay`: LISTEN/NOTIFY on a dedicated connection (wake-ups carrying ids).
- `replica`: this process's id, its heartbeat, and SQLite's one-server rule.
- `peers`: guards whose sockets are on other replicas, kept in this replica's live index.
- `frames`: guard frames stored by another replica, read back for sockets held here.

The database stays the truth; every notification only says "look now".
"""
