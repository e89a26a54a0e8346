"""`camxfer fleet`'s runner side: progress lines from ansible-runner events, the command line it
builds, finding playbooks, and the ansible-runner traps it must not fall into."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from camxfer.errors import UsageError
from camxfer.fleet.ansible_run import (
    FleetRunError,
    PlaybookRequest,
    PlaybookResult,
    ProgressPrinter,
    find_playbook,
    recap,
    request_from,
    run_playbook,
)

REPO = Path(__file__).resolve().parents[2]


def event(kind: str, **data: object) -> dict:
    return {"event": kind, "event_data": data}


def test_progress_shows_plays_tasks_and_host_results_but_not_skips() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out)
    for item in (
        event("playbook_on_play_start", play="Run the receivers"),
        event("playbook_on_task_start", task="Only skipped"),
        event("runner_on_skipped", host="sto1"),
        event("playbook_on_task_start", task="Write the config"),
        event("runner_on_ok", host="sto1", res={"changed": True}, task_action="template"),
        event("runner_on_ok", host="sto2", res={"changed": False}, task_action="template"),
        event("playbook_on_task_start", task="Report"),
        event(
            "runner_on_ok",
            host="sto1",
            res={"msg": ["camera01: 8/8 frames landed identical"]},
            task_action="ansible.builtin.assert",
        ),
        event("runner_on_failed", host="sto2", res={"msg": "boom", "stderr": "trace"}),
        event("runner_on_unreachable", host="sto3", res={"msg": "ssh: no route"}),
    ):
        assert printer(item) is True
    assert out.getvalue().splitlines() == [
        "PLAY Run the receivers",
        "  TASK Write the config",
        "    sto1: changed",
        "    sto2: ok",
        "  TASK Report",
        "    sto1: ok",
        "      camera01: 8/8 frames landed identical",
        "    sto2: FAILED: boom | trace",
        "    sto3: UNREACHABLE: ssh: no route",
    ]


def test_cmdline_and_recap() -> None:
    request = PlaybookRequest(
        playbook=REPO / "playbooks" / "site.yml",
        project_dir=REPO,
        extra_vars=("frame_id=frame_camera01_000000001.jpg ball_id=b 1", '{"a": 1}'),
        check=True,
        diff=True,
        limit="cam1",
        tags="camxfer_run",
        verbosity=2,
    )
    assert request.cmdline() == (
        "-e 'frame_id=frame_camera01_000000001.jpg ball_id=b 1' -e '{\"a\": 1}' --check --diff "
        "--limit cam1 --tags camxfer_run -vv"
    )
    result = PlaybookResult(
        rc=2,
        status="failed",
        stats={"ok": {"cam1": 3}, "changed": {"cam1": 1}, "failures": {"cam1": 1}},
        hosts=["cam1"],
    )
    assert result.changed == 1
    assert recap(result).splitlines()[-1] == "playbook failed (ansible-playbook exit status 2)"
    assert "ok=3  changed=1  failed=1  unreachable=0  skipped=0" in recap(result)


def test_playbooks_are_found_by_name_and_vars_files_anchored(tmp_path: Path) -> None:
    assert find_playbook("site", REPO) == REPO / "playbooks" / "site.yml"
    assert find_playbook("playbooks/trigger.yml", REPO) == REPO / "playbooks" / "trigger.yml"
    with pytest.raises(UsageError, match="no playbook 'nosuch'"):
        find_playbook("nosuch", tmp_path)
    request = request_from("stop", cwd=REPO, extra_vars=["@vars.json"], inventory="inventory/local")
    assert request.extra_vars == (f"@{REPO}/vars.json",)
    assert request.inventory == REPO / "inventory" / "local"
    with pytest.raises(UsageError, match="inventory nowhere does not exist"):
        request_from("stop", cwd=REPO, inventory="nowhere")


def test_a_run_that_produced_no_stats_is_an_error(tmp_path: Path) -> None:
    """ansible-runner reports a failed start (no ansible-playbook, bad arguments) as stats None
    without raising; that must not pass for a successful run with nothing to do."""
    pytest.importorskip("ansible_runner")
    fake = tmp_path / "ansible-playbook"
    fake.write_text("#!/bin/sh\necho 'ERROR! this ansible-playbook is broken' >&2\nexit 5\n")
    fake.chmod(0o755)
    request = request_from("stop", cwd=REPO)
    with pytest.raises(FleetRunError, match="ansible-playbook did not run"):
        run_playbook(request, out=io.StringIO(), bin_dir=tmp_path)


def test_cli_reports_a_missing_playbook_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "camxfer", "fleet", "nosuch"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("camxfer fleet: error: no playbook 'nosuch'")
