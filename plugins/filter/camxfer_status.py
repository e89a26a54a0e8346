"""Jinja filter that turns every host's `camxfer status --json` into one table for the playbook.

Responsible for: laying out services (up or down, their ports and whether they answer),
cameras (frames waiting, last landed) and recent events, one row each, under their host.
Not responsible for: gathering (playbooks/status.yml runs `camxfer status --json` per host) or
judging (the playbook's assert does).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - only when imported without Ansible

    class AnsibleFilterError(Exception):  # type: ignore[no-redef]
        pass


HEADER = ("HOST", "WHAT", "STATE", "DETAIL")


def _service_row(host: str, service: Mapping[str, Any]) -> tuple[str, str, str, str]:
    state = "up" if service.get("running") else "DOWN"
    if service.get("pid"):
        state += f" (pid {service['pid']})"
    endpoints = []
    for endpoint in service.get("endpoints") or []:
        answer = "answers" if endpoint.get("listening") else "no answer"
        endpoints.append(f"{endpoint['what']} :{endpoint['port']} {answer}")
    detail = ", ".join(endpoints) or str(service.get("kind", ""))
    return host, str(service.get("name", "?")), state, detail


def _camera_row(host: str, camera: Mapping[str, Any]) -> tuple[str, str, str, str]:
    backlog = camera.get("backlog")
    state = "-" if backlog is None else f"backlog {backlog}"
    parts = []
    if camera.get("frames") is not None:
        parts.append(f"{camera['frames']} frames, newest {camera.get('newest')}")
    if camera.get("last_landed") is not None:
        parts.append(f"last landed {camera['last_landed']}")
    parts.append(f"receiver {camera.get('receiver')}")
    return host, f"camera {camera.get('name', '?')}", state, "; ".join(parts)


def _event_row(host: str, event: Mapping[str, Any]) -> tuple[str, str, str, str]:
    totals = event.get("totals") or {}
    problems = int(totals.get("missing", 0)) + int(totals.get("failed", 0))
    detail = (
        f"{totals.get('landed', 0)}/{totals.get('asked', 0)} frames, "
        f"{int(totals.get('bytes', 0)) / 1e6:.1f} MB, {problems} missing or failed"
    )
    return host, f"event {event.get('event', '?')}", str(event.get("state", "?")), detail


def camxfer_status_table(statuses: Mapping[str, Any]) -> list[str]:
    """One aligned table (a list of lines) from {host: `camxfer status --json` object}."""
    if not isinstance(statuses, Mapping):
        raise AnsibleFilterError(
            f"camxfer_status_table: expects a mapping of host to status, not {statuses!r:.80}."
        )
    rows: list[tuple[str, str, str, str]] = []
    for host in sorted(statuses):
        status = statuses[host]
        if not isinstance(status, Mapping):
            raise AnsibleFilterError(f"camxfer_status_table: host {host}: not a status object.")
        rows += [_service_row(host, s) for s in status.get("services") or []]
        rows += [
            (host, f"sender {s.get('name')}", "up" if s.get("running") else "DOWN", "detached")
            for s in status.get("senders") or []
        ]
        rows += [_camera_row(host, c) for c in status.get("cameras") or []]
        rows += [_event_row(host, e) for e in status.get("events") or []]
        if status.get("events_error"):
            rows.append((host, "events", "?", str(status["events_error"])))
        if not (status.get("services") or status.get("senders") or status.get("cameras")):
            rows.append((host, "-", "-", f"no camxfer services in {status.get('run_dir')}"))
    widths = [max(len(row[i]) for row in [HEADER, *rows]) for i in range(3)]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        + "  "
        + row[3]
        for row in [HEADER, *rows]
    ]


class FilterModule:
    """camxfer status filters."""

    def filters(self) -> dict[str, Any]:
        return {"camxfer_status_table": camxfer_status_table}
