"""Shared-key authentication: the key file, the handshake proofs and the per-message MACs.

Responsible for: reading and creating the shared key file (refusing one other users could
read), computing the HMAC-SHA256 values of the TCP handshake and of every message after it,
and counting authentication failures per peer address.
Not responsible for: the bytes on the wire (`protocol` lays them out) or sockets (the sender's
`connection` and the receiver's `session` do the I/O). See docs/security.md for the threat
model and docs/protocol.md for where each value travels.

Every value is HMAC-SHA256 under a key and a label naming its role, so a value made for one
role (the server's proof, a reply) is never accepted in another (the client's proof, a file
header): that is what stops reflection. Nonces from both ends make every connection's values
new, which stops replay. Comparisons use `hmac.compare_digest` (constant time).
"""

from __future__ import annotations

import os
import re
import stat
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from camxfer.errors import ConfigError

KEY_BYTES = 32
NONCE_BYTES = 32
MAC_BYTES = 32  # HMAC-SHA256, untruncated
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # a key's name in a file name

_HIDDEN_FIELDS = ("auth_key", "tls")  # of settings records, in their repr

# Labels: one per role a MAC plays. The version prefix keeps a future handshake's values apart.
_LABEL_SERVER_PROOF = b"camxfer/1 server proof\0"
_LABEL_CLIENT_PROOF = b"camxfer/1 client proof\0"
_LABEL_CLIENT_TO_SERVER = b"camxfer/1 client-to-server key\0"
_LABEL_SERVER_TO_CLIENT = b"camxfer/1 server-to-client key\0"


class KeyFileError(ConfigError):
    """The shared key file is missing, unreadable, malformed or readable by other users."""


# --- the key file --------------------------------------------------------------------------------
def load_key(path: Path | str) -> bytes:
    """Read a shared key file: 64 hexadecimal digits (32 bytes), an optional newline after.

    Like OpenSSH with a private key, refuse a file that the group or others may read or write
    (any of the mode bits 0o077): a key other users can read protects nothing.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise KeyFileError(
            f"key file {path} does not exist (create one with: camxfer keygen {path})"
        ) from None
    except IsADirectoryError:
        raise KeyFileError(f"key file {path} is a folder, not a file") from None
    except OSError as exc:
        raise KeyFileError(f"key file {path} cannot be read: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"key file {path} is not a regular file")
        if st.st_mode & 0o077:
            raise KeyFileError(
                f"key file {path} has permissions {stat.S_IMODE(st.st_mode):04o}, open to "
                f"other users; it must be readable by its owner only (chmod 600 {path})"
            )
        data = os.read(fd, 4 * KEY_BYTES)
    except OSError as exc:
        raise KeyFileError(f"key file {path} cannot be read: {exc.strerror}") from None
    finally:
        os.close(fd)
    return parse_key(data, path)


def parse_key(data: bytes, path: Path | str = "key file") -> bytes:
    text = data.strip()
    try:
        key = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise KeyFileError(
            f"key file {path} is malformed: it must hold {2 * KEY_BYTES} hexadecimal digits "
            f"({KEY_BYTES} bytes, as camxfer keygen writes)"
        )
    return key


def write_key(path: Path | str) -> None:
    """Create a new key file with 32 random bytes in hex, mode 0600; never overwrite one."""
    path = Path(path)
    key = os.urandom(KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path} already exists; not overwriting a key") from None
    except OSError as exc:
        raise KeyFileError(f"cannot create key file {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode is masked by the umask; be exact
        os.write(fd, key.hex().encode("ascii") + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)


# --- settings that carry the key -----------------------------------------------------------------
def repr_without_key(record: Any) -> str:
    """A settings record's repr (a NamedTuple's) with its `auth_key` and TLS context shown
    only as set or not: the key must never reach a log or a traceback."""
    fields = [
        f"{name}=<set>" if name in _HIDDEN_FIELDS and value is not None else f"{name}={value!r}"
        for name, value in record._asdict().items()
    ]
    return f"{type(record).__name__}({', '.join(fields)})"


# --- handshake proofs ----------------------------------------------------------------------------
def _mac(key: bytes, *parts: bytes) -> bytes:
    # Imported here: loading OpenSSL's hashes is ~3 ms of every start-up, and only runs
    # with a shared key need them.
    import hashlib
    import hmac

    return hmac.new(key, b"".join(parts), hashlib.sha256).digest()


def new_nonce() -> bytes:
    return os.urandom(NONCE_BYTES)


def server_proof(key: bytes, hello: bytes, client_nonce: bytes, server_nonce: bytes) -> bytes:
    """What the server sends to show it holds the key (the client's fresh nonce is in it)."""
    return _mac(key, _LABEL_SERVER_PROOF, hello, client_nonce, server_nonce)


def client_proof(key: bytes, hello: bytes, client_nonce: bytes, server_nonce: bytes) -> bytes:
    """What the client sends to show it holds the key (the server's fresh nonce is in it)."""
    return _mac(key, _LABEL_CLIENT_PROOF, hello, client_nonce, server_nonce)


def proofs_equal(expected: bytes, got: bytes) -> bool:
    return _constant_time_equal(expected, got)


def _constant_time_equal(a: bytes, b: bytes) -> bool:
    import hmac

    return hmac.compare_digest(a, b)


class MessageMac:
    """MACs of one direction of one connection: key from both nonces, a counter per message.

    The counter is implicit (both ends count the messages in order), so a message dropped,
    repeated, reordered or taken from another connection fails the check.
    """

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._counter = 0

    def tag(self, message: bytes) -> bytes:
        tag = _mac(self._key, self._counter.to_bytes(8, "big"), message)
        self._counter += 1
        return tag

    def verify(self, message: bytes, tag: bytes) -> bool:
        return _constant_time_equal(self.tag(message), tag)


def session_macs(key: bytes, client_nonce: bytes, server_nonce: bytes) -> tuple[bytes, bytes]:
    """(client-to-server key, server-to-client key) for the messages after the handshake."""
    return (
        _mac(key, _LABEL_CLIENT_TO_SERVER, client_nonce, server_nonce),
        _mac(key, _LABEL_SERVER_TO_CLIENT, client_nonce, server_nonce),
    )


# --- failures ------------------------------------------------------------------------------------
class FailureCounter:
    """Authentication failures per peer address, for the log (bounded: oldest forgotten)."""

    def __init__(self, limit: int = 4096) -> None:
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()
        self.total = 0

    def add(self, address: str) -> int:
        """Count one failure from `address`; return how many it has had."""
        with self._lock:
            count = self._counts.pop(address, 0) + 1
            self._counts[address] = count
            while len(self._counts) > self._limit:
                self._counts.popitem(last=False)
            self.total += 1
            return count
