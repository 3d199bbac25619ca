"""Alarm intake, modelled on ASAP (APCO/CSAA ANS 2.101.2): a security company's alarm
receiver posts alarms for the sites it monitors; each is accepted (an incident opens) or
rejected with a reason code, and stored either way."""
