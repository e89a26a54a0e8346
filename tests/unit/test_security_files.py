"""CURVE key files and TLS files: each mistake is refused with one sentence naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from camxfer.errors import ConfigError, ExitCode
from camxfer.fleet import curve
from camxfer.tls import TlsFiles, client_context, server_context
from tests.integration.security_helpers import make_pki


def refused(call, *args) -> str:
    with pytest.raises(ConfigError) as caught:
        call(*args)
    assert caught.value.exit_code == ExitCode.USAGE
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return curve.create_keypair(tmp_path / "curve", "server")


def test_a_curve_keypair_loads_and_the_public_file_holds_no_secret(keys) -> None:
    public_file, secret_file = keys
    public, secret = curve.load_secret(secret_file)
    assert curve.load_public(public_file) == public
    assert len(public) == len(secret) == 40 and public != secret
    assert "holds no secret key" in refused(curve.load_secret, public_file)


def test_curve_key_mistakes_are_one_sentence(tmp_path: Path, keys) -> None:
    _public, secret_file = keys
    missing = tmp_path / "missing.key_secret"
    assert "does not exist" in refused(curve.load_secret, missing)
    assert "camxfer keygen --curve" in refused(curve.load_secret, missing)
    secret_file.chmod(0o644)
    assert "permissions 0644" in refused(curve.load_secret, secret_file)
    garbage = tmp_path / "garbage.key"
    garbage.write_text("not a certificate\n")
    assert "not a ZMQ certificate" in refused(curve.load_public, garbage)
    short = tmp_path / "short.key"
    short.write_text('public-key = "abc"\n')
    assert "malformed" in refused(curve.load_public, short)
    empty = tmp_path / "clients"
    empty.mkdir()
    assert "holds no *.key public keys" in refused(curve.count_client_keys, empty)
    assert "does not exist" in refused(curve.count_client_keys, tmp_path / "nowhere")


def test_tls_contexts_need_their_files_and_a_private_key(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    assert server_context(TlsFiles(pki.server_cert, pki.server_key, pki.ca))
    assert client_context(TlsFiles(ca=pki.ca))
    assert "both --tls-cert and --tls-key" in refused(server_context, TlsFiles(pki.server_cert))
    assert "both --tls-cert and --tls-key" in refused(
        client_context, TlsFiles(cert=pki.client_cert)
    )
    assert "does not exist" in refused(client_context, TlsFiles(ca=tmp_path / "none.pem"))
    not_a_ca = tmp_path / "empty.pem"
    not_a_ca.write_text("")
    assert "holds no usable certificate" in refused(client_context, TlsFiles(ca=not_a_ca))
    mismatched = TlsFiles(pki.server_cert, pki.client_key)
    assert "cannot be used" in refused(server_context, mismatched)
    pki.server_key.chmod(0o604)
    assert "permissions 0604" in refused(server_context, TlsFiles(pki.server_cert, pki.server_key))
