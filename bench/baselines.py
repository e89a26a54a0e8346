"""The Python baselines (bench/pyxfer.py) as contenders: seed-style, and sendfile + recv_into.

`sendfile` with fsync is the fair yardstick for camxfer: the same language, the same parallel
connections, zero-copy sends and durable landing (fsync the file, rename, fsync the folder),
but no checksum, no acknowledgements, no completion detection, no path checks.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from bench.measure import Contender, Plan, RepContext

PYXFER = str(Path(__file__).resolve().with_name("pyxfer.py"))
CONNS = 8


def _plan(style: str, fsync: bool) -> Callable[[RepContext], Plan]:
    def plan(ctx: RepContext) -> Plan:
        common = ["--style", style, "--host", ctx.host, "--port", str(ctx.port)]
        receiver = [sys.executable, PYXFER, "recv", *common, "--out", str(ctx.dest)]
        receiver += ["--expect", str(ctx.count)] + (["--fsync"] if fsync else [])
        sender = [sys.executable, PYXFER, "send", *common, "--src", str(ctx.src)]
        sender += ["--conns", str(CONNS)]
        return Plan(sender=sender, receiver=receiver, landed=ctx.dest, receiver_exits=True)

    return plan


SEED = Contender(
    "seed", "seed-style Python", "baseline", _plan("seed", False),
    flags=f"{CONNS} conns, read+sendall, recv(8 MiB), .part+rename",
)  # fmt: skip
SENDFILE_FSYNC = Contender(
    "sendfile", "sendfile+recv_into fsync", "baseline", _plan("fast", True),
    flags=f"{CONNS} conns, fsync file+dir, rename",
)  # fmt: skip
SENDFILE = Contender(
    "sendfile", "sendfile+recv_into", "baseline", _plan("fast", False),
    flags=f"{CONNS} conns, no fsync",
)  # fmt: skip
