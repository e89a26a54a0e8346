"""What `camxfer send` loads before its first byte: every import is paid again by each
`send --once`, so the sender's modules keep away from the costly ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# dataclasses pulls in inspect, ast, dis and tokenize, and each @dataclass compiles its
# methods at every start (~0.5 ms a class): the sender's records are NamedTuples or plain
# classes instead. The others belong to commands and options a plain send does not use.
NOT_LOADED = ("dataclasses", "ssl", "zmq", "numpy", "PIL", "yaml", "prometheus_client")


def test_a_plain_send_loads_none_of_the_costly_modules() -> None:
    probe = (
        "import sys\n"
        "from camxfer.cli import build_parser\n"
        "build_parser('send').parse_args(['send', '--src-dir', '.', '--port', '1'])\n"
        "import camxfer.send.sender\n"
        f"print(' '.join(m for m in {NOT_LOADED!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.split() == []
