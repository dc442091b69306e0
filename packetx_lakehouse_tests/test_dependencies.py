"""The project's declared shape: import rules (import-linter), declared dependencies (deptry), and a
lock file that pins every package pyproject.toml asks for, at a version it allows."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PYPROJECT = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
NAME = canonicalize_name(PYPROJECT["name"])


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=PROJECT, capture_output=True, text=True, timeout=240)


def test_every_import_contract_of_pyproject_is_kept():
    done = _run(str(BIN / "lint-imports"), "--no-cache")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert re.search(r"Contracts: (\d+) kept, 0 broken", done.stdout), done.stdout[-2000:]


def test_every_import_is_declared_and_every_declared_package_is_used():
    done = _run(str(BIN / "deptry"), ".")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def _locked() -> dict[str, str]:
    """``name -> version`` of every pin in requirements.lock that applies to this interpreter."""
    pins = {}
    for line in (PROJECT / "requirements.lock").read_text().splitlines():
        found = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$", line)
        if found:
            name, version, marker = found.groups()
            if marker is None or Requirement(f"x; {marker}").marker.evaluate():
                pins[canonicalize_name(name)] = version
    return pins


def _requirements(extras: set[str]) -> list[Requirement]:
    """What installing the project with ``extras`` asks for, its own extras followed."""
    wanted = [Requirement(r) for r in PYPROJECT["dependencies"]]
    done: set[str] = set()
    while extras - done:
        extra = (extras - done).pop()
        done.add(extra)
        for text in PYPROJECT["optional-dependencies"][extra]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == NAME:
                extras |= requirement.extras
            else:
                wanted.append(requirement)
    return wanted


def test_the_lock_pins_every_requirement_at_a_version_pyproject_allows():
    """scripts/test.sh installs requirements.lock with --no-deps: a dependency added to pyproject.toml
    without `bash scripts/lock.sh` would be missing; a range moved past a pin, violated."""
    pins = _locked()
    assert len(pins) > 100, "requirements.lock holds (almost) nothing"
    environment = default_environment() | {"extra": ""}
    problems = []
    for requirement in _requirements({"test"}):
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        version = pins.get(canonicalize_name(requirement.name))
        if version is None:
            problems.append(f"{requirement} is not in requirements.lock")
        elif not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement} but requirements.lock pins {version}")
    assert problems == [], "run `bash scripts/lock.sh`: " + "; ".join(problems)


def test_the_wheel_asks_for_ranges_not_exact_versions():
    """Exact pins belong in the lock: a wheel that pins ``==`` cannot be installed beside anything else."""
    pinned = [r for r in _requirements({"ui", "dashboard", "celery"}) if any(s.operator == "==" for s in r.specifier)]
    assert pinned == []
