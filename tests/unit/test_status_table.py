"""playbooks/status.yml's one table (plugins/filter/camxfer_status.py), fed with what
`camxfer status --json` prints (built from the same dataclasses, so the two cannot drift)."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest

from camxfer.fleet.status import CameraStatus, Endpoint, FleetStatus, ServiceStatus
from tests.conftest import REPO

_spec = importlib.util.spec_from_file_location(
    "camxfer_status_filter", REPO / "plugins" / "filter" / "camxfer_status.py"
)
assert _spec and _spec.loader
status_filter = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(status_filter)
table = status_filter.FilterModule().filters()["camxfer_status_table"]


def host_status(*, receiver_up: bool) -> dict:
    status = FleetStatus(
        run_dir="/var/lib/camxfer",
        services=[
            ServiceStatus(
                name="camxfer-receiver",
                running=receiver_up,
                pid=4242 if receiver_up else None,
                kind="receivers",
                command=["camxfer", "receivers"],
                log_file="/var/log/camxfer/camxfer-receiver.log",
                endpoints=[
                    Endpoint("receiver camera01", "10.0.0.5", 50001, receiver_up),
                    Endpoint("metrics", "10.0.0.5", 9101, receiver_up),
                ],
            )
        ],
        senders=[],
        cameras=[
            CameraStatus(
                name="camera01",
                side="storage",
                src=None,
                frames=None,
                newest=None,
                dest="/srv/camxfer/frames",
                last_landed=46900,
                backlog=None,
                receiver="10.0.0.5:50001",
            )
        ],
        events=[
            {
                "event": "ball_001-46836",
                "state": "done",
                "totals": {"asked": 10, "landed": 10, "missing": 0, "failed": 0, "bytes": 2e6},
            }
        ],
        events_error=None,
    )
    return json.loads(json.dumps(status.to_json()))


def test_one_row_per_service_camera_and_event_under_each_host() -> None:
    lines = table({"sto1": host_status(receiver_up=True), "sto2": host_status(receiver_up=False)})
    assert lines[0].split() == ["HOST", "WHAT", "STATE", "DETAIL"]
    rows = [line.split(None, 1) for line in lines[1:]]
    assert [host for host, _ in rows] == ["sto1"] * 3 + ["sto2"] * 3  # sorted by host
    assert re.search(r"^sto1 +camxfer-receiver +up \(pid 4242\) ", lines[1])
    assert "receiver camera01 :50001 answers, metrics :9101 answers" in lines[1]
    assert re.search(r"^sto2 +camxfer-receiver +DOWN ", lines[4])
    assert "no answer" in lines[4]
    assert "last landed 46900" in lines[2]
    assert "10/10 frames, 2.0 MB, 0 missing or failed" in lines[3]
    # Columns line up: every row's DETAIL starts where the header's does.
    column = lines[0].index("DETAIL")
    assert all(line[column - 2 : column] == "  " and line[column] != " " for line in lines)


def test_a_host_without_services_says_so_and_bad_input_is_refused() -> None:
    empty = FleetStatus("/var/lib/camxfer", [], [], [], [], None).to_json()
    assert "no camxfer services in /var/lib/camxfer" in table({"cam1": empty})[1]
    with pytest.raises(status_filter.AnsibleFilterError, match="mapping of host to status"):
        table(["not", "a", "mapping"])
