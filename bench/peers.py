"""The peers: the usual ways of moving a folder between hosts, as an operator would type them.

- `tar -C src -cf - . | nc -N HOST PORT` into `nc -l HOST -p PORT | tar -C dst -xf -`
  (netcat-openbsd: -N shuts the socket down at the sender's end of input, so the receiving nc
  sees EOF and exits, and the receiving tar finishes). One TCP stream, no fsync.
- `rsync -a src/ rsync://HOST:PORT/bench/` into an rsync daemon started for the run
  (`--no-detach`, a generated config whose one module is the destination). No fsync.

Each also durable, as camxfer lands files, for a like-for-like figure beside the targets
(which the issue sets against the plain commands):
- `tar | nc + sync`: the receiving side runs `sync` once tar has written the last file, and
  the clock stops when it returns;
- `rsync daemon --fsync`: the daemon fsyncs each file before renaming it into place (the
  client hands the option to the daemon; the renames themselves are not synced).
"""

from __future__ import annotations

import os
from functools import partial

from bench.measure import Contender, Plan, RepContext


def _tar_nc(ctx: RepContext, *, then_sync: bool = False) -> Plan:
    receive = 'nc -l -s "$0" -p "$1" | tar -C "$2" -xf -' + (" && sync" if then_sync else "")
    send = 'tar -C "$0" -cf - . | nc -N "$1" "$2"'
    return Plan(
        sender=["sh", "-c", send, str(ctx.src), ctx.host, str(ctx.port)],
        receiver=["sh", "-c", receive, ctx.host, str(ctx.port), str(ctx.dest)],
        landed=ctx.dest,
        receiver_exits=True,
    )


def _rsync(ctx: RepContext, *, fsync: bool = False) -> Plan:
    config = ctx.workdir / "config" / f"rsyncd-{ctx.port}.conf"
    config.parent.mkdir(exist_ok=True)
    config.write_text(f"use chroot = no\n[bench]\n    path = {ctx.dest}\n    read only = no\n")
    if os.geteuid() == 0:  # as root the daemon would write as 'nobody': permission denied
        config.write_text(config.read_text() + "    uid = root\n    gid = root\n")
    options = ["-a", "--fsync"] if fsync else ["-a"]
    return Plan(
        sender=["rsync", *options, f"{ctx.src}/", f"rsync://{ctx.host}:{ctx.port}/bench/"],
        receiver=[
            *("rsync", "--daemon", "--no-detach", f"--config={config}"),
            *(f"--address={ctx.host}", f"--port={ctx.port}"),
        ],
        landed=ctx.dest,
    )


TAR_NC = Contender("tar", "tar | nc", "peer", _tar_nc, flags="netcat-openbsd, 1 stream")
TAR_NC_SYNC = Contender(
    "tar",
    "tar | nc + sync",
    "peer",
    partial(_tar_nc, then_sync=True),
    flags="then sync on the receiver",
)
RSYNC = Contender("rsync", "rsync daemon", "peer", _rsync, flags="rsync -a, 1 stream")
RSYNC_FSYNC = Contender(
    "rsync",
    "rsync daemon --fsync",
    "peer",
    partial(_rsync, fsync=True),
    flags="rsync -a --fsync, 1 stream",
)
