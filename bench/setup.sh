#!/usr/bin/env bash
# bench/setup.sh — install what the benchmark harness needs beyond `.ci/setup`:
# the peers and ceilings (iperf3, rsync, netcat-openbsd, iproute2 for the netns link) from apt,
# and matplotlib (scaling plots) plus py-spy (profiling) into the project's venv.
# Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for spec in iperf3:iperf3 rsync:rsync nc:netcat-openbsd ip:iproute2; do
  cmd=${spec%%:*}
  command -v "$cmd" >/dev/null 2>&1 || need+=("${spec##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "== apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The tar|nc peer relies on OpenBSD netcat's -N (shut the socket down at end of input).
if ! nc -h 2>&1 | grep -q -- '-N'; then
  echo "bench/setup.sh: 'nc' is not netcat-openbsd (no -N flag); install netcat-openbsd" >&2
  exit 1
fi

[ -x .venv/bin/python ] || { echo "no .venv: run 'bash .ci/setup' first" >&2; exit 1; }
if ! .venv/bin/python -c "import matplotlib" 2>/dev/null; then
  echo "== pip install matplotlib"
  .venv/bin/python -m pip install -q matplotlib
fi
if [ ! -x .venv/bin/py-spy ]; then   # py-spy is a binary, not an importable module
  echo "== pip install py-spy"
  .venv/bin/python -m pip install -q py-spy
fi
echo "bench setup: ok"
