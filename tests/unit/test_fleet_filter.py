"""The inventory -> camera table filter (plugins/filter/camxfer_fleet.py), on real inventories.

The inventories in inventory/example and inventory/local are loaded with Ansible's own
inventory and variable managers, so the filter sees exactly what a playbook would; the error
cases change one value of that real data. Every refusal must name the host, the camera and the
field, and clashes must never be resolved silently.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ansible")

from ansible.errors import AnsibleFilterError
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.vars.manager import VariableManager

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "camxfer_fleet_filter", REPO / "plugins" / "filter" / "camxfer_fleet.py"
)
assert _spec and _spec.loader
fleet_filter = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fleet_filter)
FILTERS = fleet_filter.FilterModule().filters()
camxfer_fleet = FILTERS["camxfer_fleet"]


def load(inventory: str) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]]]:
    """hostvars and groups of a real inventory folder, as plain data."""
    loader = DataLoader()
    manager = InventoryManager(loader=loader, sources=[str(REPO / "inventory" / inventory)])
    variables = VariableManager(loader=loader, inventory=manager)
    hostvars = {
        host.name: copy.deepcopy(dict(variables.get_vars(host=host)))
        for host in manager.get_hosts()
    }
    return hostvars, manager.get_groups_dict()


@pytest.fixture
def example() -> tuple[dict[str, dict[str, Any]], dict[str, list[str]]]:
    return load("example")


def by_name(cameras: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {camera["name"]: camera for camera in cameras}


def test_example_inventory_gives_the_camera_table(example) -> None:
    hostvars, groups = example
    assert camxfer_fleet(hostvars, groups) == [
        {
            "name": "camera01",
            "camera_host": "cam1",
            "camera_address": "192.0.2.11",
            "storage_host": "sto1",
            "storage_address": "192.0.2.21",
            "port": 50001,
            "src": "/srv/camxfer/ring/camera01",
            "dest_path": "/srv/camxfer/frames",
        },
        {
            "name": "camera02",
            "camera_host": "cam1",
            "camera_address": "192.0.2.11",
            "storage_host": "sto1",
            "storage_address": "192.0.2.21",
            "port": 50002,
            "src": "/srv/camxfer/ring/camera02",
            "dest_path": "/srv/camxfer/frames",
        },
        {
            "name": "camera03",
            "camera_host": "cam2",
            "camera_address": "192.0.2.12",
            "storage_host": "sto1",
            "storage_address": "192.0.2.21",
            "port": 50003,
            "src": "/srv/camxfer/ring/camera03",
            "dest_path": "/srv/camxfer/frames",
        },
        {
            "name": "camera04",
            "camera_host": "cam2",
            "camera_address": "192.0.2.12",
            "storage_host": "sto1",
            "storage_address": "192.0.2.21",
            "port": 50011,
            "src": "/srv/camxfer/ring/camera04",
            "dest_path": "/srv/camxfer/frames-disk2",
        },
    ]


def test_local_inventory_puts_everything_on_loopback() -> None:
    hostvars, groups = load("local")
    cameras = camxfer_fleet(hostvars, groups)
    assert [(c["name"], c["port"]) for c in cameras] == [
        ("camera01", 50101),
        ("camera02", 50102),
        ("camera03", 50103),
    ]
    assert {c["storage_address"] for c in cameras} == {"127.0.0.1"}
    assert {c["camera_host"] for c in cameras} == {"localhost"}
    assert all(c["src"].startswith("/tmp/camxfer-local/ring/") for c in cameras)
    assert {c["dest_path"] for c in cameras} == {"/tmp/camxfer-local/frames"}


def test_each_storage_host_counts_ports_from_its_own_base(example) -> None:
    hostvars, groups = example
    groups["storage_hosts"].append("sto2")
    hostvars["sto2"] = {"ansible_host": "192.0.2.22", "camxfer_receiver_base_port": 51000}
    hostvars["cam2"]["camxfer_cameras"][0]["storage_host"] = "sto2"
    hostvars["cam2"]["camxfer_cameras"].append({"name": "camera05", "storage_host": "sto2"})
    cameras = by_name(camxfer_fleet(hostvars, groups))
    assert (cameras["camera03"]["storage_address"], cameras["camera03"]["port"]) == (
        "192.0.2.22",
        51000,
    )
    assert cameras["camera05"]["port"] == 51001
    assert cameras["camera04"]["port"] == 50011  # explicit stays
    assert cameras["camera02"]["port"] == 50002


def test_same_port_on_different_storage_addresses_is_fine(example) -> None:
    hostvars, groups = example
    groups["storage_hosts"].append("sto2")
    hostvars["sto2"] = {"ansible_host": "192.0.2.22"}
    hostvars["cam2"]["camxfer_cameras"] = [{"name": "camera03", "storage_host": "sto2"}]
    cameras = by_name(camxfer_fleet(hostvars, groups))
    assert cameras["camera01"]["port"] == cameras["camera03"]["port"] == 50001


def test_explicit_port_clashing_with_an_assigned_one_is_refused(example) -> None:
    hostvars, groups = example
    hostvars["cam2"]["camxfer_cameras"][1]["port"] = 50002  # camera02 got 50002 from the base
    with pytest.raises(AnsibleFilterError) as error:
        camxfer_fleet(hostvars, groups)
    message = str(error.value)
    assert "camera camera04" in message and "50002" in message
    assert "already used by camera camera02" in message


def test_assigned_port_clashing_with_an_explicit_one_is_refused(example) -> None:
    hostvars, groups = example
    hostvars["cam1"]["camxfer_cameras"][0]["port"] = 50003  # what camera03 would get
    with pytest.raises(AnsibleFilterError, match=r"camera camera03.*base_port of sto1 \+ 2"):
        camxfer_fleet(hostvars, groups)


def test_receiver_port_clashing_with_a_trigger_port_on_one_address_is_refused() -> None:
    hostvars, groups = load("local")
    hostvars["localhost"]["camxfer_trigger_port"] = 50102
    with pytest.raises(AnsibleFilterError, match=r"camera02.*trigger server of host localhost"):
        camxfer_fleet(hostvars, groups)


def test_metrics_ports_come_from_the_inventory() -> None:
    hostvars = load("local")[0]
    metrics_port = FILTERS["camxfer_metrics_port"]
    assert metrics_port(hostvars, "localhost", "receiver") == 9311
    assert metrics_port(hostvars, "localhost", "trigger") == 9312
    hostvars = load("example")[0]
    assert metrics_port(hostvars, "sto1", "receiver") == 9101
    assert metrics_port(hostvars, "cam1", "trigger") == 9102
    assert metrics_port(hostvars, "cam1", "receiver") == 0  # not a storage host: off
    with pytest.raises(AnsibleFilterError, match="service must be receiver or trigger"):
        metrics_port(hostvars, "cam1", "camera")


@pytest.mark.parametrize(
    ("key", "port", "expected"),
    [
        # The receivers' metrics on a port the base port gives camera02.
        ("camxfer_receiver_metrics_port", 50102, r"camera camera02.*receiver metrics endpoint"),
        # Both endpoints of one host on one port.
        ("camxfer_receiver_metrics_port", 9312, r"receiver_metrics_port: 9312.*trigger metrics"),
        # The trigger server's metrics on the trigger port itself.
        ("camxfer_trigger_metrics_port", 5556, r"camxfer_trigger_port: 5556.*trigger metrics"),
        ("camxfer_trigger_metrics_port", 70000, r"trigger_metrics_port: must be a port number"),
    ],
)
def test_metrics_port_clashes_are_refused(key: str, port: int, expected: str) -> None:
    hostvars, groups = load("local")
    hostvars["localhost"][key] = port
    with pytest.raises(AnsibleFilterError, match=expected):
        camxfer_fleet(hostvars, groups)


def test_metrics_port_clash_across_hosts_on_one_address_only(example) -> None:
    hostvars, groups = example
    hostvars["cam1"]["camxfer_trigger_metrics_port"] = 9101  # sto1's, on another address
    assert len(camxfer_fleet(hostvars, groups)) == 4
    hostvars["cam1"]["camxfer_address"] = "192.0.2.21"  # now the same address as sto1
    with pytest.raises(AnsibleFilterError, match=r"host sto1.*9101 on 192.0.2.21.*host cam1"):
        camxfer_fleet(hostvars, groups)


def test_duplicate_camera_names_are_refused(example) -> None:
    hostvars, groups = example
    hostvars["cam2"]["camxfer_cameras"][0]["name"] = "camera01"
    with pytest.raises(AnsibleFilterError, match=r"host cam2, camera camera01.*used on host cam1"):
        camxfer_fleet(hostvars, groups)


def test_unknown_storage_host_is_refused_naming_the_known_ones(example) -> None:
    hostvars, groups = example
    hostvars["cam1"]["camxfer_cameras"][1]["storage_host"] = "sto9"
    with pytest.raises(AnsibleFilterError) as error:
        camxfer_fleet(hostvars, groups)
    assert "camera camera02, storage_host: 'sto9'" in str(error.value)
    assert "its hosts: sto1" in str(error.value)


def test_storage_host_may_be_left_out_when_there_is_only_one(example) -> None:
    hostvars, groups = example
    del hostvars["cam1"]["camxfer_cameras"][0]["storage_host"]
    assert camxfer_fleet(hostvars, groups)[0]["storage_host"] == "sto1"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"port": 70000}, "port: must be a port number from 1 to 65535"),
        ({"port": "http"}, "port: must be a port number, not 'http'"),
        ({"dest_path": "relative/dir"}, "dest_path: must be an absolute folder path"),
        ({"name": "../escape"}, "name: '../escape' is not a camera name"),
        ({"colour": "red"}, "unknown field(s) colour"),
    ],
)
def test_bad_camera_fields_are_refused_by_name(example, change, expected) -> None:
    hostvars, groups = example
    hostvars["cam1"]["camxfer_cameras"][0].update(change)
    with pytest.raises(AnsibleFilterError) as error:
        camxfer_fleet(hostvars, groups)
    assert expected in str(error.value)
    assert "host cam1" in str(error.value)


def test_cameras_must_be_a_list(example) -> None:
    hostvars, groups = example
    hostvars["cam1"]["camxfer_cameras"] = {"camera01": {"storage_host": "sto1"}}
    with pytest.raises(AnsibleFilterError, match="host cam1: camxfer_cameras must be a list"):
        camxfer_fleet(hostvars, groups)


def test_base_port_running_past_65535_is_refused(example) -> None:
    hostvars, groups = example
    hostvars["sto1"]["camxfer_receiver_base_port"] = 65534
    with pytest.raises(AnsibleFilterError, match=r"camera03, port .*65536"):
        camxfer_fleet(hostvars, groups)


def test_cameras_of_a_host_and_their_config_files(example) -> None:
    hostvars, groups = example
    cameras = camxfer_fleet(hostvars, groups)
    on_cam2 = FILTERS["camxfer_cameras_of"](cameras, "cam2", "camera")
    assert [c["name"] for c in on_cam2] == ["camera03", "camera04"]
    on_sto1 = FILTERS["camxfer_cameras_of"](cameras, "sto1", "storage")
    assert len(on_sto1) == 4
    sender = FILTERS["camxfer_camera_config"](on_cam2, "sender")
    assert sender["camera04"] == {
        "src": "/srv/camxfer/ring/camera04",
        "dest_path": "/srv/camxfer/frames-disk2",
        "host": "192.0.2.21",
        "port": 50011,
    }
    receiver = FILTERS["camxfer_camera_config"](on_sto1, "receiver")
    assert receiver["camera01"] == {
        "dest_path": "/srv/camxfer/frames",
        "host": "192.0.2.21",
        "port": 50001,
    }
    generator = FILTERS["camxfer_camera_config"](on_cam2, "generator")
    assert generator == {
        "camera03": {"src": "/srv/camxfer/ring/camera03"},
        "camera04": {"src": "/srv/camxfer/ring/camera04"},
    }
    with pytest.raises(AnsibleFilterError, match="side must be"):
        FILTERS["camxfer_camera_config"](on_cam2, "both")


def test_frame_number_and_names() -> None:
    assert FILTERS["camxfer_frame_number"]("frame_camera01_000046836.jpg") == 46836
    with pytest.raises(AnsibleFilterError, match="not a frame file name"):
        FILTERS["camxfer_frame_number"]("frame_camera01_46836.png")
    assert FILTERS["camxfer_frame_names"]("camera07", 9, 3) == [
        "frame_camera07_000000009.jpg",
        "frame_camera07_000000010.jpg",
        "frame_camera07_000000011.jpg",
    ]


def test_transfer_report_names_missing_different_and_absent_frames() -> None:
    report = FILTERS["camxfer_transfer_report"]
    source = {"a.jpg": "1" * 64, "b.jpg": "2" * 64, "c.jpg": "3" * 64, "d.jpg": None}
    landed = {"a.jpg": "1" * 64, "b.jpg": "f" * 64, "x.jpg": "9" * 64}
    result = report(landed, source, "camera01")
    assert not result["ok"]
    assert (result["identical"], result["asked"]) == (1, 4)
    assert result["missing"] == ["c.jpg"]
    assert result["different"] == ["b.jpg"]
    assert result["not_on_camera"] == ["d.jpg"]
    assert result["extra"] == ["x.jpg"]
    assert result["summary"] == (
        "camera01: 1/4 frames landed identical; 1 missing (c.jpg); 1 different (b.jpg); "
        "1 not on the camera (d.jpg)"
    )
    whole = report({"a.jpg": "1" * 64}, {"a.jpg": "1" * 64}, "camera02")
    assert whole["ok"] and whole["summary"] == "camera02: 1/1 frames landed identical"
    nothing = report({}, {}, "camera03")
    assert not nothing["ok"] and "no source digests" in nothing["summary"]
