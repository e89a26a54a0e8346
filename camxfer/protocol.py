"""The camxfer wire protocol: message layouts, limits, and their encoding and decoding.

Only this module knows the bytes on the wire; sender and receiver call it. Everything here
is a pure function over bytes, so it can be fuzzed without sockets. See docs/protocol.md.

A connection is: client HELLO, server HELLO reply, then any number of client FILE messages
(header + name + destination + body) and at most one END; the server answers each FILE with
a REPLY (in order, after the file is durable) and END with a REPLY. Everything is big-endian.
"""

from __future__ import annotations

import binascii
import struct
from enum import IntEnum
from typing import TYPE_CHECKING, NamedTuple

import xxhash

from camxfer.errors import ProtocolError

if TYPE_CHECKING:
    from camxfer.auth import MessageMac

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
    AUTH = 3  # the client's proof (authenticated handshake only)
    REPLY = 0x81
    CHALLENGE = 0x82  # the server's nonce and proof (authenticated handshake only)


class HelloFlags(IntEnum):
    HAS_COUNT = 1  # the client announces how many files this connection will send
    AUTH = 2  # the client holds a shared key: a nonce follows, then the challenge-response


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
    AUTH_REQUIRED = 48  # the receiver has a key and the client offered none
    AUTH_UNSUPPORTED = 49  # the client offered a key and the receiver has none
    AUTH_FAILED = 50  # a proof or a message MAC did not check out (deliberately vague)
    TLS_REQUIRED = 51  # the receiver takes TLS connections only; sent in clear, then close

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


class Hello(NamedTuple):
    version: int
    # Files announced for this connection (the wire's count), None when not announced. Not
    # named `count`: that would hide tuple.count.
    announced: int | None
    auth: bool = False  # a client nonce follows and the client expects a challenge


def encode_hello(count: int | None = None, version: int = VERSION, *, auth: bool = False) -> bytes:
    flags = HelloFlags.HAS_COUNT if count is not None else 0
    if auth:
        flags |= HelloFlags.AUTH
    return _HELLO.pack(MAGIC, version, flags, 0, count or 0)


def decode_hello(data: bytes) -> Hello:
    if len(data) != HELLO_SIZE:
        raise ProtocolError(f"hello must be {HELLO_SIZE} bytes, got {len(data)}")
    magic, version, flags, _reserved, count = _HELLO.unpack(data)
    if magic != MAGIC:
        raise ProtocolError("not a camxfer client (bad magic)")
    if flags & ~(HelloFlags.HAS_COUNT | HelloFlags.AUTH):
        raise ProtocolError(f"unknown hello flags 0x{flags:02x}")
    return Hello(
        version, count if flags & HelloFlags.HAS_COUNT else None, bool(flags & HelloFlags.AUTH)
    )


# --- FILE header ---------------------------------------------------------------------------
# type(u8) reserved(u8) name_len(u16) dest_len(u16) header_check(u16) seq(u64) size(u64)
# checksum(16)
_FILE = struct.Struct("!BBHHHQQ16s")
FILE_HEADER_SIZE = _FILE.size
_CHECK_OFFSET = 6  # where header_check sits in the fixed part


def header_check(fixed: bytes, names: bytes) -> int:
    """CRC-16/CCITT of a FILE header (its header_check field taken as 0), name and destination.

    The body checksum does not cover the header: one flipped bit in a name that TCP's own
    checksum let through could spell another valid name, and the file would land under it.
    A CRC-16 catches every 1- and 2-bit error and every burst up to 16 bits. 0 means "not
    checked" (senders older than the check send 0 in what was a reserved field), so a CRC of
    0 is sent as 0xFFFF.
    """
    zeroed = fixed[:_CHECK_OFFSET] + b"\0\0" + fixed[_CHECK_OFFSET + 2 :]
    return binascii.crc_hqx(zeroed + names, 0xFFFF) or 0xFFFF


# The first byte of every client message after HELLO is its type; END is just that byte + seq.
_END = struct.Struct("!BBHHHQQ16s")  # same size as a FILE header, fields unused but seq


class FileHeader(NamedTuple):
    seq: int  # the sender's number for this file on this connection; echoed in the reply
    name: str  # relative path of the file under its destination (components split by '/')
    dest: str  # destination folder ('' = the receiver's --out-dir)
    size: int
    checksum: bytes

    def encode(self) -> bytes:
        try:
            name = self.name.encode("utf-8")
            dest = self.dest.encode("utf-8")
        except UnicodeEncodeError as exc:  # a name read from disk that is not UTF-8
            raise ProtocolError(f"file name or destination is not valid UTF-8 ({exc})") from exc
        _check_lengths(len(name), len(dest))
        if len(self.checksum) != CHECKSUM_BYTES:
            raise ProtocolError("checksum must be 16 bytes")
        if not (0 <= self.seq < 1 << 64 and 0 <= self.size < 1 << 64):
            raise ProtocolError(f"sequence {self.seq} or size {self.size} outside 0..2**64-1")
        fixed = _FILE.pack(
            MessageType.FILE, 0, len(name), len(dest), 0, self.seq, self.size, self.checksum
        )
        check = header_check(fixed, name + dest).to_bytes(2, "big")
        return fixed[:_CHECK_OFFSET] + check + fixed[_CHECK_OFFSET + 2 :] + name + dest


class FixedHeader(NamedTuple):
    """The fixed-size part of a client message, decoded before reading the variable part."""

    type: MessageType
    seq: int
    name_len: int
    dest_len: int
    size: int
    checksum: bytes
    header_check: int = 0  # 0: the sender does not check its headers
    raw: bytes = b""  # the fixed part as received, for the check

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
    check = int.from_bytes(data[_CHECK_OFFSET : _CHECK_OFFSET + 2], "big")
    return FixedHeader(MessageType.FILE, seq, name_len, dest_len, size, checksum, check, data)


def decode_names(fixed: FixedHeader, data: bytes) -> tuple[str, str]:
    """Decode the name and destination that follow a FILE header."""
    if len(data) != fixed.variable_len:
        raise ProtocolError("truncated file name or destination")
    if fixed.header_check and header_check(fixed.raw, data) != fixed.header_check:
        raise ProtocolError("file header damaged in transit (header check mismatch)")
    try:
        name = data[: fixed.name_len].decode("utf-8")
        dest = data[fixed.name_len :].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError("file name or destination is not valid UTF-8") from exc
    return name, dest


# --- REPLY (server -> client) ----------------------------------------------------------------
# type(u8) status(u8) message_len(u16) reply_check(u32) seq(u64), then message (UTF-8)
_REPLY = struct.Struct("!BBHIQ")
REPLY_SIZE = _REPLY.size
_REPLY_CHECK = slice(4, 8)


def reply_check(fixed: bytes, message: bytes) -> int:
    """CRC-32 of a reply (its reply_check field taken as 0) and its message.

    A bit flipped in an acknowledgement's sequence number could make the sender count the
    wrong file as landed. 0 means "not checked" (receivers older than the check), so a CRC
    of 0 is sent as 0xFFFFFFFF.
    """
    zeroed = fixed[: _REPLY_CHECK.start] + bytes(4) + fixed[_REPLY_CHECK.stop :]
    return binascii.crc32(zeroed + message) or 0xFFFFFFFF


class Reply(NamedTuple):
    seq: int
    status: Status
    message: str = ""

    def encode(self) -> bytes:
        text = self.message.encode("utf-8")[:MAX_MESSAGE_BYTES]
        fixed = _REPLY.pack(MessageType.REPLY, self.status, len(text), 0, self.seq)
        check = reply_check(fixed, text).to_bytes(4, "big")
        return fixed[: _REPLY_CHECK.start] + check + fixed[_REPLY_CHECK.stop :] + text


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

    def __init__(self, mac: MessageMac | None = None) -> None:
        self._buffer = bytearray()
        self._mac = mac  # on an authenticated connection, each reply carries a MAC to check

    def feed(self, data: bytes) -> list[Reply]:
        self._buffer += data
        replies = []
        tag_len = MAC_SIZE if self._mac is not None else 0
        while len(self._buffer) >= REPLY_SIZE:
            seq, status, message_len = decode_reply_fixed(bytes(self._buffer[:REPLY_SIZE]))
            end = REPLY_SIZE + message_len
            if len(self._buffer) < end + tag_len:
                break
            if self._mac is not None and not self._mac.verify(
                bytes(self._buffer[:end]), bytes(self._buffer[end : end + tag_len])
            ):
                raise ProtocolError("a reply from the receiver failed authentication")
            fixed, text = bytes(self._buffer[:REPLY_SIZE]), bytes(self._buffer[REPLY_SIZE:end])
            check = int.from_bytes(fixed[_REPLY_CHECK], "big")
            if check and reply_check(fixed, text) != check:
                raise ProtocolError("reply damaged in transit (reply check mismatch)")
            message = self._buffer[REPLY_SIZE:end].decode("utf-8", errors="replace")
            del self._buffer[: end + tag_len]
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


# --- authenticated handshake (HELLO flag AUTH) ------------------------------------------------
# Every field has a fixed length, so nothing is allocated or parsed from an unproven length.
# client, right after HELLO: nonce(32)
# server CHALLENGE: type(u8) reserved(7) nonce(32) proof(32)
# client AUTH:      type(u8) reserved(7) proof(32)      (40 bytes, like a FILE header)
# then every FILE (header + name + dest) and END, and every server REPLY, is followed by a
# 32-byte MAC (camxfer.auth.MessageMac), and the receiver checks it before acting.
NONCE_SIZE = 32
MAC_SIZE = 32
_CHALLENGE = struct.Struct("!B7x32s32s")
CHALLENGE_SIZE = _CHALLENGE.size
_AUTH = struct.Struct("!B7x32s")
AUTH_SIZE = _AUTH.size


class Challenge(NamedTuple):
    nonce: bytes
    proof: bytes

    def encode(self) -> bytes:
        return _CHALLENGE.pack(MessageType.CHALLENGE, self.nonce, self.proof)


def decode_challenge(data: bytes) -> Challenge:
    if len(data) != CHALLENGE_SIZE:
        raise ProtocolError(f"challenge must be {CHALLENGE_SIZE} bytes, got {len(data)}")
    kind, nonce, proof = _CHALLENGE.unpack(data)
    if kind != MessageType.CHALLENGE:
        raise ProtocolError(f"expected a challenge, got message type {kind}")
    return Challenge(nonce, proof)


def encode_auth(proof: bytes) -> bytes:
    if len(proof) != MAC_SIZE:
        raise ProtocolError(f"proof must be {MAC_SIZE} bytes")
    return _AUTH.pack(MessageType.AUTH, proof)


def decode_auth(data: bytes) -> bytes:
    """The client's proof from an AUTH message."""
    if len(data) != AUTH_SIZE:
        raise ProtocolError(f"auth message must be {AUTH_SIZE} bytes, got {len(data)}")
    kind, proof = _AUTH.unpack(data)
    if kind != MessageType.AUTH:
        raise ProtocolError(f"expected an auth message, got message type {kind}")
    return proof
