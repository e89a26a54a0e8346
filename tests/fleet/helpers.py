"""Helpers of the fleet tests: run a playbook for real, find ports, drive the netns lab.

Playbooks run through `camxfer.fleet.ansible_run` (ansible-runner), as `camxfer fleet` runs
them. The lab is tests/fleet/netns_lab.sh (shared/RECIPES.md §1) with this suite's own names.
The fixtures using these live in conftest.py beside this file.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from camxfer.fleet.ansible_run import PlaybookResult, request_from, run_playbook

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LAB_SCRIPT = REPO / "tests" / "fleet" / "netns_lab.sh"
LAB = Path("/tmp/camxfer-test-lab")
LAB_NET = "10.67.0"
LAB_HOSTS = {"cam1": 11, "cam2": 12, "sto1": 21, "mcam": 31, "msto": 41}
LAB_LOCK = Path("/tmp/camxfer-test-lab.lock")


@dataclass
class Played:
    """One playbook run: its result (rc, per-host stats) and the progress it printed."""

    result: PlaybookResult
    output: str

    @property
    def rc(self) -> int:
        return self.result.rc

    def changed(self) -> dict[str, int]:
        return {host: self.result.count("changed", host) for host in self.result.hosts}

    def explain(self) -> str:
        return f"ansible-playbook exit status {self.rc}; output:\n{self.output[-6000:]}"


def play(
    playbook: str,
    inventory: Path,
    extra_vars: Mapping[str, Any] | None = None,
    *,
    extra: tuple[str, ...] = (),
    check: bool = False,
    env: Mapping[str, str] | None = None,
) -> Played:
    """Run playbooks/<playbook>.yml against `inventory`; `extra_vars` go in as one JSON -e."""
    args = ([json.dumps(dict(extra_vars))] if extra_vars else []) + list(extra)
    request = request_from(
        str(REPO / "playbooks" / f"{playbook}.yml"),
        cwd=REPO,
        inventory=str(inventory),
        extra_vars=args,
        check=check,
    )
    out = io.StringIO()
    result = run_playbook(request, out=out, bin_dir=BIN, env=env)
    return Played(result, out.getvalue())


# --- ports and processes ----------------------------------------------------------------------
def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port_run(count: int, start: int = 52000, stop: int = 60000) -> int:
    """The first of `count` consecutive free loopback ports (receivers take base + index)."""
    base = start + (os.getpid() * 7) % (stop - start - 100)  # parallel sessions start apart
    for first in range(base, stop - count):
        if all(port_is_free(first + offset) for offset in range(count)):
            return first
    raise RuntimeError("no run of free ports found")


def listening(host: str, port: int, timeout: float = 1.0) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def kill_pid_files(run_dir: Path) -> None:
    """Stop what the fallback service manager left running, by the pids it recorded."""
    for pid_file in run_dir.glob("*.pid"):
        with contextlib.suppress(ValueError, OSError):
            pid = int(pid_file.read_text().strip())
            if b"camxfer" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.killpg(pid, signal.SIGTERM)
                for _ in range(50):
                    if not Path(f"/proc/{pid}").exists():
                        break
                    time.sleep(0.1)
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)


# --- the netns lab ----------------------------------------------------------------------------
def lab_env() -> dict[str, str]:
    """Ansible's ssh ControlPersist sockets go into the lab, where `down` closes them."""
    return {"ANSIBLE_SSH_CONTROL_PATH_DIR": str(LAB / "cp")}


def lab_address(host: str) -> str:
    return f"{LAB_NET}.{LAB_HOSTS[host]}"


def lab_private(host: str, path: str) -> Path:
    """Where a path of a lab host's private folders (/opt/camxfer, /srv/camxfer, ...) is."""
    return LAB / "hosts" / host / "fs" / path.lstrip("/")


def lab(action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(LAB_SCRIPT), action], capture_output=True, text=True, check=False
    )


def lab_missing() -> str | None:
    if os.geteuid() != 0:
        return "the netns lab needs root"
    for tool in ("ip", "unshare", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"the netns lab needs {tool}"
    if not Path("/usr/sbin/sshd").exists():
        return "the netns lab needs openssh-server (/usr/sbin/sshd)"
    return None


def write_lab_inventory() -> Path:
    """The lab's inventory: hosts.yml of the example's shape, the example's group/host vars."""
    inventory = LAB / "inventory"
    inventory.mkdir(parents=True, exist_ok=True)
    connection = {
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(LAB / "id_ed25519"),
        "ansible_ssh_common_args": f"-o UserKnownHostsFile={LAB / 'known_hosts'} -o BatchMode=yes",
        "ansible_python_interpreter": "/usr/bin/python3",
    }
    hosts = {
        "all": {
            "vars": connection,
            "children": {
                "camera_hosts": {
                    "hosts": {h: {"ansible_host": lab_address(h)} for h in ("cam1", "cam2")}
                },
                "storage_hosts": {"hosts": {"sto1": {"ansible_host": lab_address("sto1")}}},
            },
        }
    }
    (inventory / "hosts.yml").write_text(json.dumps(hosts, indent=2) + "\n")
    for name in ("group_vars", "host_vars"):
        link = inventory / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(REPO / "inventory" / "example" / name)
    return inventory
