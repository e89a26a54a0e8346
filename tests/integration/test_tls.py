"""Optional TLS: a TLS receiver takes only TLS senders that trust it, and frames land whole.

Real `camxfer recv` and `camxfer send` processes, and the fleet commands; the certificates
(a CA, a receiver certificate for 127.0.0.1, a sender certificate, and a second CA nobody
should trust) come from security_helpers.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from camxfer import auth
from camxfer.frames import frame_name
from tests.conftest import (
    make_frames,
    run_sender,
    sha256_file,
    temps_under,
    tree_hashes,
    wait_until,
)
from tests.integration.fleet_helpers import files_under, make_layout, run, write_frames
from tests.integration.fleet_helpers import receivers as fleet_receivers
from tests.integration.fleet_helpers import sha256 as fleet_sha256
from tests.integration.security_helpers import Pki, make_pki, run_cli

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def assert_landed_identical(out: Path, paths: list[Path]) -> None:
    assert tree_hashes(out) == {p.name: sha256_file(p) for p in paths}
    assert not temps_under(out)


@pytest.mark.parametrize("direct_io", ["auto", "always"])
def test_frames_land_byte_identical_over_tls_with_the_shared_key_too(
    receivers, src: Path, out: Path, pki: Pki, tmp_path: Path, direct_io: str
) -> None:
    # With "always", bodies are received from the TLS socket straight into the O_DIRECT stage.
    key = tmp_path / "auth.key"
    auth.write_key(key)
    frames = make_frames(src, 12, size=1_500_000)  # bodies larger than a TLS record or a read
    receiver = receivers(
        out,
        "--workers",
        "2",
        *pki.receiver_args(),
        "--auth-key-file",
        str(key),
        "--direct-io",
        direct_io,
    )

    result = run_sender(
        src,
        receiver.port,
        "--once",
        "--json-stats",
        "--conns",
        "3",
        "--tls-ca",
        str(pki.ca),
        "--auth-key-file",
        str(key),
    )

    assert result.returncode == 0, result.stderr
    assert result.stats["files"] == 12
    assert_landed_identical(out, frames)
    assert "TLS only" in receiver.log()


def test_a_file_far_over_the_limit_fails_at_once_over_tls_too(
    receivers, src: Path, out: Path, pki: Pki
) -> None:
    # TLS bodies are read and sent in user space: that loop looks for the early refusal too.
    frames = make_frames(src, 2, size=5000)
    big = src / frame_name("camera01", 3)
    with big.open("wb") as f:  # sparse: 300 MiB of zeros
        f.truncate(300 << 20)
    os.utime(big, (time.time() - 5, time.time() - 5))
    receiver = receivers(out, *pki.receiver_args(), "--max-file-size", "1000000")

    result = run_sender(
        src, receiver.port, "--once", "--json-stats", "--conns", "1", "--tls-ca", str(pki.ca)
    )

    assert result.returncode == 1, result.stderr
    stats = result.stats
    assert (stats["files"], stats["failed"], stats["retries"]) == (2, 1, 0), result.stderr
    assert "over this receiver's limit" in stats["skipped"][0]["reason"]
    assert_landed_identical(out, frames)


def test_a_plain_sender_is_told_to_use_tls_and_nothing_is_written(
    receivers, src: Path, out: Path, pki: Pki
) -> None:
    make_frames(src, 3)
    receiver = receivers(out, *pki.receiver_args())

    result = run_sender(src, receiver.port, "--once", "--conns", "1")

    assert result.returncode == 1
    assert "this receiver takes TLS connections only; give the sender --tls-ca" in result.stderr
    assert tree_hashes(out) == {}
    assert "sender did not start TLS" in receiver.log()


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("other CA", "its TLS certificate is not trusted"),
        ("wrong name", "its TLS certificate is not trusted"),
    ],
)
def test_a_receiver_certificate_the_sender_does_not_trust_is_refused(
    receivers, src: Path, out: Path, pki: Pki, how: str, expected: str
) -> None:
    make_frames(src, 3)
    receiver = receivers(out, *pki.receiver_args())
    ca, host = (pki.other_ca, "127.0.0.1") if how == "other CA" else (pki.ca, "localhost")

    result = run_sender(
        src, receiver.port, "--once", "--conns", "1", "--host", host, "--tls-ca", str(ca)
    )

    assert result.returncode == 1
    assert expected in result.stderr
    assert tree_hashes(out) == {}
    wait_until(lambda: "TLS handshake failed" in receiver.log(), 10, "the refusal in the log")


def test_a_tls_sender_and_a_plain_receiver_refuse_each_other(
    receivers, src: Path, out: Path, pki: Pki
) -> None:
    make_frames(src, 3)
    receiver = receivers(out)

    result = run_sender(src, receiver.port, "--once", "--conns", "1", "--tls-ca", str(pki.ca))

    assert result.returncode == 1
    assert "TLS handshake failed" in result.stderr
    assert tree_hashes(out) == {}


def test_a_receiver_with_a_ca_requires_a_sender_certificate(
    receivers, src: Path, out: Path, pki: Pki
) -> None:
    frames = make_frames(src, 4)
    receiver = receivers(out, *pki.receiver_args(require_client=True))
    common = ["--once", "--conns", "1", "--tls-ca", str(pki.ca)]

    anonymous = run_sender(src, receiver.port, *common)
    assert anonymous.returncode == 1
    assert "refused the TLS connection" in anonymous.stderr
    assert tree_hashes(out) == {}

    identified = run_sender(
        src,
        receiver.port,
        *common,
        "--tls-cert",
        str(pki.client_cert),
        "--tls-key",
        str(pki.client_key),
    )
    assert identified.returncode == 0, identified.stderr
    assert_landed_identical(out, frames)


def test_a_tls_key_open_to_others_is_refused_with_one_line(
    out: Path, pki: Pki, tmp_path: Path
) -> None:
    loose = tmp_path / "loose.key"
    loose.write_bytes(pki.server_key.read_bytes())
    loose.chmod(0o640)

    recv = ["recv", "--port", "1", "--out-dir", str(out), "--tls-cert", str(pki.server_cert)]
    done = run_cli([*recv, "--tls-key", str(loose)])

    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"camxfer recv: error: TLS key file {loose} has permissions 0640, open to other users; "
        f"it must be readable by its owner only (chmod 600 {loose})"
    ]


def test_fleet_commands_pass_tls_on_to_each_receiver_and_sender(tmp_path: Path, pki: Pki) -> None:
    layout = make_layout(tmp_path / "fleet", ["cam01", "cam02"])
    for camera in layout.cameras:
        write_frames(layout.src(camera), camera, range(6))
    tls_receivers = ("--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key))

    with fleet_receivers(layout, *tls_receivers) as recv:
        assert recv.text().count("TLS only") == 2
        done = run(
            ["senders", "--config", str(layout.config), "--once", "--tls-ca", str(pki.ca)],
            cwd=layout.root,
        )
        plain = run(["senders", "--config", str(layout.config), "--once"], cwd=layout.root)

    assert done.returncode == 0, done.stdout + done.stderr
    assert plain.returncode == 1  # every plain sender refused, nothing sent twice or elsewhere
    for camera in layout.cameras:
        assert files_under(layout.dest(camera) / camera) == {
            frame_name(camera, n): fleet_sha256(layout.src(camera) / frame_name(camera, n))
            for n in range(6)
        }
