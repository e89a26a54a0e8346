"""ZMQ CURVE for the trigger socket: keypair files, and setting up server and client sockets.

Responsible for: creating certificate pairs (`NAME.key` public, `NAME.key_secret` secret,
mode 0600), loading them with a clear error, and turning a socket into a CURVE server that
accepts only the client public keys in one folder, or into a CURVE client of one server key.
Not responsible for: what the trigger server does with a request (`trigger_server`).

The ZAP authenticator (`zmq.auth.thread.ThreadAuthenticator`) must run before the server
socket binds, or the first connections are let in unchecked; it is configured with a folder
of allowed client keys, never `CURVE_ALLOW_ANY` (which would let any keypair in).
Pattern: pyzmq examples/security/ironhouse.py.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from camxfer.errors import ConfigError

PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
Z85_KEY_CHARS = 40  # a 32-byte CURVE key in Z85


class CurveError(ConfigError):
    """A CURVE key file or folder is missing or wrong, or libzmq has no CURVE."""


@dataclass(frozen=True)
class CurveServerKeys:
    """The trigger server's own secret key file and the folder of client keys it accepts."""

    secret_file: Path
    clients_dir: Path


@dataclass(frozen=True)
class CurveClientKeys:
    """A trigger client's own secret key file and the server public key file it expects."""

    secret_file: Path
    server_public_file: Path


def require_curve() -> None:
    if not zmq.has("curve"):
        raise CurveError(
            "this libzmq was built without CURVE security; install a pyzmq/libzmq with "
            "libsodium support to use CURVE keys"
        )


def create_keypair(folder: Path | str, name: str) -> tuple[Path, Path]:
    """Write NAME.key and NAME.key_secret (0600) into `folder`; never overwrite either."""
    require_curve()
    folder = Path(folder)
    public, secret = folder / f"{name}{PUBLIC_SUFFIX}", folder / f"{name}{SECRET_SUFFIX}"
    for path in (public, secret):
        if path.exists() or path.is_symlink():
            raise CurveError(f"{path} already exists; not overwriting a key")
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        old_umask = os.umask(0o077)  # the secret file must never exist readable by others
        try:
            zmq.auth.create_certificates(folder, name)
        finally:
            os.umask(old_umask)
        os.chmod(secret, 0o600)
        os.chmod(public, 0o644)  # public keys are meant to be handed out
    except OSError as exc:
        raise CurveError(f"cannot create a CURVE keypair in {folder}: {exc.strerror}") from None
    return public, secret


def load_secret(path: Path | str) -> tuple[bytes, bytes]:
    """(public, secret) from a NAME.key_secret file that only its owner can read."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise CurveError(
            f"CURVE secret key file {path} does not exist "
            "(create a keypair with: camxfer keygen --curve DIR NAME)"
        ) from None
    except OSError as exc:
        raise CurveError(f"CURVE secret key file {path} cannot be read: {exc.strerror}") from None
    public, secret = _load(path, "CURVE secret key file")
    if secret is None:  # a public NAME.key given by mistake: say that, not its mode
        raise CurveError(f"{path} holds no secret key; give the NAME{SECRET_SUFFIX} file")
    if mode & 0o077:
        raise CurveError(
            f"CURVE secret key file {path} has permissions {stat.S_IMODE(mode):04o}, open to "
            f"other users; it must be readable by its owner only (chmod 600 {path})"
        )
    return public, secret


def load_public(path: Path | str) -> bytes:
    public, _secret = _load(Path(path), "CURVE public key file")
    return public


def _load(path: Path, what: str) -> tuple[bytes, bytes | None]:
    if not path.is_file():
        raise CurveError(f"{what} {path} does not exist or is not a file")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise CurveError(f"{what} {path} is not a ZMQ certificate: {exc}") from None
    if len(public) != Z85_KEY_CHARS or (secret is not None and len(secret) != Z85_KEY_CHARS):
        raise CurveError(
            f"{what} {path} is malformed (keys must be {Z85_KEY_CHARS} Z85 characters)"
        )
    return public, secret


def count_client_keys(folder: Path) -> int:
    if not folder.is_dir():
        raise CurveError(f"CURVE client keys folder {folder} does not exist or is not a folder")
    count = sum(1 for path in folder.glob(f"*{PUBLIC_SUFFIX}") if path.is_file())
    if not count:
        raise CurveError(
            f"CURVE client keys folder {folder} holds no *{PUBLIC_SUFFIX} public keys; "
            "no client could connect"
        )
    return count


def start_server(
    context: zmq.Context, sock: zmq.Socket, keys: CurveServerKeys
) -> ThreadAuthenticator:
    """Make `sock` (not yet bound) a CURVE server that lets in only the client keys of
    `keys.clients_dir`; returns the running authenticator, to stop when the socket closes."""
    require_curve()
    public, secret = load_secret(keys.secret_file)
    count_client_keys(keys.clients_dir)
    authenticator = ThreadAuthenticator(context)
    authenticator.start()
    try:
        # Reads every *.key in the folder now: keys added later need a restart (docs/security.md).
        authenticator.configure_curve(domain="*", location=str(keys.clients_dir))
        sock.curve_secretkey = secret
        sock.curve_publickey = public
        sock.curve_server = True
    except BaseException:
        authenticator.stop()
        raise
    return authenticator


@dataclass(frozen=True)
class CurveClient:
    """Loaded client keys, applied to each new REQ socket (Lazy Pirate makes many)."""

    public: bytes
    secret: bytes = field(repr=False)
    server_public: bytes = b""

    @classmethod
    def load(cls, keys: CurveClientKeys) -> CurveClient:
        require_curve()
        public, secret = load_secret(keys.secret_file)
        return cls(public, secret, load_public(keys.server_public_file))

    def apply(self, sock: zmq.Socket) -> None:
        """Make `sock` (not yet connected) a CURVE client of the server."""
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_serverkey = self.server_public
