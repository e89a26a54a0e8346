"""`camxfer.sockets.connect` over a real loopback socket: an ASCII host connects without
loading Python's IDNA codec, whose first import held up every connection thread of a run."""

from __future__ import annotations

import socket
import subprocess
import sys

PROBE = """
import socket, sys
{connect}
print("encodings.idna" in sys.modules)
"""


def connects_loading_idna(connect_line: str) -> bool:
    """Run `connect_line` (which connects to PORT) in a fresh interpreter; whether the IDNA
    codec got imported."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        code = PROBE.format(connect=connect_line.replace("PORT", str(port)))
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
        )
        accepted, _ = server.accept()
        accepted.close()
    return done.stdout.strip() == "True"


def test_an_ascii_host_connects_without_the_idna_codec() -> None:
    line = "from camxfer.sockets import connect; connect('127.0.0.1', PORT, 5.0)"
    assert not connects_loading_idna(line)


def test_control_a_str_host_through_create_connection_loads_it() -> None:
    """Shows the probe can tell: the plain call does import the codec."""
    assert connects_loading_idna("socket.create_connection(('127.0.0.1', PORT), 5.0)")
