"""Load and validate camera_config.json, the camera description every fleet tool reads.

Responsible for: reading the file, checking every field with a one-sentence error that names
the file, the camera and the field, filling in defaults (receiver host, port 50001 + position,
pattern) and resolving relative folders against the file's own folder.
Not responsible for: whether the folders exist or the ports are free; the tool that uses them
finds that out when it acts.

The seed system's format stays valid:
    {"camera04": {"src": "/mnt/ring/camera04", "dest_path": "/mnt/disk1/data/"}, ...}
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from camxfer.errors import ConfigError

DEFAULT_CONFIG_NAME = "camera_config.json"
DEFAULT_HOST = "127.0.0.1"
FIRST_PORT = 50001  # the seed's receivers took 50001, 50002, ... in file order
DEFAULT_PATTERN = "*.jpg"
MAX_CONNS = 256

CAMERA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
ALLOWED_KEYS = (
    "src",
    "dest_path",
    "host",
    "port",
    "pattern",
    "max_files",
    "conns",
    "auth_key_file",
)


@dataclass(frozen=True)
class CameraConfig:
    """One camera: where its frames are written, where they go, and which receiver takes them."""

    name: str
    src: Path | None
    dest_path: Path | None
    host: str
    port: int
    pattern: str
    max_files: int | None
    conns: int | None
    # The shared key this camera's sender and receiver authenticate with (docs/security.md).
    auth_key_file: Path | None = None


@dataclass(frozen=True)
class FleetConfig:
    """Every camera of one camera_config.json, in file order."""

    path: Path
    cameras: tuple[CameraConfig, ...]

    def camera(self, name: str) -> CameraConfig:
        for camera in self.cameras:
            if camera.name == name:
                return camera
        known = ", ".join(camera.name for camera in self.cameras)
        raise ConfigError(f"{self.path} has no camera {name!r}; its cameras are: {known}.")

    def select(self, names: list[str] | None) -> tuple[CameraConfig, ...]:
        """The named cameras (in the order given), or every camera when `names` is empty."""
        return tuple(self.camera(name) for name in names) if names else self.cameras


def add_camera_argument(parser: argparse.ArgumentParser) -> None:
    """Add `--camera NAME` (repeatable) to a command that runs something per camera."""
    parser.add_argument(
        "--camera",
        action="append",
        metavar="NAME",
        help="only this camera (repeat for several; default: every camera)",
    )


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """Add `--config FILE` to a command that reads camera_config.json."""
    parser.add_argument(
        "--config",
        type=Path,
        default=Path(DEFAULT_CONFIG_NAME),
        metavar="FILE",
        help=(
            "camera description file, JSON like "
            '{"camera04": {"src": "/ring/camera04", "dest_path": "/data/"}}; '
            "relative folders in it are taken from the file's own folder "
            f"(default: ./{DEFAULT_CONFIG_NAME} in the current folder)"
        ),
    )


def load_config(
    path: Path | str, *, need_src: bool = False, need_dest: bool = False
) -> FleetConfig:
    """Read and check `path`; `need_src`/`need_dest` make those fields required for every camera."""
    path = Path(path).absolute()
    raw = _parse(path, _read(path))
    if not isinstance(raw, _JsonObject):  # every JSON object is one (_object_hook)
        raise ConfigError(
            f"{path}: the top level must be a JSON object mapping camera names to settings, "
            f"not {_json_type(raw)}."
        )
    if raw.duplicates:
        raise ConfigError(f"{path}: camera {raw.duplicates[0]!r} is defined more than once.")
    if not raw:
        raise ConfigError(f"{path} defines no cameras; add one like {_EXAMPLE}.")

    cameras = []
    port_owner: dict[tuple[str, int], str] = {}
    for index, (name, entry) in enumerate(raw.items()):
        camera = _camera(path, name, entry, index)
        where = f"{path}: camera {name!r}"
        if need_src and camera.src is None:
            raise ConfigError(f"{where}, field 'src': missing, and this command needs the folder.")
        if need_dest and camera.dest_path is None:
            raise ConfigError(
                f"{where}, field 'dest_path': missing, and this command needs the folder."
            )
        key = (camera.host.lower(), camera.port)
        if key in port_owner:
            how = "" if "port" in entry else f" (the default for camera number {index + 1})"
            raise ConfigError(
                f"{where}, field 'port': {camera.port}{how} on host {camera.host!r} "
                f"is already used by camera {port_owner[key]!r}."
            )
        port_owner[key] = name
        cameras.append(camera)
    return FleetConfig(path=path, cameras=tuple(cameras))


_EXAMPLE = '{"camera01": {"src": "/ring/camera01", "dest_path": "/data/"}}'


class _JsonObject(dict[str, Any]):
    """A decoded JSON object that remembers keys given twice (json keeps only the last)."""

    duplicates: list[str]


def _object_hook(pairs: list[tuple[str, Any]]) -> _JsonObject:
    obj = _JsonObject()
    obj.duplicates = []
    for key, value in pairs:
        if key in obj:
            obj.duplicates.append(key)
        obj[key] = value
    return obj


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"Config file {path} does not exist.") from None
    except IsADirectoryError:
        raise ConfigError(f"Config file {path} is a folder, not a file.") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"Config file {path} is not UTF-8 text (bad byte at offset {exc.start})."
        ) from None
    except OSError as exc:
        raise ConfigError(f"Config file {path} cannot be read: {exc.strerror}.") from None


def _parse(path: Path, text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_object_hook)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}."
        ) from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid JSON, nested too deeply.") from None


def _camera(path: Path, name: str, entry: Any, index: int) -> CameraConfig:
    if not CAMERA_NAME.fullmatch(name):
        raise ConfigError(
            f"{path}: camera name {name!r} is not allowed; use 1 to 64 letters, digits, "
            "'_' or '-', starting with a letter or digit."
        )
    if not isinstance(entry, _JsonObject):
        raise ConfigError(
            f"{path}: camera {name!r} must be a JSON object of settings, not {_json_type(entry)}."
        )
    if entry.duplicates:
        raise ConfigError(
            f"{path}: camera {name!r}, field {entry.duplicates[0]!r}: given more than once."
        )
    for key in entry:
        if key not in ALLOWED_KEYS:
            raise ConfigError(
                f"{path}: camera {name!r}, field {key!r}: unknown; "
                f"allowed fields are {', '.join(ALLOWED_KEYS)}."
            )

    def field(key: str, check: Any, default: Any) -> Any:
        if key not in entry:
            return default
        value = entry[key]
        problem = check(value)
        if problem:
            raise ConfigError(
                f"{path}: camera {name!r}, field {key!r}: must be {problem}, not {_show(value)}."
            )
        return value

    src = field("src", _check_folder, None)
    dest_path = field("dest_path", _check_folder, None)
    return CameraConfig(
        name=name,
        src=_resolve(path, src),
        dest_path=_resolve(path, dest_path),
        host=field("host", _check_host, DEFAULT_HOST),
        port=field("port", _check_port, FIRST_PORT + index),
        pattern=field("pattern", _check_pattern, DEFAULT_PATTERN),
        max_files=field("max_files", _check_max_files, None),
        conns=field("conns", _check_conns, None),
        auth_key_file=_resolve(path, field("auth_key_file", _check_key_file, None)),
    )


# Each check returns None when the value is fine, else what the value must be.
# bool is a subclass of int in Python, so `true` would pass a plain isinstance(int) check.


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_folder(value: Any) -> str | None:
    if value is None:
        return None  # explicit null: the same as leaving the field out
    if isinstance(value, str) and value and "\0" not in value:
        return None
    return "a folder path as a non-empty string"


def _check_key_file(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value and "\0" not in value):
        return None
    return "a key file path as a non-empty string (or null for no key)"


def _check_host(value: Any) -> str | None:
    if isinstance(value, str) and value and not any(c.isspace() or c == "\0" for c in value):
        return None
    return "a host name or IP address as a string without spaces"


def _check_port(value: Any) -> str | None:
    return None if _is_int(value) and 1 <= value <= 65535 else "an integer from 1 to 65535"


def _check_pattern(value: Any) -> str | None:
    if isinstance(value, str) and value and "/" not in value and "\0" not in value:
        return None
    return "a file-name pattern like '*.jpg' (a non-empty string without '/')"


def _check_max_files(value: Any) -> str | None:
    if value is None or (_is_int(value) and value >= 0):
        return None
    return "an integer of 0 or more (or null for no limit)"


def _check_conns(value: Any) -> str | None:
    if value is None or (_is_int(value) and 1 <= value <= MAX_CONNS):
        return None
    return f"an integer from 1 to {MAX_CONNS} (or null for the default)"


def _resolve(config_path: Path, folder: str | None) -> Path | None:
    """A folder from the file, relative ones taken from the config file's folder.

    Symlinks are deliberately not resolved: tools such as `clear` must see the path as written
    to refuse a destination that is a symlink.
    """
    if folder is None:
        return None
    return config_path.parent / Path(folder).expanduser()


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if type(value) in names:
        return f"{names[type(value)]} ({_show(value)})"
    return f"a number ({_show(value)})"


def _show(value: Any, limit: int = 40) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
