"""The intelligence channel: guards' reports that inform the police without dispatching."""
