"""A sender killed with SIGKILL mid-transfer and run again lands every frame exactly once.

The rerun resends the whole backlog; frames that landed before the kill are answered
"duplicate" (nothing rewritten, no `.1` copies), the rest land, and the rerun's manifest lists
every frame with the checksum of its bytes. The killed run never reached its end, so it left
no manifest.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import xxhash

from camxfer.manifest import parse_manifest
from tests.conftest import (
    MANIFEST_NAME,
    TEMP_PREFIX,
    make_frames,
    run_sender,
    temps_under,
    tree_hashes,
    wait_until,
)
from tests.integration.test_manifest import camxfer

FILES = 120
SIZE = 512 * 1024

pytestmark = pytest.mark.timeout(120)


def landed_frames(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return [n for n in os.listdir(folder) if n.endswith(".jpg") and not n.startswith(TEMP_PREFIX)]


def test_sender_killed_mid_transfer_then_rerun_lands_every_frame_once(
    receivers, senders, src: Path, out: Path
) -> None:
    frames = make_frames(src, FILES, size=SIZE)
    receiver = receivers(out, "--use-dest-paths", "--workers", "2")
    # A shallow window lands the frames a few at a time, so the kill comes mid-transfer.
    args = (
        "--once",
        "--conns",
        "4",
        "--window",
        "2",
        "--dest-path",
        "ball_k/cam01",
        "--json-stats",
    )
    folder = out / "ball_k" / "cam01"

    first = senders(src, receiver.port, *args)
    wait_until(lambda: len(landed_frames(folder)) >= 5, 30, "some frames to land", 0.001)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    landed_before = len(landed_frames(folder))
    assert landed_before < FILES, "the transfer was over before the kill"
    assert not (folder / MANIFEST_NAME).exists(), "a killed run has no end, so no manifest"

    rerun = run_sender(src, receiver.port, *args, timeout=90)
    assert rerun.returncode == 0, rerun.stderr
    stats = rerun.stats
    assert (stats["files"], stats["failed"], stats["manifest"]["landed"]) == (FILES, 0, True)
    assert stats["duplicates"] >= landed_before  # resent, not rewritten

    # Every frame exactly once, byte-identical; no copies, no temporaries.
    wait_until(lambda: temps_under(out) == [], 20, "the receiver to drop the killed temporaries")
    assert tree_hashes(out) == {f"ball_k/cam01/{rel}": h for rel, h in tree_hashes(src).items()}
    manifest = parse_manifest((folder / MANIFEST_NAME).read_bytes())
    assert sorted(manifest.files) == sorted(p.name for p in frames)
    for path in frames:
        entry = manifest.files[path.name]
        assert entry.size == SIZE
        assert entry.checksum == xxhash.xxh3_128((folder / path.name).read_bytes()).hexdigest()
    assert len(manifest.runs) == 1 and manifest.skipped() == []

    verify = camxfer("verify", str(out), "--json")
    assert verify.returncode == 0, verify.stdout
    assert json.loads(verify.stdout)["files"] == FILES
