"""Jinja filters that turn the inventory into the fleet's camera table, and check it.

Responsible for: reading every camera host's `camxfer_cameras` and every storage host's
settings from hostvars, filling in defaults (frame folder, destination, receiver port from the
storage host's base port), and refusing, with one sentence naming the host, the camera and the
field, anything that would clash at run time: duplicate camera names, unknown storage hosts,
two receivers (or a receiver, a trigger server or a metrics endpoint) on one address and
port. Also small helpers
for the trigger playbook: frame names of an event and the comparison of digests.
Not responsible for: whether folders exist or ports are free on the hosts (the services find
that out when they start).

Inventory variables read (fleet-wide, each with a default):
  camera hosts:  camxfer_cameras (list of {name, storage_host, dest_path?, port?, src?,
                 pattern?, max_files?, conns?}), camxfer_frames_root (/srv/camxfer/ring),
                 camxfer_trigger_port (5555), camxfer_trigger_metrics_port (0: off),
                 camxfer_address (ansible_host)
  storage hosts: camxfer_dest_root (/srv/camxfer/frames), camxfer_receiver_base_port (50001),
                 camxfer_receiver_metrics_port (0: off), camxfer_address (ansible_host)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - only when imported without Ansible

    class AnsibleFilterError(Exception):  # type: ignore[no-redef]
        pass


DEFAULT_FRAMES_ROOT = "/srv/camxfer/ring"
DEFAULT_DEST_ROOT = "/srv/camxfer/frames"
DEFAULT_BASE_PORT = 50001
DEFAULT_TRIGGER_PORT = 5555
CAMERA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # as camxfer.fleet.config
FRAME_ID = re.compile(
    r"^frame_(?P<camera>[A-Za-z0-9][A-Za-z0-9_-]{0,63})_(?P<number>\d{1,18})\.jpg$"
)
CAMERA_KEYS = ("name", "storage_host", "dest_path", "port", "src", "pattern", "max_files", "conns")
PASSED_THROUGH = ("pattern", "max_files", "conns")


def _get(host_vars: Any, key: str, default: Any = None) -> Any:
    try:
        value = host_vars[key]
    except KeyError:
        return default
    return default if value is None else value


def host_address(hostvars: Mapping[str, Any], host: str) -> str:
    """The address services of `host` bind and peers connect to."""
    host_vars = hostvars[host]
    return str(_get(host_vars, "camxfer_address") or _get(host_vars, "ansible_host") or host)


def _port(value: Any, where: str) -> int:
    if isinstance(value, bool):
        value = None
    try:
        port = int(str(value).strip())
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"{where}: must be a port number, not {value!r}.") from None
    if not 1 <= port <= 65535:
        raise AnsibleFilterError(f"{where}: must be a port number from 1 to 65535, not {port}.")
    return port


def _folder(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise AnsibleFilterError(f"{where}: must be an absolute folder path, not {value!r}.")
    return value.rstrip("/") or "/"


def camxfer_fleet(
    hostvars: Mapping[str, Any],
    groups: Mapping[str, Sequence[str]],
    camera_group: str = "camera_hosts",
    storage_group: str = "storage_hosts",
) -> list[dict[str, Any]]:
    """The fleet's camera table, one dict per camera, in inventory order.

    Each: name, camera_host, camera_address, storage_host, storage_address, port, src,
    dest_path (plus pattern, max_files, conns when the inventory sets them).
    """
    camera_hosts = list(groups.get(camera_group, []) or [])
    storage_hosts = list(groups.get(storage_group, []) or [])
    cameras: list[dict[str, Any]] = []
    seen_names: dict[str, str] = {}
    for camera_host in camera_hosts:
        host_vars = hostvars[camera_host]
        entries = _get(host_vars, "camxfer_cameras", [])
        if isinstance(entries, (Mapping, str)) or not isinstance(entries, Sequence):
            raise AnsibleFilterError(
                f"host {camera_host}: camxfer_cameras must be a list of cameras like "
                f"[{{name: camera01, storage_host: sto1}}], not {type(entries).__name__}."
            )
        frames_root = _folder(
            _get(host_vars, "camxfer_frames_root", DEFAULT_FRAMES_ROOT),
            f"host {camera_host}, camxfer_frames_root",
        )
        for position, entry in enumerate(entries, start=1):
            cameras.append(
                _camera(
                    hostvars,
                    camera_host,
                    frames_root,
                    entry,
                    position,
                    storage_hosts,
                    storage_group,
                    seen_names,
                )
            )
    _assign_ports(hostvars, cameras, camera_hosts, storage_hosts)
    return cameras


def _camera(
    hostvars: Mapping[str, Any],
    camera_host: str,
    frames_root: str,
    entry: Any,
    position: int,
    storage_hosts: list[str],
    storage_group: str,
    seen_names: dict[str, str],
) -> dict[str, Any]:
    where = f"host {camera_host}, camxfer_cameras item {position}"
    if not isinstance(entry, Mapping):
        raise AnsibleFilterError(
            f"{where}: must be a mapping like {{name: camera01, storage_host: sto1}}, "
            f"not {entry!r}."
        )
    unknown = sorted(set(entry) - set(CAMERA_KEYS))
    if unknown:
        raise AnsibleFilterError(
            f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(CAMERA_KEYS)}."
        )
    name = entry.get("name")
    if not isinstance(name, str) or not CAMERA_NAME.fullmatch(name):
        raise AnsibleFilterError(
            f"{where}, name: {name!r} is not a camera name (1 to 64 letters, digits, '_' or '-', "
            "starting with a letter or digit)."
        )
    where = f"host {camera_host}, camera {name}"
    if name in seen_names:
        raise AnsibleFilterError(
            f"{where}: the camera name is already used on host {seen_names[name]}; "
            "camera names must be unique in the fleet (frames land in <dest>/<ball>/<camera>/)."
        )
    seen_names[name] = camera_host

    storage_host = entry.get("storage_host")
    if storage_host is None and len(storage_hosts) == 1:
        storage_host = storage_hosts[0]
    if storage_host not in storage_hosts:
        known = ", ".join(storage_hosts) or "none"
        raise AnsibleFilterError(
            f"{where}, storage_host: {storage_host!r} is not a host of group {storage_group} "
            f"(its hosts: {known})."
        )
    storage_vars = hostvars[storage_host]
    dest_root = _get(storage_vars, "camxfer_dest_root", DEFAULT_DEST_ROOT)
    camera = {
        "name": name,
        "camera_host": camera_host,
        "camera_address": host_address(hostvars, camera_host),
        "storage_host": storage_host,
        "storage_address": host_address(hostvars, storage_host),
        "port": None if entry.get("port") is None else _port(entry["port"], f"{where}, port"),
        "src": _folder(entry.get("src") or f"{frames_root}/{name}", f"{where}, src"),
        "dest_path": _folder(entry.get("dest_path") or dest_root, f"{where}, dest_path"),
    }
    for key in PASSED_THROUGH:
        if entry.get(key) is not None:
            camera[key] = entry[key]
    return camera


def camxfer_metrics_port(hostvars: Mapping[str, Any], host: str, service: str) -> int:
    """The metrics port of `service` ('receiver' or 'trigger') on `host`; 0 when it is off."""
    if service not in ("receiver", "trigger"):
        raise AnsibleFilterError(
            f"camxfer_metrics_port: service must be receiver or trigger, not {service!r}."
        )
    key = f"camxfer_{service}_metrics_port"
    value = _get(hostvars[host], key, 0)
    if value in (0, "0", "", False):
        return 0
    return _port(value, f"host {host}, {key}")


def _assign_ports(
    hostvars: Mapping[str, Any],
    cameras: list[dict[str, Any]],
    camera_hosts: list[str],
    storage_hosts: Sequence[str] = (),
) -> None:
    """Ports: explicit, else the storage host's base port + the camera's index on that host."""
    owners: dict[tuple[str, int], str] = {}
    # Metrics endpoints first: a receiver port assigned from the base port must not take one.
    for service, hosts in (("trigger", camera_hosts), ("receiver", storage_hosts)):
        for host in hosts:
            port = camxfer_metrics_port(hostvars, host, service)
            if not port:
                continue
            key = (host_address(hostvars, host), port)
            if key in owners:
                raise AnsibleFilterError(
                    f"host {host}, camxfer_{service}_metrics_port: {port} on {key[0]} is "
                    f"already used by {owners[key]}; give each endpoint its own port."
                )
            owners[key] = f"the {service} metrics endpoint of host {host}"
    for camera_host in camera_hosts:
        port = _port(
            _get(hostvars[camera_host], "camxfer_trigger_port", DEFAULT_TRIGGER_PORT),
            f"host {camera_host}, camxfer_trigger_port",
        )
        key = (host_address(hostvars, camera_host), port)
        if key in owners:
            raise AnsibleFilterError(
                f"host {camera_host}, camxfer_trigger_port: {port} on {key[0]} is already "
                f"used by {owners[key]}; give each camera host on one address its own."
            )
        owners[key] = f"the trigger server of host {camera_host}"
    index: dict[str, int] = {}
    for camera in cameras:
        storage_host = camera["storage_host"]
        position = index.get(storage_host, 0)
        index[storage_host] = position + 1
        explicit = camera["port"] is not None
        if not explicit:
            base = _port(
                _get(hostvars[storage_host], "camxfer_receiver_base_port", DEFAULT_BASE_PORT),
                f"host {storage_host}, camxfer_receiver_base_port",
            )
            camera["port"] = _port(
                base + position,
                f"host {camera['camera_host']}, camera {camera['name']}, port "
                f"(camxfer_receiver_base_port {base} + {position} of host {storage_host})",
            )
        key = (camera["storage_address"], camera["port"])
        if key in owners:
            how = (
                "its port"
                if explicit
                else (f"its port (camxfer_receiver_base_port of {storage_host} + {position})")
            )
            raise AnsibleFilterError(
                f"host {camera['camera_host']}, camera {camera['name']}: {how} {camera['port']} "
                f"on {camera['storage_address']} is already used by {owners[key]}; set a "
                "distinct 'port' for one of them, or move the base port."
            )
        owners[key] = f"camera {camera['name']} (receiver on {storage_host})"


def camxfer_cameras_of(
    cameras: Sequence[Mapping[str, Any]], host: str, role: str = "camera"
) -> list[Mapping[str, Any]]:
    """The cameras whose camera host (role='camera') or storage host (role='storage') is `host`."""
    if role not in ("camera", "storage"):
        raise AnsibleFilterError(
            f"camxfer_cameras_of: role must be camera or storage, not {role!r}."
        )
    key = f"{role}_host"
    return [camera for camera in cameras if camera[key] == host]


def camxfer_camera_config(cameras: Sequence[Mapping[str, Any]], side: str) -> dict[str, Any]:
    """camera_config.json content for one side: 'sender' (src, dest_path, host, port, ...) for
    `camxfer senders`, 'receiver' (dest_path, host, port) for `camxfer receivers`, or
    'generator' (src) for `camxfer generate`."""
    if side not in ("sender", "receiver", "generator"):
        raise AnsibleFilterError(
            f"camxfer_camera_config: side must be sender, receiver or generator, not {side!r}."
        )
    config: dict[str, Any] = {}
    for camera in cameras:
        entry: dict[str, Any] = {}
        if side == "generator":
            config[camera["name"]] = {"src": camera["src"]}
            continue
        if side == "sender":
            entry["src"] = camera["src"]
        entry["dest_path"] = camera["dest_path"]
        entry["host"] = camera["storage_address"]
        entry["port"] = camera["port"]
        if side == "sender":
            for key in PASSED_THROUGH:
                if key in camera:
                    entry[key] = camera[key]
        config[camera["name"]] = entry
    return config


def camxfer_frame_number(frame_id: str) -> int:
    """46836 for 'frame_camera01_000046836.jpg' (the trigger server's own strict format)."""
    match = FRAME_ID.match(str(frame_id))
    if match is None:
        raise AnsibleFilterError(
            f"frame_id {frame_id!r} is not a frame file name like 'frame_camera01_000046836.jpg'."
        )
    return int(match["number"])


def camxfer_frame_names(camera: str, first: int, count: int) -> list[str]:
    """The names camera `camera` gives frames first .. first+count-1."""
    first, count = int(first), int(count)
    return [f"frame_{camera}_{number:09d}.jpg" for number in range(first, first + count)]


def camxfer_transfer_report(
    landed: Mapping[str, str | None], source: Mapping[str, str | None], camera: str = ""
) -> dict[str, Any]:
    """Compare landed digests with the camera's: every frame the camera has must be there, whole.

    `source` maps each asked frame name to its digest on the camera host (None: the camera
    does not have it); `landed` maps names found at the destination to digests.
    """
    on_camera = {name: digest for name, digest in source.items() if digest}
    missing = sorted(name for name in on_camera if not landed.get(name))
    different = sorted(
        name for name, digest in on_camera.items() if landed.get(name) and landed[name] != digest
    )
    identical = len(on_camera) - len(missing) - len(different)
    not_on_camera = sorted(name for name, digest in source.items() if not digest)
    extra = sorted(name for name in landed if name not in source)
    ok = not missing and not different and not not_on_camera and bool(source)
    summary = f"{camera or 'camera'}: {identical}/{len(source)} frames landed identical"
    details = []
    if not source:
        details.append("no source digests (the trigger or the digest on the camera host failed)")
    if missing:
        details.append(f"{len(missing)} missing ({_names(missing)})")
    if different:
        details.append(f"{len(different)} different ({_names(different)})")
    if not_on_camera:
        details.append(f"{len(not_on_camera)} not on the camera ({_names(not_on_camera)})")
    if details:
        summary += "; " + "; ".join(details)
    return {
        "camera": camera,
        "ok": ok,
        "asked": len(source),
        "identical": identical,
        "missing": missing,
        "different": different,
        "not_on_camera": not_on_camera,
        "extra": extra,
        "summary": summary,
    }


def _names(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... {len(names) - limit} more" if len(names) > limit else "")


class FilterModule:
    """camxfer fleet filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "camxfer_fleet": camxfer_fleet,
            "camxfer_cameras_of": camxfer_cameras_of,
            "camxfer_camera_config": camxfer_camera_config,
            "camxfer_frame_number": camxfer_frame_number,
            "camxfer_frame_names": camxfer_frame_names,
            "camxfer_transfer_report": camxfer_transfer_report,
            "camxfer_metrics_port": camxfer_metrics_port,
        }
