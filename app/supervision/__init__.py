"""Supervision: response reports, the regulator's view of companies, recognition points and
police feedback on guards (issue 12)."""
