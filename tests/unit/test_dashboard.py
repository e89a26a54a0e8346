"""docs/grafana-camxfer.json only asks for metrics camxfer exports, with labels they carry."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from tests.conftest import REPO

SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


def exported() -> dict[str, set[str]]:
    """{sample name: label names} of a fresh Recorder, read in its own process (metrics
    register in the process-wide registry once)."""
    code = (
        "import json; from camxfer.metrics import Recorder; from prometheus_client import REGISTRY;"
        "Recorder(); print(json.dumps({m.name: m.type for m in REGISTRY.collect()"
        " if m.name.startswith('camxfer_')}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def test_every_dashboard_query_names_an_exported_metric() -> None:
    dashboard = json.loads((REPO / "docs" / "grafana-camxfer.json").read_text())
    families = exported()
    queried = set()
    for panel in dashboard["panels"]:
        assert panel["title"] and panel["targets"]
        for target in panel["targets"]:
            for name in re.findall(r"camxfer_[a-z_]+", target["expr"]):
                family = name
                for suffix in SUFFIXES:
                    family = family.removesuffix(suffix)
                assert family in families, f"{panel['title']}: {name} is not exported"
                queried.add(family)
    # Every metric is on the dashboard somewhere.
    assert queried == set(families)


def test_observability_doc_lists_every_metric() -> None:
    text = (REPO / "docs" / "observability.md").read_text()
    for family, kind in exported().items():
        shown = family + ("_total" if kind == "counter" else "")
        assert f"`{shown}`" in text, f"docs/observability.md does not list {shown}"
