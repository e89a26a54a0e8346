"""`camxfer clear`: empties what it should, keeps the folder, and refuses everything dangerous.

Most tests run the real command line as a subprocess on real folders under tmp_path. Tests that
point at real system folders (/, /etc) never pass --yes, so even a broken refusal could not
delete anything there; they assert the refusal message, which is printed before any question.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from camxfer.cli import main
from camxfer.errors import ExitCode
from camxfer.tools.clear import protected_reason

REPO = Path(__file__).resolve().parents[2]


def clear_cli(
    *args: str | Path,
    answer: str | None = None,
    cwd: Path = REPO,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m camxfer clear ARGS`; `answer` is piped to stdin, else stdin is at EOF."""
    return subprocess.run(
        [sys.executable, "-m", "camxfer", "clear", *map(str, args)],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        input=answer,
        stdin=subprocess.DEVNULL if answer is None else None,
        capture_output=True,
        text=True,
        timeout=60,
    )


def make_frames(dest: Path, balls: list[str], cameras: list[str], count: int = 3) -> list[Path]:
    """Lay out <dest>/<ball>/<camera>/frame_<camera>_<n>.jpg; returns the frame paths."""
    frames = []
    for ball in balls:
        for camera in cameras:
            folder = dest / ball / camera
            folder.mkdir(parents=True, exist_ok=True)
            for number in range(count):
                frame = folder / f"frame_{camera}_{number:09d}.jpg"
                frame.write_bytes(f"{ball}/{camera}/{number}".encode())
                frames.append(frame)
    return frames


def write_config(folder: Path, cameras: dict[str, dict[str, str]]) -> Path:
    path = folder / "camera_config.json"
    path.write_text(json.dumps(cameras))
    return path


def tree(folder: Path) -> dict[str, bytes | str]:
    """Every entry below `folder`: file contents, link targets, folders as 'dir'."""
    found: dict[str, bytes | str] = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root, name)
            key = str(path.relative_to(folder))
            if path.is_symlink():
                found[key] = "-> " + os.readlink(path)
            elif path.is_dir():
                found[key] = "dir"
            else:
                found[key] = path.read_bytes()
    return found


def test_dest_is_emptied_but_kept(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    make_frames(dest, ["ball_001", "ball_002"], ["camera01", "camera02"], count=2)
    (dest / "loose.txt").write_text("x")
    (dest / ".hidden").write_text("x")

    result = clear_cli(dest, "--yes")

    assert result.returncode == ExitCode.OK, result.stderr
    assert dest.is_dir()
    assert list(dest.iterdir()) == []
    # 8 frames + 2 loose files; 2 ball folders + 4 camera folders.
    assert "10 files, 6 folders, 0 symlinks" in result.stdout
    assert str(dest) in result.stdout


def test_camera_removes_only_that_cameras_folders_across_ball_ids(tmp_path: Path) -> None:
    dest = tmp_path / "data"
    make_frames(dest, ["ball_001", "ball_002", "ball_003"], ["camera01", "camera02"])
    (dest / "ball_002" / "camera01" / "sub").mkdir()
    make_frames(tmp_path / "other", ["ball_001"], ["camera01"])
    config = write_config(
        tmp_path,
        {"camera01": {"dest_path": "data"}, "camera02": {"dest_path": str(dest) + "/"}},
    )
    kept_before = tree(dest / "ball_001" / "camera02")

    result = clear_cli("--camera", "camera01", "--config", config, "-y")

    assert result.returncode == ExitCode.OK, result.stderr
    for ball in ("ball_001", "ball_002", "ball_003"):
        assert (dest / ball).is_dir()
        assert not (dest / ball / "camera01").exists()
        assert len(list((dest / ball / "camera02").iterdir())) == 3
    assert tree(dest / "ball_001" / "camera02") == kept_before
    assert len(list((tmp_path / "other" / "ball_001" / "camera01").iterdir())) == 3
    assert "9 files, 4 folders" in result.stdout


def test_camera_reads_camera_config_json_from_the_current_folder(tmp_path: Path) -> None:
    dest = tmp_path / "data"
    make_frames(dest, ["ball_001"], ["camera01", "camera02"])
    write_config(tmp_path, {"camera01": {"dest_path": "data"}, "camera02": {"dest_path": "data"}})

    result = clear_cli("--camera", "camera02", "--yes", cwd=tmp_path)

    assert result.returncode == ExitCode.OK, result.stderr
    assert not (dest / "ball_001" / "camera02").exists()
    assert len(list((dest / "ball_001" / "camera01").iterdir())) == 3


def test_camera_with_nothing_to_remove_says_so(tmp_path: Path) -> None:
    dest = tmp_path / "data"
    make_frames(dest, ["ball_001"], ["camera01"])
    config = write_config(
        tmp_path, {"camera01": {"dest_path": "data"}, "camera09": {"dest_path": "data"}}
    )

    result = clear_cli("--camera", "camera09", "--config", config)

    assert result.returncode == ExitCode.OK, result.stderr
    assert "Nothing to remove" in result.stdout
    assert len(list((dest / "ball_001" / "camera01").iterdir())) == 3


def test_all_empties_each_distinct_dest_path_once(tmp_path: Path) -> None:
    disk1, disk2, untouched = tmp_path / "disk1", tmp_path / "disk2", tmp_path / "untouched"
    make_frames(disk1, ["ball_001"], ["camera01", "camera03"])
    make_frames(disk2, ["ball_001", "ball_002"], ["camera02"])
    make_frames(untouched, ["ball_001"], ["camera01"])
    config = write_config(
        tmp_path,
        {
            "camera01": {"dest_path": "disk1"},
            "camera02": {"dest_path": str(disk2)},
            "camera03": {"dest_path": "./disk1/"},  # the same folder, spelt differently
        },
    )

    result = clear_cli("--all", "--config", config, "--yes")

    assert result.returncode == ExitCode.OK, result.stderr
    assert disk1.is_dir() and list(disk1.iterdir()) == []
    assert disk2.is_dir() and list(disk2.iterdir()) == []
    assert len(tree(untouched)) == 2 + 3
    assert result.stdout.count("Removed everything inside") == 2


def test_all_with_a_dest_path_inside_another_empties_the_outer_one(tmp_path: Path) -> None:
    outer = tmp_path / "data"
    make_frames(outer / "inner", ["ball_001"], ["camera02"])
    make_frames(outer, ["ball_001"], ["camera01"])
    config = write_config(
        tmp_path, {"camera01": {"dest_path": "data"}, "camera02": {"dest_path": "data/inner"}}
    )

    result = clear_cli("--all", "--config", config, "--yes")

    assert result.returncode == ExitCode.OK, result.stderr
    assert outer.is_dir() and list(outer.iterdir()) == []
    assert result.stdout.count("Removed") == 1


def test_all_refuses_before_deleting_anything_if_one_dest_path_is_missing(
    tmp_path: Path,
) -> None:
    disk1 = tmp_path / "disk1"
    frames = make_frames(disk1, ["ball_001"], ["camera01"])
    config = write_config(
        tmp_path, {"camera01": {"dest_path": "disk1"}, "camera02": {"dest_path": "gone"}}
    )

    result = clear_cli("--all", "--config", config, "--yes")

    assert result.returncode == ExitCode.USAGE
    assert "gone" in result.stderr and "does not exist" in result.stderr
    assert all(frame.exists() for frame in frames)


def test_symlinks_inside_are_removed_as_links_and_their_targets_kept(tmp_path: Path) -> None:
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    make_frames(dest, ["ball_001"], ["camera01"])
    make_frames(outside, ["keep"], ["camera01"])
    outside_before = tree(outside)
    (dest / "to_outside_folder").symlink_to(outside, target_is_directory=True)
    (dest / "ball_001" / "camera01" / "to_outside_file").symlink_to(
        outside / "keep" / "camera01" / "frame_camera01_000000000.jpg"
    )
    (dest / "ball_001" / "dangling").symlink_to(tmp_path / "nowhere")

    result = clear_cli(dest, "--yes")

    assert result.returncode == ExitCode.OK, result.stderr
    assert dest.is_dir() and list(dest.iterdir()) == []
    assert tree(outside) == outside_before
    assert "3 files, 2 folders, 3 symlinks" in result.stdout


def test_camera_does_not_follow_a_symlinked_ball_folder(tmp_path: Path) -> None:
    dest, outside = tmp_path / "data", tmp_path / "outside"
    make_frames(dest, ["ball_001"], ["camera01"])
    make_frames(outside, ["ball_009"], ["camera01"])
    (dest / "ball_009").symlink_to(outside / "ball_009", target_is_directory=True)
    config = write_config(tmp_path, {"camera01": {"dest_path": "data"}})

    result = clear_cli("--camera", "camera01", "--config", config, "--yes")

    assert result.returncode == ExitCode.OK, result.stderr
    assert not (dest / "ball_001" / "camera01").exists()
    assert len(list((outside / "ball_009" / "camera01").iterdir())) == 3
    assert (dest / "ball_009").is_symlink()


def test_without_yes_and_stdin_at_eof_nothing_is_deleted(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    make_frames(dest, ["ball_001"], ["camera01"])
    before = tree(dest)

    result = clear_cli(dest)

    assert result.returncode == ExitCode.USAGE
    assert "nothing was deleted" in result.stderr and "--yes" in result.stderr
    assert f"Will remove everything inside {dest}" in result.stderr
    assert "3 files, 2 folders" in result.stderr
    assert tree(dest) == before


def test_without_yes_and_stdin_closed_nothing_is_deleted(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    make_frames(dest, ["ball_001"], ["camera01"])
    before = tree(dest)

    # `0<&-` starts python with file descriptor 0 closed: sys.stdin is None.
    result = subprocess.run(
        ["sh", "-c", 'exec "$0" -m camxfer clear "$1" 0<&-', sys.executable, str(dest)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == ExitCode.USAGE
    assert "nothing was deleted" in result.stderr
    assert tree(dest) == before


def test_answering_y_deletes(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    make_frames(dest, ["ball_001"], ["camera01"])

    result = clear_cli(dest, answer="y\n")

    assert result.returncode == ExitCode.OK, result.stderr
    assert "Remove them? [y/N]" in result.stderr
    assert dest.is_dir() and list(dest.iterdir()) == []


def test_answering_anything_else_keeps_everything(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    make_frames(dest, ["ball_001"], ["camera01"])
    before = tree(dest)

    result = clear_cli(dest, answer="no\n")

    assert result.returncode == ExitCode.FAILED
    assert "nothing was deleted" in result.stderr
    assert tree(dest) == before


@pytest.mark.parametrize(
    ("dest", "reason"),
    [
        ("/", "it is the root folder"),
        ("/etc", "it is the system folder /etc"),
        ("/usr/../etc/", "it is the system folder /etc"),
        ("/var", "it is the system folder /var"),
    ],
)
def test_system_folders_are_refused(dest: str, reason: str) -> None:
    before = sorted(os.listdir(dest))

    result = clear_cli(dest)  # no --yes: a broken refusal would still only ask

    assert result.returncode == ExitCode.USAGE
    assert f"Refusing to clear {dest.rstrip('/') or '/'}: {reason}." in result.stderr
    assert "Will remove" not in result.stderr
    assert sorted(os.listdir(dest)) == before


def test_a_path_leading_into_a_system_folder_through_a_symlink_is_refused(
    tmp_path: Path,
) -> None:
    (tmp_path / "root").symlink_to("/", target_is_directory=True)
    before = sorted(os.listdir("/etc"))

    result = clear_cli(tmp_path / "root" / "etc")

    assert result.returncode == ExitCode.USAGE
    assert "it is the system folder /etc" in result.stderr
    assert "Will remove" not in result.stderr
    assert sorted(os.listdir("/etc")) == before


def test_home_folder_and_its_parent_are_refused(tmp_path: Path) -> None:
    home = tmp_path / "users" / "operator"
    make_frames(home, ["ball_001"], ["camera01"])
    before = tree(tmp_path)

    at_home = clear_cli(home, "--yes", env={"HOME": str(home)})
    above_home = clear_cli(home.parent, "--yes", env={"HOME": str(home)})

    assert at_home.returncode == ExitCode.USAGE
    assert "it is your home folder" in at_home.stderr
    assert above_home.returncode == ExitCode.USAGE
    assert "it holds your home folder" in above_home.stderr
    assert tree(tmp_path) == before


def test_a_file_is_refused(tmp_path: Path) -> None:
    frame = tmp_path / "frame_camera01_000000001.jpg"
    frame.write_bytes(b"jpeg")

    result = clear_cli(frame, "--yes")

    assert result.returncode == ExitCode.USAGE
    assert "it is not a folder" in result.stderr
    assert frame.read_bytes() == b"jpeg"


def test_a_missing_path_is_refused(tmp_path: Path) -> None:
    result = clear_cli(tmp_path / "missing", "--yes")

    assert result.returncode == ExitCode.USAGE
    assert "it does not exist" in result.stderr
    assert not (tmp_path / "missing").exists()


def test_a_dest_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    make_frames(real, ["ball_001"], ["camera01"])
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    before = tree(real)

    for spelling in (str(link), str(link) + "/"):
        result = clear_cli(spelling, "--yes")
        assert result.returncode == ExitCode.USAGE
        assert "it is a symlink" in result.stderr
    assert tree(real) == before
    assert link.is_symlink()


def test_a_config_dest_path_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    make_frames(real, ["ball_001"], ["camera01"])
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    config = write_config(tmp_path, {"camera01": {"dest_path": "link"}})
    before = tree(real)

    result = clear_cli("--all", "--config", config, "--yes")

    assert result.returncode == ExitCode.USAGE
    assert "it is a symlink" in result.stderr
    assert tree(real) == before


def test_nothing_to_clear_is_a_usage_error() -> None:
    result = clear_cli("--yes")
    assert result.returncode == ExitCode.USAGE
    assert "DEST, --camera NAME or --all" in result.stderr


def test_dest_and_all_together_are_rejected(tmp_path: Path) -> None:
    make_frames(tmp_path / "dest", ["ball_001"], ["camera01"])

    result = clear_cli(tmp_path / "dest", "--all", "--yes")

    assert result.returncode == ExitCode.USAGE
    assert "not allowed with" in result.stderr
    assert len(tree(tmp_path / "dest")) == 2 + 3


def test_unknown_camera_is_one_line_naming_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "data"
    make_frames(dest, ["ball_001"], ["camera01"])
    config = write_config(tmp_path, {"camera01": {"dest_path": "data"}})

    code = main(["clear", "--camera", "camera07", "--config", str(config), "--yes"])

    err = capsys.readouterr().err
    assert code == ExitCode.USAGE
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "camera07" in err and "camera01" in err
    assert len(tree(dest)) == 2 + 3


def test_bad_config_is_one_line_in_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "data"
    make_frames(dest, ["ball_001"], ["camera01"])
    config = write_config(tmp_path, {"camera01": {"dest_path": "data", "port": True}})

    code = main(["clear", "--all", "--config", str(config), "--yes"])

    err = capsys.readouterr().err
    assert code == ExitCode.USAGE
    assert err.startswith("camxfer clear: error: ") and err.count("\n") == 1
    assert "'camera01'" in err and "'port'" in err
    assert len(tree(dest)) == 2 + 3


def test_in_process_clear_with_yes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "dest"
    make_frames(dest, ["ball_001", "ball_002"], ["camera01"], count=4)

    code = main(["clear", str(dest), "--yes"])

    assert code == ExitCode.OK
    assert dest.is_dir() and list(dest.iterdir()) == []
    assert "8 files, 4 folders, 0 symlinks" in capsys.readouterr().out


def test_help_explains_options_defaults_and_examples() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "camxfer", "clear", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    for words in ("--camera NAME", "--all", "--config FILE", "--yes", "default:", "examples:"):
        assert words in result.stdout


@pytest.mark.parametrize(
    ("path", "refused"),
    [
        ("/", True),
        ("/usr", True),
        ("/usr/local", True),
        ("/var/lib", True),
        ("/home", True),
        ("/home/operator", True),
        ("/home/operator/frames", False),
        ("/var/lib/camxfer", False),
        ("/srv/camxfer/data", False),
        ("/mnt/bt3-disk-01/data_transfer_test", False),
        ("/etcetera", False),
    ],
)
def test_protected_reason(path: str, refused: bool) -> None:
    reason = protected_reason(PurePosixPath(path), PurePosixPath("/home/operator"))
    assert (reason is not None) == refused
