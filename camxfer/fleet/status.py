"""What runs on this host and how far behind each camera is: the facts `camxfer status` shows.

Responsible for: finding the camxfer services of one run folder (pid files of `camxfer
service`) and the detached senders, reading each service's command line back into its
options (config file, ports), checking whether those ports answer, asking a trigger server
for its recent events, and reading each camera's ring-buffer folder and landed frames to tell
its backlog. Everything here reads; nothing starts, stops or writes. How a command line is read back
into options is passed in (the command line's parsers live in camxfer.cli).
Not responsible for: services run by systemd (their pid files are systemd's; `systemctl
status` tells) or hosts other than this one (`playbooks/status.yml` asks every host).
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from camxfer.errors import CamxferError, TransferError
from camxfer.fleet import detached
from camxfer.fleet.config import CameraConfig, load_config
from camxfer.fleet.curve import CurveClientKeys
from camxfer.fleet.service import ServiceManager
from camxfer.fleet.trigger_client import TriggerClient
from camxfer.frames import parse_frame_id

RECENT_BALL_FOLDERS = 5  # landed frames are looked for in the newest ball folders only
PROBE_TIMEOUT_S = 0.5


@dataclass
class Endpoint:
    what: str  # "receiver camera01", "trigger", "metrics"
    host: str
    port: int
    listening: bool


@dataclass
class ServiceStatus:
    name: str
    running: bool
    pid: int | None
    kind: str  # the camxfer subcommand it runs (receivers, senders, generate...), or "other"
    command: list[str] | None
    log_file: str
    endpoints: list[Endpoint] = field(default_factory=list)
    config: str | None = None
    note: str = ""


@dataclass
class CameraStatus:
    name: str
    side: str  # "camera" (this host has its frames), "storage" (frames land here), or both
    src: str | None
    frames: int | None  # frames in the ring-buffer folder
    newest: int | None  # highest frame number there
    dest: str | None
    last_landed: int | None  # highest frame number landed for it here
    backlog: int | None  # ring-buffer frames numbered after the last landed one
    receiver: str  # host:port


@dataclass
class FleetStatus:
    run_dir: str
    services: list[ServiceStatus]
    senders: list[dict[str, Any]]
    cameras: list[CameraStatus]
    events: list[dict[str, Any]]
    events_error: str | None

    @property
    def ok(self) -> bool:
        return all(s.running for s in self.services) and all(
            e.listening for s in self.services if s.running for e in s.endpoints
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


def port_open(host: str, port: int, timeout: float = PROBE_TIMEOUT_S) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


CommandParser = Callable[[list[str] | None], tuple[str, argparse.Namespace | None]]


def _service(manager: ServiceManager, name: str, parse_command: CommandParser) -> ServiceStatus:
    state = manager.status(name)
    kind, args = parse_command(state.command)
    status = ServiceStatus(
        name=name,
        running=state.running,
        pid=state.pid if state.running else None,
        kind=kind,
        command=state.command,
        log_file=str(state.log_file),
    )
    if args is None:
        return status
    config = getattr(args, "config", None)
    if config is not None:
        status.config = str(config)
    if kind == "receivers":
        try:
            # `camxfer receivers` always has a --config (it has a default).
            cameras = load_config(args.config).select(args.camera)
        except CamxferError as exc:
            status.note = str(exc)
            cameras = ()
        for camera in cameras:
            host = args.listen_ip or camera.host
            status.endpoints.append(Endpoint(f"receiver {camera.name}", host, camera.port, False))
    elif kind == "senders" and args.zmq:
        host = "127.0.0.1" if args.zmq_bind in ("0.0.0.0", "*") else args.zmq_bind
        status.endpoints.append(Endpoint("trigger", host, args.zmq_port, False))
    elif kind == "recv":
        host = "127.0.0.1" if args.listen_ip == "0.0.0.0" else args.listen_ip
        status.endpoints.append(Endpoint("receiver", host, args.port, False))
    metrics_port = getattr(args, "metrics_port", None)
    if metrics_port is not None:
        status.endpoints.append(Endpoint("metrics", args.metrics_bind, metrics_port, False))
    if state.running:
        for endpoint in status.endpoints:
            endpoint.listening = port_open(endpoint.host, endpoint.port)
    return status


def frame_numbers(folder: Path, camera: str) -> list[int]:
    """Numbers of camera `camera`'s frames in `folder` (other files are ignored)."""
    numbers = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if not entry.name.startswith(f"frame_{camera}_"):
                    continue
                try:
                    numbers.append(parse_frame_id(entry.name).number)
                except ValueError:
                    continue
    except OSError:
        return []
    return numbers


def last_landed(dest: Path, camera: str) -> int | None:
    """The highest frame number of `camera` landed under `dest`: in <dest>/<camera>/ (direct
    mode) or <dest>/<ball>/<camera>/ of the newest few ball folders (trigger mode)."""
    folders = [dest / camera]
    try:
        balls = [e for e in os.scandir(dest) if e.is_dir(follow_symlinks=False)]
    except OSError:
        balls = []
    aged = [(mtime, e.path) for e in balls if (mtime := _mtime(e)) is not None]
    aged.sort(reverse=True)
    folders += [Path(path) / camera for _, path in aged[:RECENT_BALL_FOLDERS]]
    best = None
    for folder in folders:
        numbers = frame_numbers(folder, camera)
        if numbers:
            best = max(best or 0, max(numbers))
    return best


def _mtime(entry: os.DirEntry[str]) -> float | None:
    """A listed folder's modification time; None once it is gone (old events are deleted
    while status looks: a cleanup, `camxfer clear`)."""
    try:
        return entry.stat(follow_symlinks=False).st_mtime
    except OSError:
        return None


def camera_status(camera: CameraConfig, side: str) -> CameraStatus:
    src_numbers = frame_numbers(camera.src, camera.name) if camera.src else None
    landed = last_landed(camera.dest_path, camera.name) if camera.dest_path else None
    backlog = None
    if src_numbers is not None and camera.dest_path is not None and camera.dest_path.is_dir():
        backlog = sum(1 for n in src_numbers if landed is None or n > landed)
    return CameraStatus(
        name=camera.name,
        side=side,
        src=str(camera.src) if camera.src else None,
        frames=len(src_numbers) if src_numbers is not None else None,
        newest=max(src_numbers) if src_numbers else None,
        dest=str(camera.dest_path) if camera.dest_path else None,
        last_landed=landed,
        backlog=backlog,
        receiver=f"{camera.host}:{camera.port}",
    )


def _cameras(services: list[ServiceStatus], extra_configs: list[Path]) -> list[CameraStatus]:
    """Every camera named by a running or stopped service's config, and by --config."""
    sides: dict[str, tuple[CameraConfig, set[str]]] = {}
    sources = [(s.config, "storage" if s.kind == "receivers" else "camera") for s in services]
    sources += [(str(path), "") for path in extra_configs]
    for config_path, side in sources:
        if config_path is None:
            continue
        try:
            config = load_config(config_path)
        except CamxferError:
            continue
        for camera in config.cameras:
            known, seen = sides.get(camera.name, (camera, set()))
            merged = CameraConfig(
                name=camera.name,
                src=known.src or camera.src,
                dest_path=known.dest_path or camera.dest_path,
                host=camera.host,
                port=camera.port,
                pattern=camera.pattern,
                max_files=camera.max_files,
                conns=camera.conns,
            )
            if side:
                seen.add(side)
            sides[camera.name] = (merged, seen)
    return [
        camera_status(camera, "+".join(sorted(seen)) or "config") for camera, seen in sides.values()
    ]


def service_names(run_dir: Path) -> list[str]:
    """Services with a pid file (started) or a command file (started once, maybe stopped)."""
    if not run_dir.is_dir():
        return []
    names = {p.stem for p in run_dir.glob("*.pid")}
    names |= {p.name.removesuffix(".cmd.json") for p in run_dir.glob("*.cmd.json")}
    return sorted(names)


def gather(
    run_dir: Path,
    parse_command: CommandParser,
    *,
    log_dir: Path | None = None,
    senders_run_dir: Path | None = None,
    configs: list[Path] | None = None,
    events: int = 10,
    curve: CurveClientKeys | None = None,
) -> FleetStatus:
    manager = ServiceManager(run_dir, log_dir)
    names = service_names(run_dir)
    services = [_service(manager, name, parse_command) for name in names]
    senders = []
    if senders_run_dir is not None:
        for entry in detached.list_all(senders_run_dir):
            senders.append(
                {
                    "name": entry.name,
                    "running": entry.running,
                    "pid": entry.pid if entry.running else None,
                    "log_file": str(entry.log_file),
                }
            )
    recent, error = _recent_events(services, events, curve)
    return FleetStatus(
        run_dir=str(run_dir),
        services=services,
        senders=senders,
        cameras=_cameras(services, configs or []),
        events=recent,
        events_error=error,
    )


def _recent_events(
    services: list[ServiceStatus], limit: int, curve: CurveClientKeys | None
) -> tuple[list[dict[str, Any]], str | None]:
    """The newest events of the first trigger server that answers."""
    for service in services:
        for endpoint in service.endpoints:
            if endpoint.what != "trigger" or not endpoint.listening:
                continue
            client = TriggerClient(
                endpoint.host, endpoint.port, timeout=2.0, retries=1, curve=curve
            )
            try:
                with client:
                    reply = client.request({"events": True})
            except TransferError as exc:
                return [], str(exc)
            if not reply.get("ok"):
                return [], f"the trigger server said: {reply.get('error')}"
            return list(reply.get("events", []))[:limit], None
    return [], None
