"""camxfer as a contender: `camxfer recv [--workers N] --use-dest-paths` + `camxfer send --once`.

Responsible for: the command lines for a given setting (receiver workers, sender connections
and window), reading the sender's `--json-stats` (a run whose stats are not ok is a failure,
and the sender's own rate - which leaves out interpreter start-up - is kept as an extra
figure), and the settings tried when looking for the best ("tuned") one on this machine.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.dataset import frame_file_name
from bench.measure import Contender, Plan, RepContext
from bench.procs import free_port
from camxfer.recv.server import default_workers

DEST_PATH = "bench"


@dataclass(frozen=True)
class CamxferSettings:
    workers: int | None = None  # None: `camxfer recv`'s own default (no --workers)
    conns: int = 8  # `camxfer send` defaults
    window: int = 32
    reuseport: bool = False

    @property
    def worker_count(self) -> int:
        return self.workers if self.workers is not None else default_workers()

    @property
    def flags(self) -> str:
        recv = (
            f"recv --workers {self.workers}"
            if self.workers is not None
            else f"recv (its default, {self.worker_count} workers)"
        )
        text = f"{recv}; send --conns {self.conns} --window {self.window}"
        return text + (" (--reuseport)" if self.reuseport else "")

    def receiver_argv(self, ctx: RepContext) -> list[str]:
        argv = [sys.executable, "-m", "camxfer", "recv", "--listen-ip", ctx.host]
        argv += ["--port", str(ctx.port), "--out-dir", str(ctx.dest), "--use-dest-paths"]
        if self.workers is not None:
            argv += ["--workers", str(self.workers)]
        return argv + (["--reuseport"] if self.reuseport else [])

    def sender_argv(self, ctx: RepContext) -> list[str]:
        argv = [sys.executable, "-m", "camxfer", "send", "--src-dir", str(ctx.src)]
        argv += ["--host", ctx.host, "--port", str(ctx.port), "--dest-path", DEST_PATH]
        argv += ["--once", "--json-stats", "--conns", str(self.conns)]
        return [*argv, "--window", str(self.window)]


DEFAULT = CamxferSettings()
# Tried in turn by the "tuned" search (one repetition each); the best is then measured in full.
# Two cores: fewer connections and workers cost less scheduling. The window stays at the
# default's 32, which beat 8, 16 and 64 (docs/performance-history.md, "a deeper window").
TUNED_CANDIDATES = (
    CamxferSettings(workers=2, conns=4, window=32),
    CamxferSettings(workers=2, conns=2, window=32),
    CamxferSettings(workers=1, conns=4, window=32),
    CamxferSettings(workers=2, conns=8, window=32),
    CamxferSettings(workers=4, conns=4, window=32, reuseport=True),
)
QUICK_TUNED = CamxferSettings(workers=2, conns=4, window=32)


def read_stats(stdout: str) -> tuple[str | None, dict[str, float]]:
    """The sender's --json-stats line: (error or None, extras)."""
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        return "camxfer send printed no --json-stats line", {}
    stats = json.loads(lines[-1])
    extra = {"engine_mb_per_s": float(stats["mb_per_s"]), "engine_seconds": stats["seconds"]}
    if not stats.get("ok"):
        problems = {k: stats[k] for k in ("failed", "vanished", "missing", "abandoned")}
        return f"camxfer send reported problems: {problems}", extra
    return None, extra


def _plan(settings: CamxferSettings) -> Callable[[RepContext], Plan]:
    def plan(ctx: RepContext) -> Plan:
        return Plan(
            sender=settings.sender_argv(ctx),
            receiver=settings.receiver_argv(ctx),
            landed=ctx.dest / DEST_PATH,
            read_stdout=read_stats,
        )

    return plan


def camxfer_contender(settings: CamxferSettings, label: str, src: Path | None = None) -> Contender:
    """camxfer with `settings`; with `src`, the camxfer package in that folder (PYTHONPATH)."""
    env = {"PYTHONPATH": str(src)} if src is not None else None
    flags = settings.flags + (f"; package from {src}" if src is not None else "")
    return Contender("camxfer", f"camxfer ({label})", "camxfer", _plan(settings), flags, env=env)


TRIGGER_CAMERA = "camera01"  # the data set's frames are named for it (bench.dataset)


def camxfer_triggered_contender(settings: CamxferSettings) -> Contender:
    """camxfer as a fleet runs it: `camxfer receivers` and a warm `camxfer senders --zmq`
    start before the clock; the clock times one ZMQ trigger for the whole data set, from the
    request to the event's end (every frame landed and acknowledged, the manifest landed).
    No interpreter starts inside the clock, as none does when a deployed host is triggered."""

    def plan(ctx: RepContext) -> Plan:
        from camxfer.errors import TransferError
        from camxfer.fleet.trigger_client import TriggerClient  # pyzmq: only when asked

        ball = f"bench-{ctx.port}"
        zmq_port = free_port()
        config = ctx.workdir / "config" / f"trigger-{ctx.port}.json"
        config.parent.mkdir(parents=True, exist_ok=True)
        camera = {"src": str(ctx.src), "dest_path": str(ctx.dest), "host": ctx.host}
        config.write_text(json.dumps({TRIGGER_CAMERA: {**camera, "port": ctx.port}}))
        service = [sys.executable, "-m", "camxfer", "senders", "--config", str(config), "--zmq"]
        service += ["--zmq-bind", "127.0.0.1", "--zmq-port", str(zmq_port)]
        service += ["--max-files", str(ctx.count), "--conns", str(settings.conns)]
        receiver = [sys.executable, "-m", "camxfer", "receivers", "--config", str(config)]
        receiver += ["--workers", str(settings.worker_count)]

        def trigger() -> str | None:
            try:
                with TriggerClient("127.0.0.1", zmq_port, timeout=10.0) as client:
                    reply = client.trigger(frame_file_name(0, TRIGGER_CAMERA), ball)
                    if not reply.get("ok"):
                        return f"trigger refused: {reply}"
                    # Every 10 ms, on one connection: the end is known to +-5 ms, and the
                    # service is barely disturbed.
                    status = client.wait(reply["event"], timeout=600, interval=0.01)
            except TransferError as exc:
                return str(exc)
            if status.get("state") != "done":
                return f"the event ended {status.get('state')}: {status}"
            return None

        return Plan(
            sender=[],
            receiver=receiver,
            landed=ctx.dest / ball / TRIGGER_CAMERA,
            service=service,
            service_port=zmq_port,
            trigger=trigger,
        )

    flags = f"receivers --workers {settings.worker_count}; senders --zmq --conns {settings.conns}"
    return Contender("triggered", "camxfer (triggered)", "camxfer", plan, flags, over_link=True)
