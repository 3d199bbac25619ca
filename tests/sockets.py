"""What the kernel holds for a test's TCP connections (Linux /proc/net/tcp)."""

from __future__ import annotations

from pathlib import Path

import pytest

PROC_NET_TCP = Path("/proc/net/tcp")
needs_proc_net_tcp = pytest.mark.skipif(
    not PROC_NET_TCP.exists(), reason="reads /proc/net/tcp (Linux)"
)


def server_socket_open(server_port: int, client_port: int) -> bool:
    """Whether the kernel still holds the server's TCP socket for this client (Linux)."""
    for line in PROC_NET_TCP.read_text().splitlines()[1:]:
        local, remote = line.split()[1:3]
        if (int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16)) == (
            server_port,
            client_port,
        ):
            return True
    return False
