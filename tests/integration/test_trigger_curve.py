"""CURVE on the trigger socket: only clients whose public key the server holds get a trigger in.

A real `camxfer senders --zmq` with --zmq-curve-secret/--zmq-curve-clients and real
`camxfer receivers`, both reading a shared key from camera_config.json's auth_key_file and
speaking TLS to each other, so the whole path from trigger to landed frame is authenticated
(and encrypted). A plaintext client, a client with an
unknown key and a client expecting another server key get no reply and start no event; a
known client's trigger lands every frame byte-identical.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fleet_helpers import (
    Layout,
    Proc,
    files_under,
    make_layout,
    receivers,
    run,
    sha256,
    trigger_server,
    write_frames,
)

from camxfer import auth
from camxfer.errors import TransferError
from camxfer.fleet.curve import CurveClientKeys, create_keypair
from camxfer.fleet.trigger_client import TriggerClient
from camxfer.frames import frame_name
from tests.integration.security_helpers import make_pki

pytestmark = pytest.mark.timeout(90)

CAMERAS = ["cam01", "cam02"]


@dataclass
class Keys:
    server_public: Path
    server_secret: Path
    clients: Path
    known_secret: Path
    unknown_secret: Path
    unknown_public: Path

    def client(self, secret: Path, server_public: Path | None = None) -> CurveClientKeys:
        return CurveClientKeys(secret, server_public or self.server_public)


@dataclass
class Fleet:
    layout: Layout
    keys: Keys
    server: Proc


def make_keys(root: Path) -> Keys:
    server_public, server_secret = create_keypair(root / "curve", "trigger-server")
    _known_public, known_secret = create_keypair(root / "curve" / "clients", "operator")
    unknown_public, unknown_secret = create_keypair(root / "elsewhere", "stranger")
    return Keys(
        server_public,
        server_secret,
        root / "curve" / "clients",
        known_secret,
        unknown_secret,
        unknown_public,
    )


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    layout = make_layout(tmp_path_factory.mktemp("curve"), CAMERAS)
    auth.write_key(layout.root / "auth.key")
    for camera in CAMERAS:
        layout.raw[camera]["auth_key_file"] = "auth.key"  # relative to the config's folder
        write_frames(layout.src(camera), camera, range(12))
    layout.config.write_text(json.dumps(layout.raw, indent=2))
    keys = make_keys(layout.root)
    pki = make_pki(layout.root / "pki")
    tls_receivers = ("--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key))
    sender_flags = (
        "--tls-ca",
        str(pki.ca),
        "--zmq-curve-secret",
        str(keys.server_secret),
        "--zmq-curve-clients",
        str(keys.clients),
    )
    with (
        receivers(layout, *tls_receivers) as recv,
        trigger_server(layout, *sender_flags) as server,
    ):
        assert "CURVE: known client keys only" in server.text()
        assert recv.text().count("TLS only") == len(CAMERAS)
        yield Fleet(layout, keys, server)
        assert "authentication failed" not in recv.text()


def test_a_known_client_triggers_and_every_frame_lands_byte_identical(fleet: Fleet) -> None:
    client = TriggerClient(
        "127.0.0.1",
        fleet.layout.zmq_port,
        timeout=10,
        curve=fleet.keys.client(fleet.keys.known_secret),
    )

    reply = client.trigger(frame_name("cam01", 0), "ball_good")
    status = client.wait(reply["event"], timeout=60)

    assert status["state"] == "done", status
    for camera in CAMERAS:
        landed = files_under(fleet.layout.landed(camera, "ball_good"))
        assert landed == {
            frame_name(camera, n): sha256(fleet.layout.src(camera) / frame_name(camera, n))
            for n in range(10)
        }


# What the server's log says. Only the ZAP refusal of an unknown key is certain to be reported
# as such: the other clients' handshakes may also end as "its handshake failed" when the
# client gives up mid-handshake, depending on timing.
REASONS = {
    "plaintext": None,
    "unknown key": "its key is not among the allowed client keys",
    "wrong server key": None,
}


@pytest.mark.parametrize("who", list(REASONS))
def test_other_clients_get_no_reply_and_start_nothing(fleet: Fleet, who: str) -> None:
    keys = fleet.keys
    curve = {
        "plaintext": None,
        "unknown key": keys.client(keys.unknown_secret),
        "wrong server key": keys.client(keys.known_secret, keys.unknown_public),
    }[who]
    ball = "ball_" + who.replace(" ", "_")
    client = TriggerClient("127.0.0.1", fleet.layout.zmq_port, timeout=1.5, retries=2, curve=curve)

    with pytest.raises(TransferError, match="no reply from the trigger server"):
        client.trigger(frame_name("cam01", 0), ball)
    if REASONS[who]:
        fleet.server.wait_log(f"refused a trigger client: {REASONS[who]}")

    known = TriggerClient(
        "127.0.0.1", fleet.layout.zmq_port, timeout=10, curve=keys.client(keys.known_secret)
    )
    events = known.request({"list": True})["events"]
    assert not any(event.startswith(ball) for event in events), events
    for camera in CAMERAS:
        assert not (fleet.layout.dest(camera) / ball).exists()


def test_the_trigger_command_takes_the_curve_keys(fleet: Fleet) -> None:
    keys, layout = fleet.keys, fleet.layout
    base = ["trigger", "--port", str(layout.zmq_port), "--reply-timeout", "1.5"]
    status = [*base, "--status", "nonexistent-0"]

    refused = run(status, cwd=layout.root)
    allowed = run(
        [
            *status,
            "--curve-secret",
            str(keys.known_secret),
            "--curve-server-key",
            str(keys.server_public),
        ],
        cwd=layout.root,
    )
    half = run([*status, "--curve-secret", str(keys.known_secret)], cwd=layout.root)

    assert refused.returncode == 2 and "no reply from the trigger server" in refused.stderr
    # Answered: the server says it knows no such event (exit 1), which proves the request got in.
    assert allowed.returncode == 1 and "no event 'nonexistent-0'" in allowed.stderr
    assert half.returncode == 2
    assert half.stderr.strip() == (
        "camxfer trigger: error: give both --curve-secret and --curve-server-key, or neither"
    )


def test_a_curve_secret_open_to_others_or_an_empty_clients_folder_is_refused(
    tmp_path: Path,
) -> None:
    layout = make_layout(tmp_path, ["cam01"])
    keys = make_keys(tmp_path)
    empty = tmp_path / "no-clients"
    empty.mkdir()
    zmq_args = ["senders", "--config", str(layout.config), "--zmq", "--zmq-bind", "127.0.0.1"]
    zmq_args += ["--zmq-port", str(layout.zmq_port)]

    keys.server_secret.chmod(0o640)
    loose = run(
        [
            *zmq_args,
            "--zmq-curve-secret",
            str(keys.server_secret),
            "--zmq-curve-clients",
            str(keys.clients),
        ],
        cwd=tmp_path,
    )
    keys.server_secret.chmod(0o600)
    no_clients = run(
        [
            *zmq_args,
            "--zmq-curve-secret",
            str(keys.server_secret),
            "--zmq-curve-clients",
            str(empty),
        ],
        cwd=tmp_path,
    )

    assert loose.returncode == 2
    assert loose.stderr.splitlines() == [
        f"camxfer senders: error: CURVE secret key file {keys.server_secret} has permissions "
        f"0640, open to other users; it must be readable by its owner only "
        f"(chmod 600 {keys.server_secret})"
    ]
    assert no_clients.returncode == 2
    assert "holds no *.key public keys" in no_clients.stderr
    assert len(no_clients.stderr.splitlines()) == 1
