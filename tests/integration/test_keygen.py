"""`camxfer keygen`: new keys are private from the start; existing keys are never replaced."""

from __future__ import annotations

import stat
from pathlib import Path

import zmq.auth

from camxfer import auth
from tests.integration.security_helpers import run_cli


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keygen_writes_a_private_shared_key_once(tmp_path: Path) -> None:
    path = tmp_path / "auth.key"

    made = run_cli(["keygen", str(path)])
    before = path.read_bytes()
    again = run_cli(["keygen", str(path)])

    assert made.returncode == 0, made.stderr
    assert mode(path) == 0o600
    assert len(auth.load_key(path)) == 32
    assert again.returncode == 2
    assert again.stderr.splitlines() == [
        f"camxfer keygen: error: {path} already exists; not overwriting a key"
    ]
    assert path.read_bytes() == before


def test_keygen_curve_writes_a_keypair_with_a_private_secret_once(tmp_path: Path) -> None:
    folder = tmp_path / "curve"

    made = run_cli(["keygen", "--curve", str(folder), "trigger-server"])
    again = run_cli(["keygen", "--curve", str(folder), "trigger-server"])
    no_name = run_cli(["keygen", "--curve", str(folder)])
    bad_name = run_cli(["keygen", "--curve", str(folder), "../escape"])

    assert made.returncode == 0, made.stderr
    public, secret = folder / "trigger-server.key", folder / "trigger-server.key_secret"
    assert mode(secret) == 0o600 and mode(public) == 0o644
    public_key, secret_key = zmq.auth.load_certificate(secret)
    assert zmq.auth.load_certificate(public) == (public_key, None) and secret_key
    assert again.returncode == 2 and "already exists" in again.stderr
    assert no_name.returncode == 2 and "needs a folder and a NAME" in no_name.stderr
    assert bad_name.returncode == 2 and "not allowed" in bad_name.stderr
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        "trigger-server.key",
        "trigger-server.key_secret",
    ]
