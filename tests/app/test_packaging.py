"""The installed package holds every module: ``pip install .`` (the README's quick start) gets
each sub-package of agent/, hal/ and tools/, the board files and the meter maps.

setuptools' ``build_py`` (what a wheel is made from) runs on pyproject.toml's configuration in
a copy of the checkout's files (no egg-info left by an editable install, which would hide a
missing package), into a temporary directory: no network, no wheel package needed."""

import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _source_files() -> set:
    found = set()
    for top in ("agent", "hal", "boards", "tools"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, top)):
            dirnames[:] = [d for d in dirnames if d not in ("node_modules", "__pycache__")]
            for name in filenames:
                if name.endswith(".py") and os.path.exists(os.path.join(dirpath, "__init__.py")):
                    found.add(os.path.relpath(os.path.join(dirpath, name), ROOT))
    return found


def test_the_package_holds_every_module_and_data_file(tmp_path):
    src, out = tmp_path / "src", tmp_path / "build"
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout.split("\n")
    for rel in filter(None, listed):
        if os.path.isfile(os.path.join(ROOT, rel)):
            os.makedirs(os.path.dirname(src / rel), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, rel), src / rel)
    build = "import setuptools, sys; sys.argv = ['setup.py', '-q', 'build_py', '-d', sys.argv[1]]; setuptools.setup()"
    subprocess.run([sys.executable, "-c", build, str(out)], cwd=src, check=True, capture_output=True, timeout=300)
    names = {os.path.relpath(os.path.join(d, f), out).replace(os.sep, "/") for d, _dirs, files in os.walk(out)
             for f in files}
    assert _source_files() - names == set()
    assert {"agent/core/station.py", "agent/ocpp16/session.py", "hal/runtime/clock.py", "tools/demo.py"} <= names
    assert "boards/sim.toml" in names and "hal/meters/sdm630.toml" in names
