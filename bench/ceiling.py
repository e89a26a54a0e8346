"""The ceilings: what the link carries (iperf3, 8 streams) and what a local copy costs (cp -r).

Responsible for: measuring iperf3 over a link (a one-off server on the receiving side, the
client on the sending side, the received rate from its JSON) and the `cp -r` contenders, with
and without a `sync` after the copy (camxfer fsyncs every file, so `cp + sync` is the copy
that is as durable as camxfer's).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from bench.measure import Contender, Measurement, Plan, RepContext
from bench.netns import Link
from bench.procs import BenchError, Proc, free_port, wait_listening

IPERF_STREAMS = 8


def measure_iperf3(link: Link, seconds: float, reps: int, workdir: Path) -> Measurement:
    result = Measurement(
        "iperf3", f"iperf3 -P {IPERF_STREAMS}", "ceiling", link.name, f"-t {seconds:g}"
    )
    logs = workdir / "logs"
    rates: list[float] = []
    for rep in range(reps):
        port = free_port()
        server = client = None
        try:
            server = Proc(
                link.on_receiver(["iperf3", "-s", "-1", "-B", link.recv_host, "-p", str(port)]),
                logs,
                f"iperf3-server{rep}",
            )
            wait_listening(port, server, link.recv_prefix)
            client = Proc(
                link.on_sender(
                    [
                        *("iperf3", "-c", link.recv_host, "-p", str(port)),
                        *("-P", str(IPERF_STREAMS), "-t", f"{seconds:g}", "-J"),
                    ]
                ),
                logs,
                f"iperf3-client{rep}",
            )
            done = client.wait(seconds + 30)
            server.wait(10)
            if done.returncode != 0:
                tail = client.stdout()[-300:]
                raise BenchError(f"iperf3 client exited {done.returncode}: {tail}")
            summary = json.loads(client.stdout())["end"]["sum_received"]
        except (BenchError, TimeoutError, ValueError, KeyError) as exc:
            result.error = f"iperf3: {exc}"
            break
        finally:
            for proc in (client, server):
                if proc is not None:
                    proc.stop()
        result.seconds.append(float(summary["seconds"]))
        result.bytes.append(int(summary["bytes"]))
        rates.append(float(summary["bits_per_second"]) / 8 / 1e9)
    if rates:
        result.extra["gb_per_s"] = round(statistics.median(rates), 3)
    return result


def _cp(ctx: RepContext) -> Plan:
    return Plan(["cp", "-r", str(ctx.src), str(ctx.dest / "copy")], ctx.dest / "copy")


def _cp_sync(ctx: RepContext) -> Plan:
    script = 'cp -r "$0" "$1" && sync'
    return Plan(["sh", "-c", script, str(ctx.src), str(ctx.dest / "copy")], ctx.dest / "copy")


CP = Contender("cp", "cp -r", "ceiling", _cp, over_link=False)
CP_SYNC = Contender("cp", "cp -r + sync", "ceiling", _cp_sync, over_link=False)
