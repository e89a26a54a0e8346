"""Manifests as data: parsing is strict, encoding round-trips, merging never duplicates a file,
and the MANIFEST wire message is bounded like every other message."""

from __future__ import annotations

import contextlib
import json
import struct

import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from camxfer import protocol
from camxfer.errors import ProtocolError
from camxfer.manifest import (
    MANIFEST_NAME,
    FileEntry,
    Manifest,
    ManifestError,
    RunRecord,
    Skipped,
    merge,
    parse_manifest,
)
from camxfer.protocol import FILE_HEADER_SIZE, MAX_MANIFEST_BYTES, MessageType


def entry(name: str, data: bytes, landed: str | None = None) -> FileEntry:
    return FileEntry(name, len(data), xxhash.xxh3_128(data).hexdigest(), landed)


def run(ended: str, skipped: tuple[Skipped, ...] = ()) -> RunRecord:
    return RunRecord(started="2026-01-01T00:00:00.000Z", ended=ended, files=1, skipped=skipped)


def test_manifest_name_can_never_be_a_frame_name() -> None:
    # The receiver refuses every name with a leading dot, and digest leaves hidden files out.
    assert MANIFEST_NAME.startswith(".")


def test_encode_then_parse_round_trips() -> None:
    manifest = Manifest(
        event="ball_001-100",
        ball_id="ball_001",
        camera="cam01",
        first_frame="frame_cam01_000000100.jpg",
        asked=10,
        files={"a.jpg": entry("a.jpg", b"aaa", "2026-01-01T00:00:01.000Z")},
        runs=[run("2026-01-01T00:00:02.000Z", (Skipped("b.jpg", "vanished: gone"),))],
        updated="2026-01-01T00:00:03.000Z",
    )
    again = parse_manifest(manifest.encode())
    assert again == manifest
    assert again.skipped() == [Skipped("b.jpg", "vanished: gone")]


@settings(max_examples=200, deadline=None)
@given(
    names=st.lists(st.text(min_size=1, max_size=20), min_size=0, max_size=8, unique=True),
    landed=st.one_of(st.none(), st.text(max_size=30)),
)
def test_encode_writes_each_file_line_as_json_would(names: list[str], landed: str | None) -> None:
    # Each file's line is formatted by hand (fast); it must be json.dumps's text exactly,
    # whatever the name holds: quotes, backslashes, control characters, non-ASCII.
    files = {name: entry(name, name.encode("utf-8", "surrogatepass"), landed) for name in names}
    document = Manifest(event="e", files=files, runs=[run("r")]).encode().decode("utf-8")
    lines = document.splitlines()
    start = lines.index(' "files": [') + 1 if files else None
    expected = [
        json.dumps({"name": e.name, "size": e.size, "xxh3_128": e.checksum, "landed": e.landed})
        if e.landed is not None
        else json.dumps({"name": e.name, "size": e.size, "xxh3_128": e.checksum})
        for e in (files[name] for name in sorted(files))
    ]
    if start is None:
        assert ' "files": [],' in lines
    else:
        got = [line.strip().removesuffix(",") for line in lines[start : start + len(files)]]
        assert got == expected
    assert json.loads(document)["files"] == [json.loads(line) for line in expected]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xfe", "UTF-8"),
        (b"{not json", "valid JSON"),
        (b"[]", "JSON object"),
        (b'{"format": "other", "version": 1}', "not a camxfer manifest"),
        (b'{"format": "camxfer-manifest", "version": 2}', "version 2"),
        (b'{"format": "camxfer-manifest", "version": 1, "files": {}}', "'files'"),
        (
            b'{"format": "camxfer-manifest", "version": 1, "files": [{"name": "a", "size": 1, '
            b'"xxh3_128": "XYZ"}]}',
            "xxh3_128",
        ),
        (
            b'{"format": "camxfer-manifest", "version": 1, "files": [{"name": "a", "size": -1, '
            b'"xxh3_128": "' + b"0" * 32 + b'"}]}',
            "'size'",
        ),
        (
            b'{"format": "camxfer-manifest", "version": 1, "files": [{"name": "a", "size": true, '
            b'"xxh3_128": "' + b"0" * 32 + b'"}]}',
            "'size'",
        ),
        (b"[" * 100_000, "JSON"),
    ],
)
def test_parse_refuses_what_is_not_a_manifest(data: bytes, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_manifest(data)


def test_parse_refuses_a_file_listed_twice() -> None:
    item = {"name": "a.jpg", "size": 1, "xxh3_128": "0" * 32}
    data = json.dumps({"format": "camxfer-manifest", "version": 1, "files": [item, item]})
    with pytest.raises(ManifestError, match="twice"):
        parse_manifest(data.encode())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_parse_any_bytes_gives_a_manifest_or_one_error(data: bytes) -> None:
    with contextlib.suppress(ManifestError):
        parse_manifest(data)


def test_merge_is_the_union_and_lists_each_file_once() -> None:
    first = Manifest(
        event="e",
        files={
            "a.jpg": entry("a.jpg", b"a", "2026-01-01T00:00:01.000Z"),
            "b.jpg": entry("b.jpg", b"b", "2026-01-01T00:00:01.000Z"),
        },
        runs=[run("t1")],
    )
    second = Manifest(
        event="e",
        files={"b.jpg": entry("b.jpg", b"b"), "c.jpg": entry("c.jpg", b"c")},
        runs=[run("t2")],
    )
    merged = merge(first, second)
    assert sorted(merged.files) == ["a.jpg", "b.jpg", "c.jpg"]
    # The same bytes landed earlier: the first landed time stays.
    assert merged.files["b.jpg"].landed == "2026-01-01T00:00:01.000Z"
    assert [r.ended for r in merged.runs] == ["t1", "t2"]
    names = [item["name"] for item in merged.to_json()["files"]]
    assert names == sorted(set(names))


def test_skipped_leaves_out_what_landed_in_some_run() -> None:
    manifest = Manifest(
        files={"a.jpg": entry("a.jpg", b"a")},
        runs=[run("t", (Skipped("a.jpg", "missing: x"), Skipped("b.jpg", "missing: y")))],
    )
    assert manifest.skipped() == [Skipped("b.jpg", "missing: y")]


# --- the wire message ------------------------------------------------------------------------
def test_manifest_message_round_trips() -> None:
    body = b'{"format": "camxfer-manifest"}'
    data = protocol.encode_manifest(7, "ball/cam01", body)
    fixed = protocol.decode_manifest_fixed(data[:FILE_HEADER_SIZE])
    assert (fixed.type, fixed.seq, fixed.size) == (MessageType.MANIFEST, 7, len(body))
    assert fixed.checksum == xxhash.xxh3_128(body).digest()
    rest = data[FILE_HEADER_SIZE:]
    name, dest = protocol.decode_names(fixed, rest[: fixed.variable_len])
    assert (name, dest) == ("", "ball/cam01")
    assert rest[fixed.variable_len :] == body
    assert protocol.is_manifest(data[0]) and not protocol.is_manifest(MessageType.FILE)


def _manifest_header(name_len: int = 0, dest_len: int = 0, size: int = 10) -> bytes:
    return struct.pack(
        "!BBHHHQQ16s", MessageType.MANIFEST, 0, name_len, dest_len, 0, 1, size, bytes(16)
    )


@pytest.mark.parametrize(
    "header",
    [
        _manifest_header(name_len=1),
        _manifest_header(dest_len=protocol.MAX_DEST_BYTES + 1),
        _manifest_header(size=0),
        _manifest_header(size=MAX_MANIFEST_BYTES + 1),
        _manifest_header()[:-1],
    ],
    ids=["has-a-name", "long-dest", "empty", "oversized", "short"],
)
def test_manifest_header_bounds(header: bytes) -> None:
    with pytest.raises(ProtocolError):
        protocol.decode_manifest_fixed(header)


def test_encode_manifest_refuses_empty_and_oversized_bodies() -> None:
    with pytest.raises(ProtocolError):
        protocol.encode_manifest(1, "", b"")
    with pytest.raises(ProtocolError):
        protocol.encode_manifest(1, "", b"x" * (MAX_MANIFEST_BYTES + 1))
