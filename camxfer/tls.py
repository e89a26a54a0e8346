"""Optional TLS for transfers over links that leave a trusted network: the SSL contexts.

Responsible for: building the receiver's and the sender's `ssl.SSLContext` from certificate
files (TLS 1.2 at least, the sender checking the receiver's certificate and host name, the
receiver asking for client certificates when given a CA), with one clear error per bad file.
Not responsible for: wrapping sockets (the receiver's `session` and the sender's
`connection` do that) or the camxfer protocol, which runs unchanged inside TLS.

TLS adds confidentiality and a cryptographic check of every byte, bodies included (the shared
key alone leaves bodies to the XXH3 checksum; docs/security.md). The cost is the zero-copy
send: a TLS socket cannot `sendfile` from the kernel here, so the sender reads each file and
encrypts it in user space (RELIABILITY-NOTES §4; cpython gh-99813).
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, NamedTuple, TypeGuard

from camxfer.errors import ConfigError

if TYPE_CHECKING:
    import ssl

# A TLS record starts with content type 22 (handshake); a camxfer HELLO with "CAMX".
TLS_HANDSHAKE_BYTE = 0x16


def _ssl() -> ModuleType:
    """The ssl module, imported when a context is first built: ~10 ms of start-up that a
    run without TLS does not need."""
    import ssl

    return ssl


def is_tls_error(exc: BaseException) -> TypeGuard[ssl.SSLError]:
    """Whether `exc` is an ssl.SSLError (if ssl was never imported, it cannot be one)."""
    ssl = sys.modules.get("ssl")
    return ssl is not None and isinstance(exc, ssl.SSLError)


class TlsError(ConfigError):
    """A certificate, key or CA file is missing, unreadable or wrong."""


class TlsFiles(NamedTuple):
    """Certificate files of one end: its own certificate and key, and the CA it trusts."""

    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """The receiver's context: its certificate; with a CA, senders must show one it signed."""
    ssl = _ssl()
    if files.cert is None or files.key is None:
        raise TlsError("a TLS receiver needs both --tls-cert and --tls-key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(context, files.cert, files.key)
    if files.ca is not None:
        _load_ca(context, files.ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(files: TlsFiles) -> ssl.SSLContext:
    """The sender's context: verifies the receiver against the CA (or the system's CAs)."""
    ssl = _ssl()
    if (files.cert is None) != (files.key is None):
        raise TlsError("give both --tls-cert and --tls-key for a client certificate, or neither")
    if files.ca is not None:
        # Only this CA, not the system's: a public CA's certificate for some other name in
        # the fleet's domain must not pass. Checks the certificate and the host name.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        _load_ca(context, files.ca)
    else:
        context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if files.cert is not None and files.key is not None:
        _load_chain(context, files.cert, files.key)
    return context


def _load_chain(context: ssl.SSLContext, cert: Path, key: Path) -> None:
    ssl = _ssl()
    _check_private(key)
    try:
        context.load_cert_chain(cert, key)
    except FileNotFoundError as exc:
        raise TlsError(f"TLS certificate or key file {exc.filename} does not exist") from None
    except ssl.SSLError as exc:
        raise TlsError(
            f"TLS certificate {cert} and key {key} cannot be used: {exc.reason or exc}"
        ) from None
    except OSError as exc:
        raise TlsError(f"TLS certificate {cert} or key {key}: {exc.strerror}") from None


def _load_ca(context: ssl.SSLContext, ca: Path) -> None:
    ssl = _ssl()
    try:
        context.load_verify_locations(cafile=ca)
    except FileNotFoundError:
        raise TlsError(f"TLS CA file {ca} does not exist") from None
    except ssl.SSLError as exc:
        raise TlsError(f"TLS CA file {ca} holds no usable certificate: {exc.reason}") from None
    except OSError as exc:
        raise TlsError(f"TLS CA file {ca} cannot be read: {exc.strerror}") from None


def _check_private(key: Path) -> None:
    """Refuse a private key other users may read, as for the shared key (docs/security.md)."""
    try:
        mode = os.stat(key).st_mode
    except FileNotFoundError:
        raise TlsError(f"TLS key file {key} does not exist") from None
    except OSError as exc:
        raise TlsError(f"TLS key file {key} cannot be read: {exc.strerror}") from None
    if mode & 0o077:
        raise TlsError(
            f"TLS key file {key} has permissions {stat.S_IMODE(mode):04o}, open to other "
            f"users; it must be readable by its owner only (chmod 600 {key})"
        )
