"""Websocket close codes, one table for /ws/guard, /ws/events and /ws/positions.

4xxx are ours (the 4000–4999 range is for applications, RFC 6455 §7.4.2): 4401/4403/4429
echo the HTTP status a client already knows, 4408 and 4409 too; 4008 mirrors 1008 with
"do not read too slowly" as the violated policy, 4013 mirrors 1013 (try again later) for
one credential rather than the server. 1xxx are the protocol's own.
"""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    """Why the server closed a websocket; README "Close codes" lists the same."""

    SHUTDOWN = 1001  # server shutting down: reconnect later
    INVALID_QUERY = 1008  # a bad query parameter (policy violation)
    TOO_BIG = 1009  # frame over 4× the limit (closed by the protocol layer, see server_options)
    INTERNAL = 1011  # the server failed; reconnect
    TRY_AGAIN = 1013  # the database is not answering now: reconnect shortly and resume
    SLOW = 4008  # the client does not read: reconnect and resume
    TOO_MANY_STREAMS = 4013  # the credential holds its limit of streams: close one first
    UNAUTHORIZED = 4401  # missing, bad or revoked token
    FORBIDDEN = 4403  # origin not allowed, or the token lacks the permission
    IDLE = 4408  # nothing received for the idle timeout
    REPLACED = 4409  # a newer connection of the same guard took over
    FLOOD = 4429  # a sustained flood of frames
