"""The agent wheel and the dependency wheels carried on the card.

First boot has no internet in a street cabinet, so the card must carry every
wheel the agent needs, built for the gateway's Python and CPU. This module
builds the agent wheel from the repository and checks, before anything is
written, that the wheelhouse closes the dependency tree for the target.
"""

from __future__ import annotations

import email.parser
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from .errors import FlashError

WHEEL_NAME = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-(?P<py>[^-]+)-(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl$")
REPO_ROOT = Path(__file__).resolve().parents[2]
DOWNLOAD_HINT = (
    "build it on any machine with:  pip download --only-binary=:all: --implementation cp "
    "--python-version {py} --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64 "
    "--platform linux_aarch64 -d WHEELHOUSE AGENT.whl  (see docs/flashing.md)"
)


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def build_agent_wheel(out_dir: Path, repo: Path = REPO_ROOT) -> Path:
    """`pip wheel --no-deps` of the repository; offline first, with build isolation as fallback."""
    out_dir.mkdir(parents=True, exist_ok=True)
    base = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--disable-pip-version-check", "-w", str(out_dir), str(repo)]
    result = subprocess.run(base[:4] + ["--no-build-isolation"] + base[4:], capture_output=True, text=True)
    if result.returncode != 0:
        result = subprocess.run(base, capture_output=True, text=True)
    built = sorted(out_dir.glob("edge_agent-*.whl"))
    if result.returncode != 0 or not built:
        raise FlashError(
            f"building the agent wheel from {repo} failed:\n{result.stderr.strip()[-1500:]}",
            "build it yourself with `pip wheel --no-deps -w dist .` and pass --agent-wheel",
        )
    return built[-1]


def wheel_metadata(path: Path) -> email.message.Message:
    try:
        with zipfile.ZipFile(path) as archive:
            meta = next((n for n in archive.namelist() if n.endswith(".dist-info/METADATA")), None)
            if meta is None:
                raise FlashError(f"{path.name} has no METADATA; it is not a wheel", "rebuild the wheelhouse")
            return email.parser.Parser().parsestr(archive.read(meta).decode("utf-8", "replace"))
    except zipfile.BadZipFile as exc:
        raise FlashError(f"{path} is not a valid wheel ({exc})", "rebuild the wheelhouse") from exc


class TargetPython:
    """The interpreter on the gateway: for tag and marker checks."""

    def __init__(self, version: str, machine: str = "aarch64") -> None:
        self.version = version
        self.machine = machine
        major, minor = version.split(".")[:2]
        self.cp = f"cp{major}{minor}"
        self.minor = int(minor)

    def accepts(self, filename: str) -> bool:
        match = WHEEL_NAME.match(filename)
        if not match:
            return False
        pys, abis, plats = (match.group(k).split(".") for k in ("py", "abi", "plat"))
        py_ok = any(p in ("py3", "py2.py3", self.cp, f"py3{self.minor}") for p in pys) or any(
            p.startswith("cp3") and "abi3" in abis and int(p[3:]) <= self.minor for p in pys
        )
        abi_ok = any(a in ("none", "abi3", self.cp) for a in abis)
        plat_ok = any(p == "any" or p.endswith("_" + self.machine) for p in plats)
        return py_ok and abi_ok and plat_ok

    def marker_env(self) -> dict[str, str]:
        return {
            "python_version": self.version,
            "python_full_version": self.version + ".0",
            "os_name": "posix",
            "sys_platform": "linux",
            "platform_system": "Linux",
            "platform_machine": self.machine,
            "platform_python_implementation": "CPython",
            "implementation_name": "cpython",
            "implementation_version": self.version + ".0",
            "platform_release": "",
            "platform_version": "",
            "extra": "",
        }


def _requirements(meta: email.message.Message, target: TargetPython, extras: set[str]) -> list[str]:
    names = []
    for req in meta.get_all("Requires-Dist") or []:
        spec, _, marker = req.partition(";")
        name = normalise(re.split(r"[\s\[<>=!~(;]", spec.strip(), maxsplit=1)[0])
        if marker.strip():
            try:
                from packaging.markers import Marker
            except ImportError:  # without packaging, extras-only deps are skipped, the rest kept
                if "extra" in marker:
                    continue
            else:
                env = target.marker_env()
                if not any(Marker(marker).evaluate({**env, "extra": e}) for e in (extras or {""})):
                    continue
        names.append(name)
    return names


def check_wheelhouse(agent_wheel: Path, wheelhouse: Path | None, target: TargetPython, extras: set[str] | None = None) -> list[Path]:
    """Wheels to carry (agent first); FlashError naming what first boot would miss."""
    if wheelhouse is None:
        raise FlashError(
            "no --wheelhouse given: first boot has no internet, so the agent's dependency wheels must be on the card", DOWNLOAD_HINT.format(py=target.version)
        )
    if not wheelhouse.is_dir():
        raise FlashError(f"wheelhouse {wheelhouse} is not a directory", DOWNLOAD_HINT.format(py=target.version))
    available: dict[str, Path] = {}
    foreign: list[str] = []
    for wheel in sorted(wheelhouse.glob("*.whl")):
        match = WHEEL_NAME.match(wheel.name)
        if not match or wheel.name == agent_wheel.name:
            continue
        if target.accepts(wheel.name):
            available.setdefault(normalise(match.group("name")), wheel)
        else:
            foreign.append(wheel.name)
    needed: list[Path] = []
    missing: list[str] = []
    queue = [(agent_wheel, set(extras or ()))]
    seen: set[str] = set()
    while queue:
        wheel, wanted_extras = queue.pop()
        for name in _requirements(wheel_metadata(wheel), target, wanted_extras):
            if name in seen:
                continue
            seen.add(name)
            if name in available:
                needed.append(available[name])
                queue.append((available[name], set()))
            else:
                missing.append(name)
    if missing:
        detail = f" ({len(foreign)} wheels there are for another Python or CPU: {', '.join(foreign[:4])})" if foreign else ""
        raise FlashError(
            f"the wheelhouse lacks wheels for Python {target.version} on {target.machine}: {', '.join(sorted(missing))}{detail}",
            DOWNLOAD_HINT.format(py=target.version),
        )
    pip_wheels = [w for name, w in available.items() if name == "pip"]
    return [agent_wheel] + sorted(set(needed), key=lambda p: p.name) + pip_wheels
