"""Everything a sender run is told: one immutable record built by the CLI or by the fleet."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from camxfer.auth import repr_without_key

if TYPE_CHECKING:
    import ssl


class SendOptions(NamedTuple):
    src_dir: Path
    host: str = "127.0.0.1"
    port: int = 50001
    pattern: str = "*.jpg"
    start_after: str | None = None  # only names strictly after this one
    start_at: str | None = None  # only names from this one on (inclusive)
    conns: int = 8
    lookahead: int = 4
    stable_ms: float = 5.0
    settle_ms: float = 500.0  # files younger than this need a stronger signal than stability
    file_wait_ms: float = 10.0
    poll_ms: float = 50.0
    frame_timeout: float = 5.0  # seconds a gap is waited for once later frames exist
    max_files: int = 0  # 0 = unlimited
    dest_path: str = ""
    preserve_structure: bool = False
    cleanup_part_files: bool = False
    once: bool = False
    timeout: float = 0.0  # seconds, 0 = none
    jpeg_eoi: bool = False
    window: int = 32  # files in flight per connection before waiting for an ack
    retries: int = 8  # attempts per file before it is reported failed
    connect_timeout: float = 5.0
    ack_timeout: float = 60.0
    sndbuf: int = 0  # 0 = leave to Linux autotuning
    rcvbuf: int = 0
    use_inotify: bool = True
    # Names known to have landed already (a repeated trigger): final at once, never resent.
    already_landed: frozenset[str] = frozenset()
    verbose: bool = False
    auth_key: bytes | None = None  # the shared key, when configured
    tls: ssl.SSLContext | None = None  # TLS to the receiver

    def __repr__(self) -> str:
        return repr_without_key(self)

    @property
    def stable_s(self) -> float:
        return self.stable_ms / 1000.0

    @property
    def settle_s(self) -> float:
        return self.settle_ms / 1000.0
