"""`camxfer generate`: real JPEG frames in the right folders, reproducible, and a live mode that
writes like a camera (in pieces, under the final name) into ring-buffer folders.

The command runs as a subprocess on real folders under tmp_path; the live-mode Python API runs
in a thread, as a benchmark would use it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from camxfer.frames import frame_name
from camxfer.tools.generate import FrameMaker, SizeRange, make_pool, plan_image
from camxfer.tools.live_camera import FrameCompletion, LiveSettings, run_live

REPO = Path(__file__).resolve().parents[2]
SMALL = ("--min-mb", "0.05", "--max-mb", "0.1", "--width", "320", "--height", "240")
SMALL_RANGE = SizeRange.from_mib(0.05, 0.1)
FRAME_FILE = re.compile(r"^frame_(?P<camera>.+)_(?P<number>\d{9})\.jpg$")


def command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "camxfer", "generate", *map(str, args)]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def generate(*args: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args),
        cwd=cwd,
        env=env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=100,
    )


def assert_valid_jpeg(path: Path, sizes: SizeRange) -> None:
    size = path.stat().st_size
    assert size in sizes, f"{path.name}: {size} bytes, outside {sizes.describe()}"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        image.load()
        assert image.format == "JPEG"


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def test_batch_writes_valid_sized_frames_per_camera_numbered_from_start(tmp_path: Path) -> None:
    out = tmp_path / "frames"
    flags = ["--cameras", "camA,camB", "--count", "4", "--start", "10", "--seed", "1"]
    result = generate("--out-dir", out, *flags, *SMALL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("generated 8 frames (")
    assert "for 2 cameras" in result.stdout and "seed 1" in result.stdout
    assert listing(out) == ["camA", "camB"]
    for camera in ("camA", "camB"):
        expected = [frame_name(camera, number) for number in range(10, 14)]
        assert listing(out / camera) == expected  # also: no temporary files left behind
        for name in expected:
            assert_valid_jpeg(out / camera / name, SMALL_RANGE)


def test_default_sizes_are_1_to_2_mib_frames_of_1600x1200(tmp_path: Path) -> None:
    result = generate("--out-dir", tmp_path, "--cameras", "camera01", "--count", "3")
    assert result.returncode == 0, result.stderr
    names = listing(tmp_path / "camera01")
    assert names == [frame_name("camera01", number) for number in range(3)]
    for name in names:
        path = tmp_path / "camera01" / name
        assert_valid_jpeg(path, SizeRange.from_mib(1.0, 2.0))
        with Image.open(path) as image:
            assert image.size == (1600, 1200)


def read_all(folder: Path) -> dict[str, bytes]:
    return {
        f"{camera.name}/{frame.name}": frame.read_bytes()
        for camera in sorted(folder.iterdir())
        for frame in sorted(camera.iterdir())
    }


def test_the_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    common = ("--cameras", "camera01,camera02", *SMALL)
    runs = {
        "one": ("--seed", "7", "--count", "6", "--workers", "1"),
        "again": ("--seed", "7", "--count", "6", "--workers", "3"),
        "other": ("--seed", "8", "--count", "6"),
    }
    for folder, args in runs.items():
        result = generate("--out-dir", tmp_path / folder, *common, *args)
        assert result.returncode == 0, result.stderr
    # The same frames made in two runs split by --start are the same bytes too.
    for start, count in (("0", "2"), ("2", "4")):
        split = ("--seed", "7", "--start", start, "--count", count)
        result = generate("--out-dir", tmp_path / "split", *common, *split)
        assert result.returncode == 0, result.stderr

    one = read_all(tmp_path / "one")
    assert len(one) == 12
    assert read_all(tmp_path / "again") == one
    assert read_all(tmp_path / "split") == one
    other = read_all(tmp_path / "other")
    assert other.keys() == one.keys()
    assert all(other[name] != one[name] for name in one)


def write_config(folder: Path, cameras: dict[str, dict[str, str]]) -> Path:
    path = folder / "camera_config.json"
    path.write_text(json.dumps(cameras))
    return path


def test_frames_go_to_each_cameras_src_from_the_config_in_the_current_folder(
    tmp_path: Path,
) -> None:
    write_config(
        tmp_path,
        {
            "camera01": {"src": "ring/one", "dest_path": "/srv/x"},
            "camera02": {"src": str(tmp_path / "ring" / "two")},
            "camera03": {"src": "ring/three"},
        },
    )
    result = generate("--count", "2", *SMALL, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert listing(tmp_path / "ring") == ["one", "three", "two"]
    assert listing(tmp_path / "ring" / "two") == [frame_name("camera02", n) for n in range(2)]

    subset = generate("--count", "1", "--start", "5", "--cameras", "camera03", *SMALL, cwd=tmp_path)
    assert subset.returncode == 0, subset.stderr
    assert listing(tmp_path / "ring" / "three") == [frame_name("camera03", n) for n in (0, 1, 5)]
    assert listing(tmp_path / "ring" / "one") == [frame_name("camera01", n) for n in range(2)]


def test_out_dir_overrides_the_config_folders(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"camera01": {"src": "ring/one"}, "camera02": {}})
    out = tmp_path / "elsewhere"
    result = generate("--config", config, "--out-dir", out, "--count", "1", *SMALL)
    assert result.returncode == 0, result.stderr
    assert listing(out) == ["camera01", "camera02"]
    assert not (tmp_path / "ring").exists()


def unwritable_folder(tmp_path: Path) -> Path:
    # A regular file where a folder should be: refused even when the tests run as root.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    return blocker / "frames"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("{out}", "--min-mb", "2", "--max-mb", "1"), "must be larger than --min-mb (2)"),
        (("{out}", "--count", "-1"), "--count must not be negative"),
        (("{out}", "--live", "--fps", "0"), "--fps must be more than 0"),
        (("{out}", "--live", "--fps", "-5"), "--fps must be more than 0"),
        (("--config", "{config}", "--cameras", "camera09"), "has no camera 'camera09'"),
        (("{out}", "--cameras", "../escape"), "camera name '../escape' is not allowed"),
        (("--out-dir", "{unwritable}"), "cannot write frames into"),
        (("{out}", "--ring", "5"), "--ring only applies with --live"),
        (("{out}", "--min-mb", "300", "--max-mb", "400"), "cannot make JPEGs"),
        ((), "no folder to write to"),  # no --out-dir, no camera_config.json
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_code_2(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    config = write_config(tmp_path, {"camera01": {"src": "ring/one"}})
    values = {"config": str(config), "unwritable": str(unwritable_folder(tmp_path))}
    args = tuple(
        f"--out-dir={tmp_path / 'out'}" if arg == "{out}" else arg.format(**values) for arg in args
    )
    cwd = tmp_path / "empty"  # no camera_config.json here
    cwd.mkdir()
    result = generate(*args, *SMALL[4:], cwd=cwd)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("camxfer generate: error: ")
    assert message in lines[0]
    assert result.stdout == ""
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.jpg"))


def test_a_frame_that_cannot_be_written_fails_the_run_and_leaves_no_temporary_file(
    tmp_path: Path,
) -> None:
    # A folder already holds the name of frame 2, so renaming the finished frame onto it fails.
    (tmp_path / "cam" / frame_name("cam", 2) / "inside").mkdir(parents=True)
    result = generate("--out-dir", tmp_path, "--cameras", "cam", "--count", "4", *SMALL)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"camxfer generate: error: writing {tmp_path / 'cam' / frame_name('cam', 2)} failed: "
        "Is a directory."
    ]
    assert not [name for name in listing(tmp_path / "cam") if name.startswith(".")]


def test_help_explains_every_option_with_its_default_and_examples() -> None:
    result = generate("--help")
    assert result.returncode == 0
    options = [
        "--cameras",
        "--out-dir",
        "--config",
        "--count",
        "--start",
        "--min-mb",
        "--max-mb",
        "--width",
        "--height",
        "--seed",
        "--workers",
        "--live",
        "--fps",
        "--ring",
        "--duration",
        "--log-completions",
    ]
    # Each option's entry runs from its name to the next line that starts an option.
    entries = dict(re.findall(r"\n  (--[a-z-]+)(.*?)(?=\n  -|\n\n)", result.stdout, re.DOTALL))
    assert sorted(entries) == sorted(options)
    for option, text in entries.items():
        assert "(default:" in " ".join(text.split()), option
    assert "examples:" in result.stdout


def poll_sizes(folder: Path, stop: threading.Event) -> tuple[dict[str, list[int]], int]:
    """Stat every frame in `folder` until `stop`; returns sizes seen per name, and the most
    frame files seen at once."""
    seen: dict[str, list[int]] = {}
    most = 0
    while not stop.is_set():
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            entries = []
        most = max(most, sum(1 for entry in entries if FRAME_FILE.match(entry.name)))
        for entry in entries:
            try:
                size = entry.stat().st_size
            except FileNotFoundError:
                continue  # deleted by the ring between listing and stat
            sizes = seen.setdefault(entry.name, [])
            if not sizes or sizes[-1] != size:
                sizes.append(size)
        time.sleep(0.0005)
    return seen, most


def test_live_frames_grow_under_their_final_names_and_the_ring_keeps_the_newest(
    tmp_path: Path,
) -> None:
    out = tmp_path / "ring"
    log = tmp_path / "closed.tsv"
    stop = threading.Event()
    observed: list[tuple[dict[str, list[int]], int]] = []
    reader = threading.Thread(target=lambda: observed.append(poll_sizes(out / "camera01", stop)))
    reader.start()
    try:
        flags = "--live --cameras camera01,camera02 --fps 20 --ring 5 --duration 1.5 --seed 3"
        result = generate("--out-dir", out, "--log-completions", log, *flags.split(), *SMALL)
    finally:
        stop.set()
        reader.join()
    assert result.returncode == 0, result.stderr
    seen, most = observed[0]

    growing = [name for name, sizes in seen.items() if len(sizes) >= 2]
    assert growing, "no frame was ever seen partially written under its final name"
    assert all(sizes == sorted(sizes) for sizes in seen.values())  # files only ever grow
    assert most <= 6  # the ring's 5 plus the one being written
    assert len(seen) > 6  # and frames were deleted as new ones came

    for camera in ("camera01", "camera02"):
        names = listing(out / camera)
        assert 1 <= len(names) <= 5
        numbers = [int(FRAME_FILE.match(name)["number"]) for name in names]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # the newest run
        for name in names:
            assert_valid_jpeg(out / camera / name, SMALL_RANGE)  # stopped frames were finished

    lines = log.read_text().splitlines()
    written = int(re.search(r"wrote (\d+) frames", result.stdout)[1])
    assert len(lines) == written > 10
    for line in lines:
        name, closed = line.split("\t")
        assert FRAME_FILE.match(name)
        assert abs(float(closed) - time.time()) < 600


def test_live_count_bounds_the_run_and_numbers_continue_from_start(tmp_path: Path) -> None:
    flags = ["--live", "--cameras", "cam", "--fps", "50", "--count", "5", "--start", "100"]
    result = generate("--out-dir", tmp_path, *flags, *SMALL)
    assert result.returncode == 0, result.stderr
    assert "wrote 5 frames" in result.stdout
    assert listing(tmp_path / "cam") == [frame_name("cam", n) for n in range(100, 105)]


def test_live_mode_runs_until_sigint_and_finishes_the_frame_in_progress(tmp_path: Path) -> None:
    out = tmp_path / "ring"
    process = subprocess.Popen(
        command("--live", "--out-dir", out, "--cameras", "cam", "--fps", "10", *SMALL),
        env=env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (out / "cam" / frame_name("cam", 2)).exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no frames appeared"
            time.sleep(0.01)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert "live: 1 camera wrote" in stdout
    for path in (out / "cam").iterdir():
        assert_valid_jpeg(path, SMALL_RANGE)


def test_the_python_api_reports_each_frame_when_it_is_closed(tmp_path: Path) -> None:
    plan = plan_image(320, 240, SMALL_RANGE, seed=4)
    pool = make_pool(FrameMaker("cam", plan, SMALL_RANGE), 0, 4)
    closed: list[FrameCompletion] = []
    stop = threading.Event()
    settings = LiveSettings(fps=40, start=20)
    summaries = []

    def live() -> None:
        folders, pools = {"cam": tmp_path / "cam"}, {"cam": pool}
        summaries.append(run_live(folders, pools, settings, stop, on_complete=closed.append))

    thread = threading.Thread(target=live)
    thread.start()
    deadline = time.monotonic() + 30
    while len(closed) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive()

    summary = summaries[0]
    assert summary.written == len(closed) >= 6
    assert [c.name for c in closed] == [frame_name("cam", 20 + i) for i in range(len(closed))]
    for completion in closed:
        assert completion.path.read_bytes() == pool[(frame_number(completion.name) - 20) % 4]
        assert completion.size == completion.path.stat().st_size
    times = [completion.closed_monotonic for completion in closed]
    assert times == sorted(times)
    assert summary.bytes == sum(len(pool[i % 4]) for i in range(len(closed)))
    assert all(len(data) in SMALL_RANGE for data in pool)


def frame_number(name: str) -> int:
    return int(FRAME_FILE.match(name)["number"])
