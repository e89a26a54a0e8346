"""The links a benchmark runs over: loopback, or two network namespaces joined by a veth pair.

Responsible for: describing where senders and receivers run (a command prefix each, and the
receiver's address), and for the netns link its whole lifecycle: tear down leftovers, set up
`cxb-a` (10.77.0.1, senders) and `cxb-b` (10.77.0.2, receivers) joined by a veth pair, and
tear down again on the way out, also on error or Ctrl-C (RECIPES.md §1: kill what runs in the
namespaces - only the harness's own processes can be there - then delete them).
Not responsible for: the processes themselves (`procs`).

The veth keeps its default MTU of 1500 bytes, like an Ethernet link; loopback's is 65536.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from bench.procs import run_checked

NS_SEND = "cxb-a"
NS_RECV = "cxb-b"
VETH_SEND = "cxb-va"
VETH_RECV = "cxb-vb"
ADDR_SEND = "10.77.0.1"
ADDR_RECV = "10.77.0.2"


@dataclass(frozen=True)
class Link:
    name: str
    recv_host: str  # the address receivers listen on and senders connect to
    recv_prefix: tuple[str, ...] = ()  # runs a command on the receiving side
    send_prefix: tuple[str, ...] = ()

    def on_receiver(self, argv: Sequence[str]) -> list[str]:
        return [*self.recv_prefix, *argv]

    def on_sender(self, argv: Sequence[str]) -> list[str]:
        return [*self.send_prefix, *argv]


LOOPBACK = Link("loopback", "127.0.0.1")


def _namespaces() -> set[str]:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    return {line.split()[0] for line in listing.stdout.splitlines() if line.strip()}


def teardown() -> None:
    """Remove the benchmark's namespaces and veth pair, whatever state they are in."""
    present = _namespaces()
    for ns in (NS_SEND, NS_RECV):
        if ns not in present:
            continue
        for signum in (signal.SIGTERM, signal.SIGKILL):
            pids = subprocess.run(
                ["ip", "netns", "pids", ns], capture_output=True, text=True, check=False
            ).stdout.split()
            if not pids:
                break
            subprocess.run(["kill", f"-{signum.value}", *pids], capture_output=True, check=False)
            time.sleep(0.2)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
    # Created inside the namespaces, the veth is normally gone with them; an orphaned socket
    # can keep a namespace alive, so make sure no end is left in the root namespace.
    for dev in (VETH_SEND, VETH_RECV):
        subprocess.run(["ip", "link", "del", dev], capture_output=True, check=False)


def _setup() -> None:
    steps = [
        ["ip", "netns", "add", NS_SEND],
        ["ip", "netns", "add", NS_RECV],
        [
            *("ip", "link", "add", VETH_SEND, "netns", NS_SEND, "type", "veth"),
            *("peer", "name", VETH_RECV, "netns", NS_RECV),
        ],
        ["ip", "-n", NS_SEND, "addr", "add", f"{ADDR_SEND}/24", "dev", VETH_SEND],
        ["ip", "-n", NS_RECV, "addr", "add", f"{ADDR_RECV}/24", "dev", VETH_RECV],
    ]
    for ns, dev in ((NS_SEND, VETH_SEND), (NS_RECV, VETH_RECV)):
        steps += [["ip", "-n", ns, "link", "set", "lo", "up"]]
        steps += [["ip", "-n", ns, "link", "set", dev, "up"]]
    for step in steps:
        run_checked(step, " ".join(step))


@contextlib.contextmanager
def netns_link() -> Iterator[Link]:
    """Two namespaces joined by a veth pair for the duration of the `with` block."""
    teardown()
    try:
        _setup()
        yield Link(
            "netns",
            ADDR_RECV,
            recv_prefix=("ip", "netns", "exec", NS_RECV),
            send_prefix=("ip", "netns", "exec", NS_SEND),
        )
    finally:
        teardown()
