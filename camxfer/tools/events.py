"""Event reports on the storage side, read back from the manifests the receivers landed.

Every camera's part of an event ends with a manifest in its destination folder (the files
that landed and the sender's report of each run), so the manifests are the event record:
nothing else is kept. Responsible for: finding manifests under folders, grouping them into
events (by event id; a manifest without one, from a plain `send --once`, is its own event
named after its folder) and summing them up per camera. Not responsible for: printing
(`camxfer.cli.events`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camxfer.manifest import MANIFEST_NAME, Manifest, ManifestError, Skipped, load_manifest


@dataclass(frozen=True)
class CameraPart:
    """One camera's part of an event: one manifest."""

    camera: str
    folder: Path
    manifest: Manifest

    @property
    def asked(self) -> int | None:
        return self.manifest.asked

    @property
    def landed(self) -> int:
        return len(self.manifest.files)

    @property
    def skipped(self) -> list[Skipped]:
        return self.manifest.skipped()

    @property
    def complete(self) -> bool:
        enough = self.asked is None or self.landed >= self.asked
        return enough and not self.skipped

    def to_json(self) -> dict[str, Any]:
        latest = self.manifest.latest
        return {
            "folder": str(self.folder),
            "asked": self.asked,
            "landed": self.landed,
            "skipped": len(self.skipped),
            "skipped_files": [{"name": s.name, "reason": s.reason} for s in self.skipped],
            "bytes": self.manifest.bytes,
            "seconds": latest.seconds if latest else None,
            "latency_ms": (
                {"p50": latest.latency_p50_ms, "p99": latest.latency_p99_ms} if latest else None
            ),
            "runs": len(self.manifest.runs),
            "updated": self.manifest.updated,
            "complete": self.complete,
        }


@dataclass
class EventRecord:
    id: str
    ball_id: str | None = None
    first_frame: str | None = None
    parts: list[CameraPart] = field(default_factory=list)

    @property
    def updated(self) -> str:
        return max((part.manifest.updated or "" for part in self.parts), default="")

    @property
    def complete(self) -> bool:
        return all(part.complete for part in self.parts)

    def to_json(self) -> dict[str, Any]:
        cameras = {part.camera: part.to_json() for part in self.parts}
        return {
            "event": self.id,
            "ball_id": self.ball_id,
            "first_frame": self.first_frame,
            "updated": self.updated,
            "complete": self.complete,
            "cameras": cameras,
            "totals": {
                key: sum(camera[key] or 0 for camera in cameras.values())
                for key in ("asked", "landed", "skipped", "bytes")
            },
        }


@dataclass(frozen=True)
class Unreadable:
    path: Path
    reason: str


@dataclass
class EventBookOnDisk:
    events: list[EventRecord]  # newest first
    unreadable: list[Unreadable]

    def find(self, event_id: str) -> EventRecord | None:
        return next((event for event in self.events if event.id == event_id), None)


def manifest_folders(root: Path, unreadable: list[Unreadable]) -> list[Path]:
    """Folders at or below `root` that hold a manifest (symlinked folders are not entered);
    a folder that cannot be listed goes to `unreadable` (os.walk would pass over it in
    silence, and its events with it)."""

    def cannot_list(exc: OSError) -> None:
        unreadable.append(Unreadable(Path(exc.filename), f"cannot list it: {exc.strerror}"))

    found = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=cannot_list, followlinks=False):
        if MANIFEST_NAME in filenames:
            found.append(Path(dirpath))
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
    return found


def read_events(roots: list[Path]) -> EventBookOnDisk:
    """Every event whose manifests lie under `roots`, newest first."""
    events: dict[str, EventRecord] = {}
    unreadable: list[Unreadable] = []
    seen: set[Path] = set()
    for root in roots:
        for folder in manifest_folders(root, unreadable):
            real = folder.resolve()
            if real in seen:
                continue  # two configured destinations inside one another
            seen.add(real)
            try:
                manifest = load_manifest(folder)
            except ManifestError as exc:
                unreadable.append(Unreadable(folder / MANIFEST_NAME, str(exc)))
                continue
            key = manifest.event or _folder_id(folder, root)
            event = events.setdefault(key, EventRecord(key, manifest.ball_id, manifest.first_frame))
            event.parts.append(CameraPart(manifest.camera or folder.name, folder, manifest))
    for event in events.values():
        event.parts.sort(key=lambda part: part.camera)
    ordered = sorted(events.values(), key=lambda e: (e.updated, e.id), reverse=True)
    return EventBookOnDisk(ordered, unreadable)


def _folder_id(folder: Path, root: Path) -> str:
    rel = folder.relative_to(root).as_posix()
    return rel if rel != "." else folder.name or str(folder)
