"""Two plain-Python baselines for moving a folder of files over parallel TCP connections.

Run as a script (stdlib only, so it starts in ~20 ms and runs inside any namespace):

    python bench/pyxfer.py recv --style seed|fast [--fsync] --host H --port P --out DIR --expect N
    python bench/pyxfer.py send --style seed|fast --host H --port P --src DIR [--conns 8]

Framing on each connection, file after file: name length (u16), body size (u64), name, body.
The sender's threads share one list of files, one connection each; the receiver serves each
connection in a thread and exits once `--expect` files have landed.

- `seed`: what the seed system did - read 8 MiB + sendall; `recv(8 MiB)` (a new bytes object
  every call) + write, to `name.part`, then rename. No fsync.
- `fast`: `socket.sendfile` (zero copy from the page cache; header sent with MSG_MORE) and
  `recv_into` one reused 1 MiB buffer + os.write. With `--fsync`, each file is fsynced before
  the rename and the folder after it, like camxfer's durable landing.
Neither checksums, acknowledges, retries or checks paths: they are the floor of what Python
costs per byte and per file, not a transfer tool.
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import sys
import threading
from pathlib import Path

HEADER = struct.Struct("!HQ")
SEED_CHUNK = 8 << 20
FAST_BUFFER = 1 << 20


def recv_exact(sock: socket.socket, n: int) -> bytes | None:
    """`n` bytes, or None at a clean end of stream before the first byte."""
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            if data:
                raise ConnectionError("stream ended inside a header")
            return None
        data += chunk
    return bytes(data)


class Receiver:
    def __init__(self, args: argparse.Namespace) -> None:
        self.out: Path = args.out
        self.style: str = args.style
        self.fsync: bool = args.fsync
        self.expect: int = args.expect
        self.landed = 0
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.dir_fd = os.open(self.out, os.O_RDONLY | os.O_DIRECTORY)

    def serve(self, sock: socket.socket) -> None:
        buffer = bytearray(FAST_BUFFER)
        view = memoryview(buffer)
        with sock:
            while header := recv_exact(sock, HEADER.size):
                name_len, size = HEADER.unpack(header)
                name = (recv_exact(sock, name_len) or b"").decode()
                part = self.out / f"{name}.part"
                fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    if self.style == "seed":
                        self._body_seed(sock, fd, size)
                    else:
                        self._body_fast(sock, fd, size, view)
                    if self.fsync:
                        os.fsync(fd)
                finally:
                    os.close(fd)
                os.rename(part, self.out / name)
                if self.fsync:
                    os.fsync(self.dir_fd)
                with self.lock:
                    self.landed += 1
                    if self.landed >= self.expect:
                        self.done.set()

    @staticmethod
    def _body_seed(sock: socket.socket, fd: int, size: int) -> None:
        remaining = size
        while remaining:
            data = sock.recv(min(SEED_CHUNK, remaining))
            if not data:
                raise ConnectionError("stream ended inside a file")
            os.write(fd, data)
            remaining -= len(data)

    @staticmethod
    def _body_fast(sock: socket.socket, fd: int, size: int, view: memoryview) -> None:
        remaining = size
        while remaining:
            got = sock.recv_into(view, min(len(view), remaining))
            if not got:
                raise ConnectionError("stream ended inside a file")
            chunk = view[:got]
            while chunk:
                chunk = chunk[os.write(fd, chunk) :]
            remaining -= got


def receive(args: argparse.Namespace) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    receiver = Receiver(args)
    listener = socket.create_server((args.host, args.port), backlog=64)
    listener.settimeout(0.1)
    while not receiver.done.is_set():
        try:
            conn, _addr = listener.accept()
        except TimeoutError:
            continue
        conn.settimeout(None)
        threading.Thread(target=receiver.serve, args=(conn,), daemon=True).start()
    return 0


def send(args: argparse.Namespace) -> int:
    files = sorted(p for p in args.src.iterdir() if p.is_file())
    lock = threading.Lock()
    errors: list[BaseException] = []

    def next_file() -> Path | None:
        with lock:
            return files.pop(0) if files else None

    def worker() -> None:
        try:
            with socket.create_connection((args.host, args.port)) as sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                while (path := next_file()) is not None:
                    name = path.name.encode()
                    with open(path, "rb") as file:
                        size = os.fstat(file.fileno()).st_size
                        header = HEADER.pack(len(name), size) + name
                        if args.style == "seed":
                            sock.sendall(header)
                            while chunk := file.read(SEED_CHUNK):
                                sock.sendall(chunk)
                        else:
                            sock.send(header, socket.MSG_MORE)
                            sock.sendfile(file)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(args.conns)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for exc in errors:
        print(f"pyxfer send: {exc}", file=sys.stderr)
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("send", "recv"):
        p = sub.add_parser(command)
        p.add_argument("--style", choices=("seed", "fast"), required=True)
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, required=True)
    sub.choices["recv"].add_argument("--out", type=Path, required=True)
    sub.choices["recv"].add_argument("--expect", type=int, required=True)
    sub.choices["recv"].add_argument("--fsync", action="store_true")
    sub.choices["send"].add_argument("--src", type=Path, required=True)
    sub.choices["send"].add_argument("--conns", type=int, default=8)
    args = parser.parse_args(argv)
    return receive(args) if args.command == "recv" else send(args)


if __name__ == "__main__":
    sys.exit(main())
