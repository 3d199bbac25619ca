"""Matching, waves, escalation and timers: who is asked, when, and what happens next."""
