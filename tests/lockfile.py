"""Whether a lock file (made by `deploy/lock`) agrees with pyproject.toml, and whether an installed
environment is exactly a lock file.

    python -m tests.lockfile --installed requirements-dev.lock   # .ci/run, after installing from it
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = "escalation-bot (pyproject.toml)"
BUILD_INPUT = "-r deploy/build-requirements.in"


@dataclass
class Pin:
    version: str
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)


def read_lock(path: Path) -> dict[str, Pin]:
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    in_via = False
    for line in path.read_text().splitlines():
        entry = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)", line)
        if entry:
            current = pins[canonicalize_name(entry.group(1).split("[")[0])] = Pin(entry.group(2))
            in_via = False
            continue
        if current is None:
            continue
        stripped = line.strip()
        if stripped.startswith("--hash=sha256:"):
            current.hashes.append(stripped.split(":", 1)[1].rstrip(" \\"))
        elif stripped.startswith("# via"):
            rest = stripped.removeprefix("# via").strip()
            in_via = not rest
            if rest:
                current.via.append(rest)
        elif in_via and stripped.startswith("#   "):
            current.via.append(stripped.removeprefix("#").strip())
        else:
            in_via = False
    return pins


def requirements(root: Path, *, dev: bool) -> list[Requirement]:
    project = tomllib.loads((root / "pyproject.toml").read_text())
    asked = list(project["project"]["dependencies"])
    if dev:
        asked += project["project"]["optional-dependencies"]["dev"]
    return [Requirement(r) for r in asked]


def check(root: Path, lock: str) -> list[str]:
    """What is wrong with `lock` against pyproject.toml (empty: they agree)."""
    pins = read_lock(root / lock)
    dev = "dev" in lock
    problems: list[str] = []
    asked = requirements(root, dev=dev)
    project = tomllib.loads((root / "pyproject.toml").read_text())
    build = [Requirement(r) for r in project["build-system"]["requires"]]
    build_input = [Requirement(r) for r in (root / "deploy" / "build-requirements.in").read_text().split()]
    if [str(r) for r in build_input] != [str(r) for r in build]:
        problems.append("deploy/build-requirements.in differs from pyproject's [build-system] requires")
    for req, source in [(r, PROJECT) for r in asked] + [(r, BUILD_INPUT) for r in build]:
        pin = pins.get(canonicalize_name(req.name))
        if pin is None:
            problems.append(f"{req.name}: asked for by pyproject.toml, not in {lock}")
        elif not req.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{req.name}=={pin.version} in {lock} is not {req.specifier} as pyproject.toml asks")
        elif source not in pin.via:
            problems.append(f"{req.name}: {lock} does not say it comes from {source}")
    names = {canonicalize_name(r.name) for r in asked}
    for name, pin in pins.items():
        if PROJECT in pin.via and name not in names:
            problems.append(f"{name}: pinned in {lock} for pyproject.toml, which no longer asks for it")
        if not pin.hashes:
            problems.append(f"{name}: no hash in {lock}")
    if dev:
        runtime = read_lock(root / "requirements.lock")
        for name, pin in runtime.items():
            if name in pins and pins[name].version != pin.version:
                problems.append(f"{name}: {pin.version} in the image's lock, {pins[name].version} in CI's")
    return problems


def installed_against(lock: Path) -> list[str]:
    """Differences between this environment and `lock` (the project itself and pip aside)."""
    pins = read_lock(lock)
    have = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    mine = {"escalation-bot", "pip"}
    problems = [
        f"{name}: {version} installed, {pins[name].version if name in pins else 'not'} in {lock.name}"
        for name, version in sorted(have.items())
        if name not in mine and (name not in pins or pins[name].version != version)
    ]
    problems += [f"{name}: in {lock.name}, not installed" for name in sorted(set(pins) - set(have))]
    return problems


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--installed", metavar="LOCK", required=True)
    a = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    found = check(root, a.installed) + installed_against(root / a.installed)
    for line in found:
        print(f"lock: {line}", file=sys.stderr)
    if found:
        print("pyproject.toml and the lock disagree: run deploy/lock and commit both files", file=sys.stderr)
    sys.exit(1 if found else 0)
