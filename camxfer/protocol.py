"""The camxfer wire protocol: message layouts, limits, and their encoding and decoding.

Only this module knows the bytes on the wire; sender and receiver call it. Everything here
is a pure function over bytes, so it can be fuzzed without sockets. See docs/protocol.md.

A connection is: client HELLO, server HELLO reply, then any number of client FILE messages
(header + name + destination + body) and at most one END; the server answers each FILE with
a REPLY (in order, after the file is durable) and END with a REPLY. Everything is big-endian.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

import xxhash

from camxfer.errors import ProtocolError

MAGIC = b"CAMX"
VERSION = 1

# Limits, enforced before anything is allocated or read.
MAX_NAME_BYTES = 1024  # a relative path (with --preserve-structure) in UTF-8
MAX_DEST_BYTES = 1024
MAX_MESSAGE_BYTES = 1024  # error text in a reply
MAX_FILE_SIZE_DEFAULT = 1 << 32  # 4 GiB; receivers may lower it
MAX_SIZE_FIELD = (1 << 64) - 1  # what the u64 size field can carry

# A manifest body (~200 bytes per listed file, so ~150 000 files). The receiver holds it in
# memory while it checks it, so this bounds what one connection can make it allocate.
MAX_MANIFEST_BYTES = 32 << 20
CHECKSUM_BYTES = 16  # XXH3-128: ~20 GB/s, so hashing never limits a 10 GbE link


def new_hasher() -> xxhash.xxh3_128:
    """The content checksum both ends compute over a file's bytes."""
    return xxhash.xxh3_128()


class MessageType(IntEnum):
    FILE = 1
    END = 2
    MANIFEST = 0x10  # the sender's record of what landed, at the end of its part of an event
    REPLY = 0x81


class HelloFlags(IntEnum):
    HAS_COUNT = 1  # the client announces how many files this connection will send


class Status(IntEnum):
    """The outcome the receiver reports for a HELLO, a FILE or an END."""

    OK = 0
    DUPLICATE = 1  # an identical file had already landed under that name: nothing written
    # Errors the sender may retry (the condition may pass, or the bytes were damaged).
    CHECKSUM_MISMATCH = 20
    NO_SPACE = 21
    IO_ERROR = 22
    BUSY = 23
    # Errors a retry cannot fix.
    BAD_REQUEST = 40
    UNSAFE_PATH = 41
    EXISTS_DIFFERENT = 42
    TOO_LARGE = 43
    COUNT_REQUIRED = 44
    COUNT_MISMATCH = 45
    VERSION_UNSUPPORTED = 46
    DEST_PATHS_DISABLED = 47
    BAD_MANIFEST = 58  # a MANIFEST body that is not a valid camxfer manifest

    @property
    def landed(self) -> bool:
        return self in (Status.OK, Status.DUPLICATE)

    @property
    def retryable(self) -> bool:
        return 20 <= self < 40


# --- HELLO ---------------------------------------------------------------------------------
# client: magic(4) version(u8) flags(u8) reserved(u16) count(u64)
_HELLO = struct.Struct("!4sBBHQ")
HELLO_SIZE = _HELLO.size


@dataclass(frozen=True)
class Hello:
    version: int
    count: int | None  # files announced for this connection, None when not announced


def encode_hello(count: int | None = None, version: int = VERSION) -> bytes:
    flags = HelloFlags.HAS_COUNT if count is not None else 0
    return _HELLO.pack(MAGIC, version, flags, 0, count or 0)


def decode_hello(data: bytes) -> Hello:
    if len(data) != HELLO_SIZE:
        raise ProtocolError(f"hello must be {HELLO_SIZE} bytes, got {len(data)}")
    magic, version, flags, _reserved, count = _HELLO.unpack(data)
    if magic != MAGIC:
        raise ProtocolError("not a camxfer client (bad magic)")
    if flags & ~HelloFlags.HAS_COUNT:
        raise ProtocolError(f"unknown hello flags 0x{flags:02x}")
    return Hello(version, count if flags & HelloFlags.HAS_COUNT else None)


# --- FILE header ---------------------------------------------------------------------------
# type(u8) reserved(u8) name_len(u16) dest_len(u16) reserved(u16) seq(u64) size(u64) checksum(16)
_FILE = struct.Struct("!BBHHHQQ16s")
FILE_HEADER_SIZE = _FILE.size
# The first byte of every client message after HELLO is its type; END is just that byte + seq.
_END = struct.Struct("!BBHHHQQ16s")  # same size as a FILE header, fields unused but seq


@dataclass(frozen=True)
class FileHeader:
    seq: int  # the sender's number for this file on this connection; echoed in the reply
    name: str  # relative path of the file under its destination (components split by '/')
    dest: str  # destination folder ('' = the receiver's --out-dir)
    size: int
    checksum: bytes

    def encode(self) -> bytes:
        name = self.name.encode("utf-8")
        dest = self.dest.encode("utf-8")
        _check_lengths(len(name), len(dest))
        if len(self.checksum) != CHECKSUM_BYTES:
            raise ProtocolError("checksum must be 16 bytes")
        if not (0 <= self.seq < 1 << 64 and 0 <= self.size < 1 << 64):
            raise ProtocolError(f"sequence {self.seq} or size {self.size} outside 0..2**64-1")
        fixed = _FILE.pack(
            MessageType.FILE, 0, len(name), len(dest), 0, self.seq, self.size, self.checksum
        )
        return fixed + name + dest


@dataclass(frozen=True)
class FixedHeader:
    """The fixed-size part of a client message, decoded before reading the variable part."""

    type: MessageType
    seq: int
    name_len: int
    dest_len: int
    size: int
    checksum: bytes

    @property
    def variable_len(self) -> int:
        return self.name_len + self.dest_len


def _check_lengths(name_len: int, dest_len: int) -> None:
    if not 0 < name_len <= MAX_NAME_BYTES:
        raise ProtocolError(f"file name length {name_len} outside 1..{MAX_NAME_BYTES}")
    if dest_len > MAX_DEST_BYTES:
        raise ProtocolError(f"destination length {dest_len} over {MAX_DEST_BYTES}")


def encode_end(seq: int) -> bytes:
    return _END.pack(MessageType.END, 0, 0, 0, 0, seq, 0, bytes(CHECKSUM_BYTES))


def decode_fixed(data: bytes, max_file_size: int = MAX_FILE_SIZE_DEFAULT) -> FixedHeader:
    """Decode and bound-check the fixed part of a client message."""
    if len(data) != FILE_HEADER_SIZE:
        raise ProtocolError(f"message header must be {FILE_HEADER_SIZE} bytes, got {len(data)}")
    kind, _r1, name_len, dest_len, _r2, seq, size, checksum = _FILE.unpack(data)
    if kind == MessageType.END:
        return FixedHeader(MessageType.END, seq, 0, 0, 0, checksum)
    if kind != MessageType.FILE:
        raise ProtocolError(f"unknown message type {kind}")
    _check_lengths(name_len, dest_len)
    if size > max_file_size:
        raise ProtocolError(f"file size {size} over this receiver's limit of {max_file_size}")
    return FixedHeader(MessageType.FILE, seq, name_len, dest_len, size, checksum)


def decode_names(fixed: FixedHeader, data: bytes) -> tuple[str, str]:
    """Decode the name and destination that follow a FILE header."""
    if len(data) != fixed.variable_len:
        raise ProtocolError("truncated file name or destination")
    try:
        name = data[: fixed.name_len].decode("utf-8")
        dest = data[fixed.name_len :].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError("file name or destination is not valid UTF-8") from exc
    return name, dest


# --- REPLY (server -> client) ----------------------------------------------------------------
# type(u8) status(u8) message_len(u16) reserved(u32) seq(u64), then message (UTF-8)
_REPLY = struct.Struct("!BBHIQ")
REPLY_SIZE = _REPLY.size


@dataclass(frozen=True)
class Reply:
    seq: int
    status: Status
    message: str = ""

    def encode(self) -> bytes:
        text = self.message.encode("utf-8")[:MAX_MESSAGE_BYTES]
        return _REPLY.pack(MessageType.REPLY, self.status, len(text), 0, self.seq) + text


def decode_reply_fixed(data: bytes) -> tuple[int, Status, int]:
    """Decode a reply's fixed part: (seq, status, message length)."""
    kind, status, message_len, _reserved, seq = _REPLY.unpack(data)
    if kind != MessageType.REPLY:
        raise ProtocolError(f"expected a reply, got message type {kind}")
    if message_len > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"reply message length {message_len} over {MAX_MESSAGE_BYTES}")
    try:
        return seq, Status(status), message_len
    except ValueError as exc:
        raise ProtocolError(f"unknown reply status {status}") from exc


class ReplyParser:
    """Splits a byte stream from the receiver into replies (the sender reads acks with it)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Reply]:
        self._buffer += data
        replies = []
        while len(self._buffer) >= REPLY_SIZE:
            seq, status, message_len = decode_reply_fixed(bytes(self._buffer[:REPLY_SIZE]))
            end = REPLY_SIZE + message_len
            if len(self._buffer) < end:
                break
            message = self._buffer[REPLY_SIZE:end].decode("utf-8", errors="replace")
            del self._buffer[:end]
            replies.append(Reply(seq, status, message))
        return replies


# --- MANIFEST (client -> server) -------------------------------------------------------------
# The 40-byte layout of FILE with type MANIFEST and name_len 0 (the receiver names the file),
# then dest and `size` bytes of manifest JSON whose XXH3-128 is `checksum`.


def encode_manifest(seq: int, dest: str, body: bytes) -> bytes:
    """A MANIFEST message: header, destination and body (sent after every file is acked)."""
    dest_bytes = dest.encode("utf-8")
    if len(dest_bytes) > MAX_DEST_BYTES:
        raise ProtocolError(f"destination length {len(dest_bytes)} over {MAX_DEST_BYTES}")
    if not 0 < len(body) <= MAX_MANIFEST_BYTES:
        raise ProtocolError(f"manifest of {len(body)} bytes outside 1..{MAX_MANIFEST_BYTES}")
    checksum = new_hasher()
    checksum.update(body)
    fixed = _FILE.pack(
        MessageType.MANIFEST, 0, 0, len(dest_bytes), 0, seq, len(body), checksum.digest()
    )
    return fixed + dest_bytes + body


def decode_manifest_fixed(data: bytes) -> FixedHeader:
    """Decode and bound-check the fixed part of a MANIFEST message."""
    if len(data) != FILE_HEADER_SIZE:
        raise ProtocolError(f"message header must be {FILE_HEADER_SIZE} bytes, got {len(data)}")
    kind, _r1, name_len, dest_len, _r2, seq, size, checksum = _FILE.unpack(data)
    if kind != MessageType.MANIFEST:
        raise ProtocolError(f"expected a manifest, got message type {kind}")
    if name_len != 0:
        raise ProtocolError("a manifest carries no file name (the receiver names it)")
    if dest_len > MAX_DEST_BYTES:
        raise ProtocolError(f"destination length {dest_len} over {MAX_DEST_BYTES}")
    if not 0 < size <= MAX_MANIFEST_BYTES:
        raise ProtocolError(f"manifest size {size} outside 1..{MAX_MANIFEST_BYTES}")
    return FixedHeader(MessageType.MANIFEST, seq, 0, dest_len, size, checksum)


def is_manifest(first_byte: int) -> bool:
    """Whether a client message starting with this byte is a MANIFEST."""
    return first_byte == MessageType.MANIFEST
