"""Run one of the fleet's playbooks through ansible-runner and report progress per host and task.

Responsible for: turning a `PlaybookRequest` into an ansible-runner run (a fresh private data
folder every time, ansible-playbook found on PATH, the project's ansible.cfg), printing a line
per play, task and host result as events arrive, a recap at the end, and handing back the
playbook's exit status. The only module that imports ansible_runner, and only when a playbook
is run, so hosts (which have no Ansible) can import everything else.
Not responsible for: what the playbooks do (roles/ and playbooks/ in the repository).

ansible-runner traps handled here (shared/RECIPES.md §5): it reuses env/cmdline, env/extravars
and env/envvars left in a private data folder by an earlier run, so every run gets a new one;
without ansible-playbook on PATH it reports rc 127 and stats None without raising, so a run
without stats is an error.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from camxfer.errors import CamxferError, ExitCode, UsageError

PLAYBOOK_SUFFIXES = (".yml", ".yaml")
MESSAGE_LIMIT = 600  # characters of a failure message shown per host


class FleetRunError(CamxferError):
    """ansible-playbook could not be run at all (not installed, bad inventory, ...)."""

    exit_code = ExitCode.USAGE


@dataclass(frozen=True)
class PlaybookRequest:
    """One ansible-playbook run: which playbook, against which inventory, with which options."""

    playbook: Path
    project_dir: Path
    inventory: Path | None = None
    extra_vars: tuple[str, ...] = ()  # as given to -e: "k=v k2=v2", "@file.yml" or JSON
    check: bool = False
    diff: bool = False
    limit: str | None = None
    tags: str | None = None
    verbosity: int = 0

    def cmdline(self) -> str:
        args: list[str] = []
        for value in self.extra_vars:
            args += ["-e", value]
        if self.check:
            args.append("--check")
        if self.diff:
            args.append("--diff")
        if self.limit:
            args += ["--limit", self.limit]
        if self.tags:
            args += ["--tags", self.tags]
        if self.verbosity:
            args.append("-" + "v" * self.verbosity)
        return shlex.join(args)


@dataclass
class PlaybookResult:
    """How a run ended: ansible-playbook's exit status, runner's status and per-host counts."""

    rc: int
    status: str
    stats: dict[str, dict[str, int]]
    hosts: list[str] = field(default_factory=list)

    def count(self, key: str, host: str | None = None) -> int:
        per_host = self.stats.get(key, {})
        if host is not None:
            return int(per_host.get(host, 0))
        return sum(int(n) for n in per_host.values())

    @property
    def changed(self) -> int:
        return self.count("changed")


def find_playbook(name: str | Path, cwd: Path) -> Path:
    """The playbook file for NAME: a path as given, else playbooks/NAME[.yml] under `cwd`."""
    path = Path(name)
    candidates = [path if path.is_absolute() else cwd / path]
    if not path.is_absolute() and len(path.parts) == 1:
        for base in (cwd / "playbooks", Path(__file__).resolve().parents[2] / "playbooks"):
            candidates.append(base / path)
            candidates.extend(base / f"{path}{suffix}" for suffix in PLAYBOOK_SUFFIXES)
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise UsageError(
        f"no playbook {str(name)!r}: looked for {', '.join(str(c) for c in candidates)}."
    )


def find_project_dir(playbook: Path) -> Path:
    """The folder holding ansible.cfg above the playbook (the repository root)."""
    for folder in playbook.resolve().parents:
        if (folder / "ansible.cfg").is_file():
            return folder
    raise UsageError(
        f"no ansible.cfg in any folder above {playbook}; run playbooks from a camxfer checkout."
    )


SHOWN_MESSAGES = ("debug", "assert")  # task actions whose msg is the point of the task


class ProgressPrinter:
    """Prints ansible-runner events as they come: play, task, one line per host result.

    Skipped hosts are counted in the recap, not printed; a task only appears once some host
    ran it. The messages of debug and assert tasks (summaries) are printed under the host.
    """

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._task_shown: str | None = None
        self._pending_task: str | None = None

    def __call__(self, event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data", {}) or {}
        if kind == "playbook_on_play_start":
            self._print(f"PLAY {data.get('play') or data.get('name', '')}")
            self._task_shown = None
        elif kind in ("playbook_on_task_start", "playbook_on_handler_task_start"):
            self._pending_task = data.get("task") or data.get("name") or "?"
        elif kind in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable"):
            self._host_result(kind, data)
        return True  # keep every event in the runner's artifacts

    def _host_result(self, kind: str, data: dict[str, Any]) -> None:
        if self._pending_task is not None and self._pending_task != self._task_shown:
            self._print(f"  TASK {self._pending_task}")
            self._task_shown = self._pending_task
        host = data.get("host", "?")
        result = data.get("res", {}) or {}
        if kind == "runner_on_ok":
            word = "changed" if result.get("changed") else "ok"
        elif kind == "runner_on_unreachable":
            word = "UNREACHABLE"
        else:
            word = "failed (ignored)" if data.get("ignore_errors") else "FAILED"
        line = f"    {host}: {word}"
        if word in ("FAILED", "UNREACHABLE"):
            line += f": {failure_message(result)}"
        self._print(line)
        action = str(data.get("task_action", "")).rsplit(".", 1)[-1]
        message = result.get("msg")
        shown = kind == "runner_on_ok" and action in SHOWN_MESSAGES
        if shown and message and message != "All assertions passed":
            self._print(_indent(message, "      "))

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)


def _indent(value: Any, prefix: str) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        text = "\n".join(value)
    else:
        text = yaml.safe_dump(value, default_flow_style=False, sort_keys=False, width=100)
    return "\n".join(prefix + line for line in text.rstrip().splitlines())


def failure_message(result: dict[str, Any]) -> str:
    """The most useful part of a failed task's result, shortened."""
    parts = []
    message = result.get("msg")
    if message:
        parts.append(str(message))
    stderr = str(result.get("stderr") or "").strip()
    if stderr and stderr not in parts:
        parts.append(stderr)
    if not parts:
        parts.append(str(result.get("reason") or "no message"))
    text = " | ".join(parts)
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 3] + "..."


def recap(result: PlaybookResult) -> str:
    columns = (
        ("ok", "ok"),
        ("changed", "changed"),
        ("failures", "failed"),
        ("dark", "unreachable"),
        ("skipped", "skipped"),
    )
    lines = ["RECAP"]
    for host in result.hosts:
        counts = "  ".join(f"{label}={result.count(key, host)}" for key, label in columns)
        lines.append(f"  {host:<24} {counts}")
    verdict = (
        "succeeded" if result.rc == 0 else f"failed (ansible-playbook exit status {result.rc})"
    )
    lines.append(f"playbook {verdict}")
    return "\n".join(lines)


def run_playbook(
    request: PlaybookRequest,
    *,
    out: TextIO = sys.stdout,
    bin_dir: Path | None = None,
    keep_artifacts: bool = False,
    env: Mapping[str, str] | None = None,
) -> PlaybookResult:
    """Run the playbook, printing progress to `out`; `bin_dir` must hold ansible-playbook
    (default: the folder of this Python, i.e. the venv's bin/); `env` adds environment
    variables for ansible-playbook (e.g. ANSIBLE_SSH_CONTROL_PATH_DIR)."""
    try:
        import ansible_runner
    except ImportError:
        raise FleetRunError(
            "ansible-runner is not installed in this Python; install the fleet extra: "
            "pip install 'camxfer[fleet]'."
        ) from None
    bin_dir = bin_dir or Path(sys.executable).parent
    if not (bin_dir / "ansible-playbook").exists() and shutil.which("ansible-playbook") is None:
        raise FleetRunError(
            f"ansible-playbook is not in {bin_dir} nor on PATH; install the fleet extra: "
            "pip install 'camxfer[fleet]'."
        )
    envvars = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(request.project_dir / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    private = Path(tempfile.mkdtemp(prefix="camxfer-run-"))
    try:
        runner = ansible_runner.run(
            private_data_dir=str(private),
            project_dir=str(request.project_dir),
            playbook=str(request.playbook),
            inventory=str(request.inventory) if request.inventory else None,
            cmdline=request.cmdline() or None,
            envvars=envvars,
            event_handler=ProgressPrinter(out),
            quiet=True,
        )
        stats = runner.stats
        if stats is None:
            output = _tail(runner.stdout.read() if runner.stdout else "")
            raise FleetRunError(
                f"ansible-playbook did not run (runner status {runner.status}, "
                f"exit status {runner.rc}):\n{output}"
            )
        hosts = sorted({host for per_host in stats.values() for host in per_host})
        result = PlaybookResult(rc=int(runner.rc), status=str(runner.status), stats=stats)
        result.hosts = hosts
        print(recap(result), file=out, flush=True)
        return result
    finally:
        if keep_artifacts:
            print(f"runner artifacts kept in {private}", file=out)
        else:
            shutil.rmtree(private, ignore_errors=True)


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:]) or "(no output)"


def parse_inventory(value: str | None, cwd: Path) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    path = path if path.is_absolute() else cwd / path
    if not path.exists():
        raise UsageError(f"inventory {value} does not exist (looked at {path}).")
    return path.resolve()


def _absolute_file_vars(value: str, cwd: Path) -> str:
    """`-e @vars.yml` is read relative to ansible-playbook's folder (the project): anchor it."""
    if value.startswith("@") and not Path(value[1:]).is_absolute():
        return "@" + str(cwd / value[1:])
    return value


def request_from(
    playbook: str,
    *,
    cwd: Path,
    inventory: str | None = None,
    extra_vars: Sequence[str] = (),
    check: bool = False,
    diff: bool = False,
    limit: str | None = None,
    tags: str | None = None,
    verbosity: int = 0,
) -> PlaybookRequest:
    path = find_playbook(playbook, cwd)
    return PlaybookRequest(
        playbook=path,
        project_dir=find_project_dir(path),
        inventory=parse_inventory(inventory, cwd),
        extra_vars=tuple(_absolute_file_vars(value, cwd) for value in extra_vars),
        check=check,
        diff=diff,
        limit=limit,
        tags=tags,
        verbosity=verbosity,
    )
