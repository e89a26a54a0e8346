"""camera_config.json: the seed format loads with defaults; every mistake is one clear sentence."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from camxfer.errors import ConfigError, ExitCode
from camxfer.fleet.config import (
    DEFAULT_CONFIG_NAME,
    CameraConfig,
    add_config_argument,
    load_config,
)

SEED = {
    "camera06": {
        "src": "/mnt/EyeQ_disk1/ring_buffer_jpg/data_transfer_test/camera06",
        "dest_path": "/mnt/bt3-disk-03/data_transfer_test/",
    },
    "camera04": {
        "src": "/mnt/EyeQ_disk1/ring_buffer_jpg/data_transfer_test/camera04",
        "dest_path": "/mnt/bt3-disk-01/data_transfer_test/",
    },
    "camera05": {
        "src": "/mnt/EyeQ_disk1/ring_buffer_jpg/data_transfer_test/camera05",
        "dest_path": "/mnt/bt3-disk-02/data_transfer_test/",
    },
}


def write(folder: Path, content: object, name: str = DEFAULT_CONFIG_NAME) -> Path:
    path = folder / name
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=4))
    return path


def config_error(path: Path, **kwargs: bool) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path, **kwargs)
    message = str(caught.value)
    assert "\n" not in message, "a config error is one line"
    assert caught.value.exit_code == ExitCode.USAGE
    return message


def test_seed_format_loads_with_defaults_in_file_order(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, SEED))

    assert config.path == tmp_path / DEFAULT_CONFIG_NAME
    assert [camera.name for camera in config.cameras] == ["camera06", "camera04", "camera05"]
    assert config.cameras[0] == CameraConfig(
        name="camera06",
        src=Path("/mnt/EyeQ_disk1/ring_buffer_jpg/data_transfer_test/camera06"),
        dest_path=Path("/mnt/bt3-disk-03/data_transfer_test"),
        host="127.0.0.1",
        port=50001,
        pattern="*.jpg",
        max_files=None,
        conns=None,
    )
    # Ports follow the order in the file, not the names.
    assert [camera.port for camera in config.cameras] == [50001, 50002, 50003]
    assert config.camera("camera04").src == Path(SEED["camera04"]["src"])


def test_every_optional_field_is_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "cam-a_1": {
                "src": "/ring/a",
                "dest_path": "/data",
                "host": "storage-01",
                "port": 6000,
                "pattern": "frame_*.png",
                "max_files": 0,
                "conns": 256,
            },
            "cam-b": {"max_files": None, "conns": 1},
        },
    )

    first, second = load_config(path).cameras

    assert first == CameraConfig(
        "cam-a_1", Path("/ring/a"), Path("/data"), "storage-01", 6000, "frame_*.png", 0, 256
    )
    assert (second.src, second.dest_path, second.max_files, second.conns) == (None, None, None, 1)
    assert second.port == 50002


def test_relative_folders_resolve_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_folder = tmp_path / "etc"
    config_folder.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write(config_folder, {"camera01": {"src": "ring/camera01", "dest_path": "../data"}})
    monkeypatch.chdir(elsewhere)

    camera = load_config(Path("../etc") / DEFAULT_CONFIG_NAME).camera("camera01")

    assert camera.src is not None and camera.dest_path is not None
    assert camera.src.is_absolute()
    assert camera.src.resolve() == (config_folder / "ring" / "camera01").resolve()
    assert camera.dest_path.resolve() == (tmp_path / "data").resolve()


def test_two_cameras_may_share_a_port_on_different_hosts(tmp_path: Path) -> None:
    path = write(
        tmp_path, {"a": {"host": "10.0.0.1", "port": 7000}, "b": {"host": "10.0.0.2", "port": 7000}}
    )
    assert [(c.host, c.port) for c in load_config(path).cameras] == [
        ("10.0.0.1", 7000),
        ("10.0.0.2", 7000),
    ]


def test_need_src_and_need_dest_make_the_folders_required(tmp_path: Path) -> None:
    path = write(tmp_path, {"camera01": {"src": "/ring"}, "camera02": {"dest_path": "/data"}})

    assert len(load_config(path).cameras) == 2
    message = config_error(path, need_dest=True)
    assert str(path) in message and "'camera01'" in message and "'dest_path'" in message
    message = config_error(path, need_src=True)
    assert str(path) in message and "'camera02'" in message and "'src'" in message


def test_unknown_camera_lists_the_known_ones(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, SEED))
    with pytest.raises(ConfigError) as caught:
        config.camera("camera99")
    assert "camera99" in str(caught.value)
    assert "camera06, camera04, camera05" in str(caught.value)


# (settings of camera "cam1", field named in the error, words the error must contain)
BAD_FIELDS = [
    ({"port": 0}, "port", "1 to 65535"),
    ({"port": 65536}, "port", "1 to 65535"),
    ({"port": "50001"}, "port", '"50001"'),
    ({"port": 50001.0}, "port", "integer"),
    ({"port": True}, "port", "true"),
    ({"port": None}, "port", "null"),
    ({"conns": 0}, "conns", "1 to 256"),
    ({"conns": 257}, "conns", "1 to 256"),
    ({"conns": False}, "conns", "false"),
    ({"max_files": -1}, "max_files", "0 or more"),
    ({"max_files": True}, "max_files", "true"),
    ({"max_files": "10"}, "max_files", '"10"'),
    ({"pattern": ""}, "pattern", "*.jpg"),
    ({"pattern": "sub/*.jpg"}, "pattern", "'/'"),
    ({"pattern": 5}, "pattern", "5"),
    ({"host": ""}, "host", "host name"),
    ({"host": "two words"}, "host", "without spaces"),
    ({"host": 10}, "host", "10"),
    ({"src": 5}, "src", "folder path"),
    ({"src": ""}, "src", "folder path"),
    ({"dest_path": ["/a"]}, "dest_path", '["/a"]'),
    ({"dst": "/data"}, "dst", "src, dest_path, host, port, pattern, max_files, conns"),
]


@pytest.mark.parametrize(("settings", "field", "words"), BAD_FIELDS)
def test_a_bad_field_names_file_camera_and_field(
    tmp_path: Path, settings: dict, field: str, words: str
) -> None:
    path = write(tmp_path, {"cam0": {"src": "/ring"}, "cam1": {"src": "/ring", **settings}})

    message = config_error(path)

    assert str(path) in message
    assert "camera 'cam1'" in message
    assert f"field {field!r}" in message
    assert words in message


def test_duplicate_explicit_port_names_both_cameras(tmp_path: Path) -> None:
    path = write(tmp_path, {"a": {"port": 7000}, "b": {"host": "127.0.0.1", "port": 7000}})
    message = config_error(path)
    assert "camera 'b'" in message and "field 'port'" in message and "camera 'a'" in message


def test_explicit_port_colliding_with_a_default_port_is_refused(tmp_path: Path) -> None:
    # "a" takes the default 50001; "b" asks for it explicitly.
    path = write(tmp_path, {"a": {}, "b": {"port": 50001}})
    message = config_error(path)
    assert "camera 'b'" in message and "50001" in message and "camera 'a'" in message


def test_default_port_colliding_with_an_explicit_port_says_it_is_a_default(tmp_path: Path) -> None:
    path = write(tmp_path, {"a": {"port": 50002}, "b": {}})
    message = config_error(path)
    assert "camera 'b'" in message and "field 'port'" in message and "default" in message


@pytest.mark.parametrize("name", ["../x", "", "-lead", "cam era", "cam/01", "a" * 65, "câm"])
def test_unsafe_camera_names_are_refused(tmp_path: Path, name: str) -> None:
    message = config_error(write(tmp_path, {name: {"src": "/ring"}}))
    assert str(tmp_path) in message and repr(name) in message and "not allowed" in message


@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", fullmatch=True))
def test_every_safe_camera_name_is_accepted(name: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder), {name: {}})
        assert [camera.name for camera in load_config(path).cameras] == [name]


@pytest.mark.parametrize("entry", [[], "/ring/camera01", 5, None])
def test_a_camera_entry_that_is_not_an_object_is_refused(tmp_path: Path, entry: object) -> None:
    message = config_error(write(tmp_path, {"camera01": entry}))
    assert str(tmp_path) in message and "camera 'camera01'" in message and "JSON object" in message


def test_a_camera_defined_twice_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '{"camera01": {"src": "/a"}, "camera01": {"src": "/b"}}')
    message = config_error(path)
    assert "camera 'camera01'" in message and "more than once" in message


def test_a_field_given_twice_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '{"camera01": {"port": 7000, "port": 7001}}')
    message = config_error(path)
    assert "camera 'camera01'" in message and "field 'port'" in message


def test_invalid_json_gives_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '{\n  "camera01": {"src": "/a",}\n}')
    message = config_error(path)
    assert str(path) in message and "line 2, column 28" in message


@pytest.mark.parametrize("content", ["[]", '"camera01"', "42", "null"])
def test_top_level_must_be_an_object(tmp_path: Path, content: str) -> None:
    message = config_error(write(tmp_path, content))
    assert str(tmp_path) in message and "top level must be a JSON object" in message


def test_empty_config_is_refused(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, "{}"))
    assert str(tmp_path) in message and "no cameras" in message


def test_missing_file_is_refused(tmp_path: Path) -> None:
    message = config_error(tmp_path / "nope.json")
    assert str(tmp_path / "nope.json") in message and "does not exist" in message


def test_a_folder_instead_of_a_file_is_refused(tmp_path: Path) -> None:
    message = config_error(tmp_path)
    assert str(tmp_path) in message and "is a folder" in message


def test_non_utf8_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / DEFAULT_CONFIG_NAME
    path.write_bytes(b'{"camera01": {"src": "/ring/\xff"}}')
    message = config_error(path)
    assert str(path) in message and "UTF-8" in message


def test_config_argument_defaults_to_the_file_in_the_current_folder() -> None:
    parser = argparse.ArgumentParser()
    add_config_argument(parser)

    assert parser.parse_args([]).config == Path(DEFAULT_CONFIG_NAME)
    assert parser.parse_args(["--config", "/etc/x.json"]).config == Path("/etc/x.json")
    assert "camera_config.json in the current folder" in " ".join(parser.format_help().split())


def test_auth_key_file_is_read_relative_to_the_config_folder(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {"cam1": {"auth_key_file": "keys/auth.key"}, "cam2": {"auth_key_file": None}, "cam3": {}},
    )

    first, second, third = load_config(path).cameras

    assert first.auth_key_file == tmp_path / "keys" / "auth.key"
    assert second.auth_key_file is None and third.auth_key_file is None


@pytest.mark.parametrize("value", [7, "", ["a"], True])
def test_a_wrong_auth_key_file_is_one_clear_error(tmp_path: Path, value: object) -> None:
    message = config_error(write(tmp_path, {"cam1": {"auth_key_file": value}}))
    assert "camera 'cam1', field 'auth_key_file': must be a key file path" in message
