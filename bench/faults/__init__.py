"""Fault injection: the service under kill -9, a PostgreSQL restart, a hung database, cut and
half-open guard sockets and a failing webhook receiver, with a ledger of what was lost.

`python -m bench.faults` runs every scenario (bench/faults/__main__.py).
"""
