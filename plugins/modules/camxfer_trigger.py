#!/usr/bin/python
"""Ansible module: send a ZMQ trigger to a camxfer trigger server and wait for the event."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: camxfer_trigger
short_description: Trigger a camxfer transfer event and wait for it to end
description:
  - "Sends C({\"frame_id\": ..., \"ball_id\": ...}) to a camxfer trigger server
    (C(camxfer senders --zmq)) on a camera host, then polls the event's status until it is no
    longer running, and returns the final status with a per-camera summary."
  - Fails with that summary when the event did not end C(done) (a frame missing or failed),
    unless O(fail_on_incomplete=false).
  - Can also only report one event's status (O(event)) or list the events the server knows
    (O(list_events)).
  - Runs on the camera host and needs the camxfer package importable by the module's Python,
    so set C(ansible_python_interpreter) to the camxfer venv's python for the task.
options:
  host:
    description: Address of the trigger server.
    type: str
    default: 127.0.0.1
  port:
    description: ZMQ port of the trigger server.
    type: int
    default: 5555
  frame_id:
    description:
      - First frame of the event, as a frame file name, e.g. C(frame_camera01_000046836.jpg).
        Every camera sends its own frames from that number on.
      - Required with O(ball_id) unless O(event) or O(list_events) is given.
    type: str
  ball_id:
    description: Event name; frames land in C(<dest_path>/<ball_id>/<camera>/).
    type: str
  wait:
    description: Wait for the event to end. With V(false), return right after the server accepted.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for the event to end before failing.
    type: float
    default: 330
  reply_timeout:
    description: Seconds to wait for each reply of the server before retrying (3 tries).
    type: float
    default: 5
  fail_on_incomplete:
    description: Fail when the event ends in any state other than C(done).
    type: bool
    default: true
  event:
    description: Only report the status of this event id (e.g. C(ball_001-46836)); sends nothing.
    type: str
  list_events:
    description: Only list the events the server knows and their states; sends nothing.
    type: bool
    default: false
  curve_secret_file:
    description:
      - This client's CURVE secret key file (C(NAME.key_secret) from
        C(camxfer keygen --curve DIR NAME), mode 0600) on the host the module runs on.
      - Needed when the trigger server runs with C(--zmq-curve-secret); its C(NAME.key) must be
        in the server's C(--zmq-curve-clients) folder. Requires O(curve_server_public_file).
    type: path
  curve_server_public_file:
    description:
      - The trigger server's CURVE public key file (its C(NAME.key)). A server holding another
        key gets nothing from this client, which then fails with "no reply".
    type: path
notes:
  - Check mode is supported; a trigger is not sent in check mode (the result says it would
    be), while O(event) and O(list_events) only read and run as usual.
requirements:
  - camxfer (and so pyzmq) importable by the module's Python interpreter.
author:
  - camxfer developers
"""

EXAMPLES = r"""
- name: Trigger ball_001 from frame 46836 and wait for every camera
  camxfer_trigger:
    host: 10.0.0.11
    port: 5555
    frame_id: frame_camera01_000046836.jpg
    ball_id: ball_001
    timeout: 600
    curve_secret_file: /etc/camxfer/curve/trigger-client.key_secret
    curve_server_public_file: /etc/camxfer/curve/trigger-server.key
  vars:
    ansible_python_interpreter: /opt/camxfer/venv/bin/python
  register: camxfer_trigger_result

- name: List the events a trigger server knows
  camxfer_trigger:
    host: 10.0.0.11
    list_events: true
  vars:
    ansible_python_interpreter: /opt/camxfer/venv/bin/python
"""

RETURN = r"""
event:
  description: Event id, C(<ball_id>-<frame number>).
  returned: when a trigger was sent or O(event) given
  type: str
  sample: ball_001-46836
state:
  description: C(running), C(done) or C(failed) (C(accepted) with O(wait=false)).
  returned: when a trigger was sent or O(event) given
  type: str
  sample: done
cameras:
  description: Per camera, frames asked, landed, missing, failed, bytes and problems.
  returned: when the event's status was read
  type: dict
  sample: {"camera01": {"asked": 100, "landed": 100, "missing": 0, "failed": 0,
           "bytes": 52428800, "problems": []}}
totals:
  description: The per-camera counts added up.
  returned: when the event's status was read
  type: dict
summary:
  description: One line per camera, readable.
  returned: when the event's status was read
  type: str
events:
  description: Event ids and their states.
  returned: with O(list_events)
  type: dict
  sample: {"ball_001-46836": "done"}
"""

import traceback  # noqa: E402

from ansible.module_utils.basic import AnsibleModule, missing_required_lib  # noqa: E402

try:
    from camxfer.errors import CamxferError
    from camxfer.fleet.curve import CurveClientKeys
    from camxfer.fleet.trigger_client import TriggerClient
except ImportError:
    CAMXFER_IMPORT_ERROR = traceback.format_exc()
else:
    CAMXFER_IMPORT_ERROR = None


def summarize(status):
    lines = [f"event {status.get('event')}: {status.get('state')}"]
    for name, camera in sorted((status.get("cameras") or {}).items()):
        line = (
            f"{name}: {camera.get('landed', 0)}/{camera.get('asked', 0)} landed, "
            f"{camera.get('missing', 0)} missing, {camera.get('failed', 0)} failed"
        )
        problems = camera.get("problems") or []
        if problems:
            shown = "; ".join(f"{p.get('name')}: {p.get('reason')}" for p in problems[:3])
            line += f" ({shown}{'; ...' if len(problems) > 3 else ''})"
        lines.append(line)
    return "\n".join(lines)


def run_module():
    module = AnsibleModule(
        argument_spec={
            "host": {"type": "str", "default": "127.0.0.1"},
            "port": {"type": "int", "default": 5555},
            "frame_id": {"type": "str"},
            "ball_id": {"type": "str"},
            "wait": {"type": "bool", "default": True},
            "timeout": {"type": "float", "default": 330.0},
            "reply_timeout": {"type": "float", "default": 5.0},
            "fail_on_incomplete": {"type": "bool", "default": True},
            "event": {"type": "str"},
            "list_events": {"type": "bool", "default": False},
            "curve_secret_file": {"type": "path"},
            "curve_server_public_file": {"type": "path"},
        },
        required_together=[
            ("frame_id", "ball_id"),
            ("curve_secret_file", "curve_server_public_file"),
        ],
        mutually_exclusive=[("frame_id", "event", "list_events")],
        required_one_of=[("frame_id", "event", "list_events")],
        supports_check_mode=True,
    )
    if CAMXFER_IMPORT_ERROR is not None:
        module.fail_json(
            msg=missing_required_lib(
                "camxfer", reason="(set ansible_python_interpreter to the camxfer venv's python)"
            ),
            exception=CAMXFER_IMPORT_ERROR,
        )
    params = module.params
    endpoint = f"{params['host']}:{params['port']}"
    curve = None
    if params["curve_secret_file"]:
        curve = CurveClientKeys(params["curve_secret_file"], params["curve_server_public_file"])
    try:
        client = TriggerClient(
            params["host"], params["port"], timeout=params["reply_timeout"], curve=curve
        )
        if params["list_events"]:
            reply = client.request({"list": True})
            if not reply.get("ok"):
                module.fail_json(msg=f"{endpoint} refused to list events: {reply.get('error')}")
            module.exit_json(changed=False, events=reply.get("events", {}))
        if params["event"]:
            status = client.status(params["event"])
            finish(module, status, changed=False, endpoint=endpoint)
        if module.check_mode:
            module.exit_json(
                changed=True,
                msg=f"would trigger ball {params['ball_id']} from {params['frame_id']} "
                f"on {endpoint}",
            )
        reply = client.trigger(params["frame_id"], params["ball_id"])
        if not reply.get("ok"):
            module.fail_json(
                msg=f"the trigger server at {endpoint} refused the trigger: {reply.get('error')}"
            )
        event = reply["event"]
        if not params["wait"]:
            module.exit_json(changed=True, event=event, state="accepted")
        status = client.wait(event, timeout=params["timeout"])
        finish(module, status, changed=True, endpoint=endpoint)
    except CamxferError as exc:
        module.fail_json(msg=f"trigger server {endpoint}: {exc}")


def finish(module, status, *, changed, endpoint):
    if not status.get("ok"):
        module.fail_json(msg=f"{endpoint}: {status.get('error', 'request refused')}")
    summary = summarize(status)
    result = {
        "changed": changed,
        "event": status.get("event"),
        "state": status.get("state"),
        "cameras": status.get("cameras", {}),
        "totals": status.get("totals", {}),
        "summary": summary,
    }
    if status.get("state") != "done" and module.params["fail_on_incomplete"]:
        module.fail_json(msg=f"transfer not complete on {endpoint}:\n{summary}", **result)
    module.exit_json(**result)


def main():
    run_module()


if __name__ == "__main__":
    main()
