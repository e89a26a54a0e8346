"""The interpreter every Python process of the benchmark runs on: a deployed host's, not a
checkout's.

A development venv holds camxfer as an editable install. Its start-up hook (an
`__editable__*.pth` file) imports pathlib, importlib.util, urllib.parse and more in every
interpreter, before any camxfer code runs: ~20 ms per process on these machines, which a
deployed host never pays (the Ansible role installs a wheel), and which falls inside the
clock of every `camxfer send` and of the Python baselines.

So the harness re-runs itself on a lean venv made from the same Python: the development
venv's site-packages are on its path as plain folders (no .pth file of theirs runs), and
camxfer and bench come from the checkout through PYTHONPATH.
"""

from __future__ import annotations

import os
import site
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LEAN_MARK = "CAMXFER_BENCH_LEAN"  # set in the re-run, so it never re-runs again
TOOLS = ("py-spy",)  # programs the harness finds beside its interpreter


def start_up_hooks(folders: list[str] | None = None) -> list[Path]:
    """The .pth files of these site folders (this interpreter's by default) that run code at
    every start."""
    hooks = []
    for folder in map(Path, site.getsitepackages() if folders is None else folders):
        for pth in sorted(folder.glob("*.pth")):
            lines = pth.read_text(errors="replace").splitlines()
            if any(line.startswith(("import ", "import\t")) for line in lines):
                hooks.append(pth)
    return hooks


def make_lean_venv(target: Path) -> Path:
    """A venv at `target` that sees this interpreter's site-packages without their hooks;
    returns its python."""
    python = target / "bin" / "python"
    if not python.exists():
        venv.EnvBuilder(symlinks=True, with_pip=False, clear=True).create(target)
    paths = [folder for folder in site.getsitepackages() if Path(folder).is_dir()]
    lean_site = Path(
        target, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}", "site-packages"
    )
    (lean_site / "bench-site-packages.pth").write_text("".join(f"{p}\n" for p in paths))
    for tool in TOOLS:
        found = Path(sys.executable).with_name(tool)
        link = target / "bin" / tool
        if found.exists() and not link.exists():
            link.symlink_to(found)
    return python


def rerun_lean(workdir: Path, argv: list[str]) -> None:
    """Replace this process with the same bench command on the lean venv, when this
    interpreter has start-up hooks; returns only when it has none (or already is the re-run)."""
    if os.environ.get(LEAN_MARK) or not start_up_hooks():
        return
    python = make_lean_venv(workdir / "python")
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, LEAN_MARK: "1", "PYTHONPATH": path}
    sys.stdout.flush()
    os.execve(python, [str(python), "-m", "bench.run", *argv], env)
