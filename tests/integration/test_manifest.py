"""Every `send --once` ends with a manifest that matches the landed bytes, and `camxfer verify`
catches each way a destination can go wrong afterwards.

Real receivers and senders on loopback. Checksums are recomputed here from the landed files
(XXH3-128, as on the wire), never taken from the tool under test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import xxhash

from camxfer.manifest import FileEntry, Manifest, RunRecord, parse_manifest
from camxfer.recv.landing import CHECKSUM_XATTR
from camxfer.send.manifest import ManifestNotLanded, deliver_manifest
from camxfer.send.options import SendOptions
from tests.conftest import (
    MANIFEST_NAME,
    REPO,
    TEMP_PREFIX,
    Receiver,
    make_frames,
    run_sender,
    start_receiver,
    temps_under,
    tree_hashes,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)


def camxfer(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "camxfer", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def xxh3_hex(path: Path) -> str:
    return xxhash.xxh3_128(path.read_bytes()).hexdigest()


def load_manifest(folder: Path) -> Manifest:
    return parse_manifest((folder / MANIFEST_NAME).read_bytes())


def assert_manifest_matches(folder: Path, names: list[str]) -> Manifest:
    """The manifest lists exactly `names`, each with the size and XXH3 of the landed file."""
    manifest = load_manifest(folder)
    assert sorted(manifest.files) == sorted(names)
    for name, entry in manifest.files.items():
        path = folder / name
        assert (entry.size, entry.checksum) == (path.stat().st_size, xxh3_hex(path)), name
        assert entry.landed and entry.landed.endswith("Z")
    return manifest


# --- a manifest lands with the frames --------------------------------------------------------
def test_once_run_lands_a_manifest_matching_the_landed_bytes(receivers, src: Path, out: Path):
    frames = make_frames(src, 12, size=20_000)
    receiver = receivers(out, "--use-dest-paths", "--workers", "2")
    result = run_sender(src, receiver.port, "--once", "--dest-path", "ball_1/cam01", "--json-stats")
    assert result.returncode == 0, result.stderr
    assert result.stats["manifest"] == {"landed": True, "files": 12}
    landed = out / "ball_1" / "cam01"
    assert tree_hashes(landed) == tree_hashes(src)
    manifest = assert_manifest_matches(landed, [p.name for p in frames])
    run = manifest.runs[-1]
    assert (run.files, run.bytes, run.duplicates, run.skipped) == (12, 12 * 20_000, 0, ())
    assert run.latency_p99_ms >= run.latency_p50_ms > 0
    assert temps_under(out) == []
    # camxfer digest (the trigger playbook's comparison) sees the frames only.
    digest = camxfer("digest", str(landed), "--json")
    assert digest.returncode == 0, digest.stderr
    assert sorted(json.loads(digest.stdout)) == sorted(p.name for p in frames)


def test_manifest_is_never_visible_half_written(receivers, src: Path, out: Path) -> None:
    """A reader polling the manifest while it is rewritten 30 times only ever sees whole ones."""
    make_frames(src, 6, size=4096)
    receiver = receivers(out, "--use-dest-paths")
    first = run_sender(src, receiver.port, "--once", "--dest-path", "ev", "--json-stats")
    assert first.returncode == 0, first.stderr
    folder = out / "ev"
    files = load_manifest(folder).files
    reads, torn = [0], []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                data = (folder / MANIFEST_NAME).read_bytes()
            except FileNotFoundError:
                torn.append("the manifest disappeared")
                continue
            try:
                parse_manifest(data)
            except Exception as exc:
                torn.append(str(exc))
            reads[0] += 1

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    opts = SendOptions(src_dir=src, port=receiver.port, dest_path="ev")
    try:
        for index in range(30):
            run = RunRecord(started="2026-01-01T00:00:00.000Z", ended=f"run {index}", files=6)
            manifest = Manifest(event="ev", files=dict(files), runs=[run])
            deliver_manifest(opts, manifest)
    finally:
        stop.set()
        thread.join(10)
    assert torn == [] and reads[0] > 30
    final = load_manifest(folder)
    assert len(final.runs) == 31 and sorted(final.files) == sorted(files)
    assert [p.name for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX)] == []


def test_receiver_lists_only_files_it_finds_whole(receivers, src: Path, out: Path) -> None:
    make_frames(src, 3, size=5000)
    receiver = receivers(out, "--use-dest-paths")
    assert run_sender(src, receiver.port, "--once", "--dest-path", "ev").returncode == 0
    folder = out / "ev"
    real = load_manifest(folder).files
    name = sorted(real)[0]
    claimed = {
        name: real[name],
        "frame_never_sent.jpg": FileEntry("frame_never_sent.jpg", 10, "0" * 32),
        "frame_camera01_000000002.jpg": FileEntry("frame_camera01_000000002.jpg", 5000, "1" * 32),
    }
    run = RunRecord(started="s", ended="e", files=3)
    opts = SendOptions(src_dir=src, port=receiver.port, dest_path="ev")
    answer = deliver_manifest(opts, Manifest(files=claimed, runs=[run]))
    assert "2 unverified" in answer
    landed = load_manifest(folder)
    # The bad claim about frame 2 is dropped; the earlier entry, still true on disk, stays.
    assert landed.files == real
    unverified = {s.name: s.reason for s in landed.runs[-1].unverified}
    assert set(unverified) == {"frame_never_sent.jpg", "frame_camera01_000000002.jpg"}
    assert unverified["frame_never_sent.jpg"] == "unverified: not found"
    assert "checksum" in unverified["frame_camera01_000000002.jpg"]


def test_manifest_checks_landed_files_by_their_recorded_checksum(
    receivers, src: Path, out: Path
) -> None:
    """Landed files carry the checksum they were verified against; a file that did not come
    through the receiver has none, so the manifest check reads it again and catches a lie."""
    make_frames(src, 2, size=5000)
    receiver = receivers(out, "--use-dest-paths")
    assert run_sender(src, receiver.port, "--once", "--dest-path", "ev").returncode == 0
    folder = out / "ev"
    real = load_manifest(folder).files
    for name, entry in real.items():
        assert os.getxattr(folder / name, CHECKSUM_XATTR).hex() == entry.checksum
    planted = folder / "frame_planted.jpg"
    planted.write_bytes(b"p" * 5000)
    claim = FileEntry(planted.name, 5000, "2" * 32)
    opts = SendOptions(src_dir=src, port=receiver.port, dest_path="ev")
    answer = deliver_manifest(
        opts, Manifest(files={planted.name: claim}, runs=[RunRecord(started="s", ended="e")])
    )
    assert "1 unverified" in answer
    landed = load_manifest(folder)
    assert planted.name not in landed.files
    assert "checksum" in {s.name: s.reason for s in landed.runs[-1].unverified}[planted.name]


@pytest.mark.parametrize(
    ("dest", "entry_name"),
    [("../escape", "a.jpg"), ("ev", "../../escape.jpg"), ("ev", "/etc/passwd"), ("ev", ".x")],
    ids=["dest-escapes", "entry-escapes", "entry-absolute", "entry-hidden"],
)
def test_unsafe_manifest_is_refused_and_nothing_written(
    receivers, src: Path, tmp_path: Path, dest: str, entry_name: str
) -> None:
    out = tmp_path / "box" / "out"
    receiver = receivers(out, "--use-dest-paths")
    opts = SendOptions(src_dir=src, port=receiver.port, dest_path=dest)
    manifest = Manifest(files={entry_name: FileEntry(entry_name, 1, "0" * 32)})
    with pytest.raises(ManifestNotLanded, match="UNSAFE_PATH"):
        deliver_manifest(opts, manifest)
    assert list(out.rglob("*")) == []
    assert sorted(p.name for p in (tmp_path / "box").iterdir()) == ["out"]


# --- a frame that vanished is reported with its reason -----------------------------------------
def established_to(port: int) -> bool:
    """A TCP connection to `port` is established (accepted by the kernel, maybe not the app)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                    return True
    return False


def test_frame_deleted_before_it_is_sent_is_reported_vanished(
    receivers, senders, src: Path, out: Path
) -> None:
    frames = make_frames(src, 6, size=8000)
    receiver = receivers(out, "--use-dest-paths")
    stopped = [receiver.pid, *receiver.workers()]
    # The receiver is frozen: the sender connects (the kernel accepts), then waits for the
    # handshake reply with every file queued, so the frame deleted now is one it has not read.
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        sender = senders(
            src, receiver.port, "--once", "--conns", "1", "--window", "1",
            "--dest-path", "ev", "--json-stats",
        )  # fmt: skip
        wait_until(lambda: established_to(receiver.port), 30, "the sender to connect")
        frames[4].unlink()
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
    stdout, stderr = sender.communicate(timeout=60)
    assert sender.returncode == 1, stderr
    stats = json.loads(stdout.splitlines()[-1])
    reason = "vanished: deleted before it was read"
    assert stats["skipped"] == [{"name": frames[4].name, "reason": reason}]
    folder = out / "ev"
    kept = [p.name for p in frames if p.exists()]
    manifest = assert_manifest_matches(folder, kept)
    assert [(s.name, s.reason) for s in manifest.skipped()] == [(frames[4].name, reason)]

    events = camxfer("events", "--out-dir", str(out), "--json")
    assert events.returncode == 0, events.stderr
    (event,) = json.loads(events.stdout)["events"]
    camera = event["cameras"]["ev"]
    assert (camera["landed"], camera["skipped"]) == (5, 1)
    assert camera["skipped_files"] == [{"name": frames[4].name, "reason": reason}]
    assert not event["complete"]
    shown = camxfer("events", "--out-dir", str(out), "ev")
    assert shown.returncode == 1
    assert f"skipped {frames[4].name}: {reason}" in shown.stdout


# --- camxfer verify ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def landed_event(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One clean transfer of 8 frames into <out>/ball_v/cam01, shared by the verify tests."""
    root = tmp_path_factory.mktemp("verify")
    make_frames(root / "src", 8, size=10_000)
    receiver: Receiver = start_receiver(root / "out", "--use-dest-paths", log_dir=root / "logs")
    try:
        result = run_sender(
            root / "src", receiver.port, "--once", "--dest-path", "ball_v/cam01", "--json-stats"
        )
        assert result.returncode == 0, result.stderr
    finally:
        receiver.stop()
    yield root / "out"


@pytest.fixture
def dest(landed_event: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "out"
    shutil.copytree(landed_event, copy)
    return copy


def frame(dest: Path, number: int) -> Path:
    return dest / "ball_v" / "cam01" / f"frame_camera01_{number:09d}.jpg"


def verify_json(target: Path) -> tuple[int, dict]:
    result = camxfer("verify", str(target), "--json")
    return result.returncode, json.loads(result.stdout)


def test_verify_passes_on_a_clean_transfer(dest: Path) -> None:
    for target in (dest, dest / "ball_v", dest / "ball_v" / "cam01"):
        code, report = verify_json(target)
        assert (code, report["ok"], report["manifests"], report["files"]) == (0, True, 1, 8)
    human = camxfer("verify", str(dest))
    assert human.returncode == 0
    assert "ok    ball_v/cam01: 8 file(s)" in human.stdout and "all match" in human.stdout


def _flip_a_byte(dest: Path) -> None:
    path = frame(dest, 3)
    data = bytearray(path.read_bytes())
    data[5000] ^= 0x01
    path.write_bytes(bytes(data))


def _truncate(dest: Path) -> None:
    os.truncate(frame(dest, 4), 9000)


def _delete(dest: Path) -> None:
    frame(dest, 5).unlink()


def _add_extra(dest: Path) -> None:
    frame(dest, 99).write_bytes(b"\xff\xd8 not sent \xff\xd9")


def _garbage_manifest(dest: Path) -> None:
    (dest / "ball_v" / "cam01" / MANIFEST_NAME).write_bytes(b'{"format": "camxfer-manif')


@pytest.mark.parametrize(
    ("damage", "kind", "name", "text"),
    [
        (_flip_a_byte, "checksum", "frame_camera01_000000003.jpg", "content differs"),
        (_truncate, "size", "frame_camera01_000000004.jpg", "9000 bytes, the manifest says 10000"),
        (_delete, "missing", "frame_camera01_000000005.jpg", "not found"),
        (_add_extra, "extra", "frame_camera01_000000099.jpg", "not in the manifest"),
        (_garbage_manifest, "unreadable", MANIFEST_NAME, "not valid JSON"),
    ],
    ids=["corrupted-byte", "truncated", "deleted", "extra-file", "garbage-manifest"],
)
def test_verify_catches_each_kind_of_damage(dest: Path, damage, kind, name, text) -> None:
    damage(dest)
    code, report = verify_json(dest)
    assert (code, report["ok"], report["problems"]) == (1, False, 1)
    (folder,) = report["folders"]
    assert folder["rel"] == "ball_v/cam01"
    (problem,) = folder["details"]
    assert (problem["kind"], problem["name"]) == (kind, name)
    assert text in problem["detail"]
    human = camxfer("verify", str(dest / "ball_v" / "cam01"))
    assert human.returncode == 1
    assert f"{kind:<10} {name}: " in human.stdout and "1 problem(s)" in human.stdout


def test_verify_without_any_manifest_fails_and_bad_usage_exits_2(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "frame.jpg").write_bytes(b"x")
    code, report = verify_json(tmp_path / "plain")
    assert code == 1 and report["manifests"] == 0
    details = [d["kind"] for f in report["folders"] for d in f["details"]]
    assert sorted(details) == ["missing", "uncovered"]
    for target in (tmp_path / "nowhere", tmp_path / "plain" / "frame.jpg"):
        result = camxfer("verify", str(target))
        assert result.returncode == 2
        assert result.stderr.startswith("camxfer verify: error: ") and "Traceback" not in (
            result.stderr
        )


def test_events_bad_usage_is_one_line_and_exit_2(tmp_path: Path) -> None:
    for argv in (
        ["events", "--out-dir", str(tmp_path / "nowhere")],
        ["events", "--config", str(tmp_path / "camera_config.json")],
        ["events", "--limit", "0"],
    ):
        result = camxfer(*argv)
        assert result.returncode == 2, argv
        # (argparse shows the usage first, as for every command)
        assert result.stderr.splitlines()[-1].startswith("camxfer events: error: "), argv
        assert "Traceback" not in result.stderr, argv
    empty = camxfer("events", "--out-dir", str(tmp_path), "--json")
    assert (empty.returncode, json.loads(empty.stdout)) == (0, {"events": []})


def test_verify_gives_each_file_to_the_nearest_manifest(tmp_path: Path) -> None:
    """Nested manifests (a plain --once into the root, events below it) each own their files."""

    def land(folder: Path, names: list[str]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        files = {}
        for name in names:
            (folder / name).write_bytes(name.encode())
            files[name] = FileEntry(name, len(name), xxh3_hex(folder / name))
        (folder / MANIFEST_NAME).write_bytes(Manifest(files=files).encode())

    land(tmp_path, ["a.jpg"])
    land(tmp_path / "ball" / "cam01", ["f.jpg"])
    (tmp_path / "ball" / "stray.jpg").write_bytes(b"x")  # under the root's manifest only
    (tmp_path / "ball" / "cam01" / ".camxfer-tmp-1-1").write_bytes(b"partial")  # not a frame
    code, report = verify_json(tmp_path)
    assert (code, report["manifests"], report["files"]) == (1, 2, 2)
    by_rel = {f["rel"]: f for f in report["folders"]}
    assert by_rel["ball/cam01"]["ok"] and by_rel["ball/cam01"]["details"] == []
    assert [(d["kind"], d["name"]) for d in by_rel["."]["details"]] == [("extra", "ball/stray.jpg")]
    assert verify_json(tmp_path / "ball" / "cam01")[0] == 0


@pytest.fixture
def unlistable_event() -> Iterator[tuple[Path, list[str]]]:
    """Two events' folders, each with a frame and its manifest; the second cannot be listed.
    Under /tmp, where an unprivileged user can reach it (pytest's folders are the owner's
    alone); root runs the tools as nobody, for whom permissions count."""
    as_user: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("needs setpriv to run the tools without root's permissions")
        as_user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    top = Path(tempfile.mkdtemp(prefix="camxfer-unlistable-"))
    top.chmod(0o755)
    try:
        for ball in ("ball_1", "ball_2"):
            folder = top / ball / "cam01"
            folder.mkdir(parents=True)
            (folder / "f.jpg").write_bytes(b"frame")
            entry = FileEntry("f.jpg", 5, xxh3_hex(folder / "f.jpg"))
            (folder / MANIFEST_NAME).write_bytes(Manifest(files={"f.jpg": entry}).encode())
            for path in (folder.parent, folder, *folder.iterdir()):
                path.chmod(0o755 if path.is_dir() else 0o644)
        (top / "ball_2").chmod(0)
        yield top, as_user
    finally:
        (top / "ball_2").chmod(0o755)
        shutil.rmtree(top)


def test_verify_and_events_report_a_folder_they_cannot_list(
    unlistable_event: tuple[Path, list[str]],
) -> None:
    """os.walk passes over a folder it cannot list in silence: verify said 'all match' and
    exited 0 with a whole event unread, and events left it out without a word."""
    top, as_user = unlistable_event
    command = [*as_user, sys.executable, "-m", "camxfer"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
        )

    verified = run("verify", "--json", str(top))
    assert verified.returncode == 1, verified.stdout
    report = json.loads(verified.stdout)
    details = [(d["kind"], d["name"]) for f in report["folders"] for d in f["details"]]
    assert details == [("unreadable", "ball_2")]
    events = run("events", "--out-dir", str(top))
    assert events.returncode == 0
    assert f"skipped {top / 'ball_2'}: cannot list it" in events.stderr


def test_verify_of_a_symlinked_destination_says_it_is_a_symlink(tmp_path: Path) -> None:
    """DEST a symlink to a folder: verify (which follows no symlink) refused it as 'not a
    folder', which it plainly leads to; the refusal now names the symlink and its target."""
    (tmp_path / "frames").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "frames")
    result = camxfer("verify", str(tmp_path / "link"))
    assert result.returncode == 2
    assert result.stderr == (
        f"camxfer verify: error: {tmp_path / 'link'} is a symlink (to {tmp_path / 'frames'}); "
        "give the folder it leads to.\n"
    )
