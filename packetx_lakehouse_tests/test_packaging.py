"""The built wheel is the whole product: it runs the demo away from the checkout.

The wheel is unpacked ahead of the editable install on ``sys.path``, and the demo runs in an empty
directory, so any file the code still reads from the repository (samples, migrations, tooling)
fails here.
"""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from packetx_lakehouse_harness.devserver import PATIENCE

PROJECT = Path(__file__).resolve().parents[1]


def _copy_of_checkout(target: Path) -> Path:
    """The files git tracks or would track, so the build never writes into the checkout."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=PROJECT, check=True,
                            capture_output=True, text=True).stdout.splitlines()
    for name in listed:
        if (PROJECT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT / name, target / name)
    return target


def test_the_wheel_holds_only_the_product_and_runs_the_demo_outside_the_checkout(tmp_path):
    source = _copy_of_checkout(tmp_path / "source")
    # The build backend is the locked setuptools of this environment (nothing downloaded).
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(source),
                    "-w", str(tmp_path / "dist")], check=True, capture_output=True, timeout=PATIENCE)
    (wheel,) = (tmp_path / "dist").glob("packetx_lakehouse-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"packetx_lakehouse/lib/serving/migrations/0001_star_schema.sql",
            "packetx_lakehouse/devices/samples/alice-2026-11-21.csv"} <= set(names)
    assert not [n for n in names if n.startswith(("benchmarks/", "packetx_lakehouse_tests/", "packetx_lakehouse_harness/"))]
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")

    work = tmp_path / "elsewhere"
    work.mkdir()
    program = (
        "import sys; sys.path.insert(0, sys.argv[1]); import packetx_lakehouse, packetx_lakehouse.cli as cli; "
        "assert packetx_lakehouse.__file__.startswith(sys.argv[1]), packetx_lakehouse.__file__; "
        "sys.exit(cli.main(['demo', '--users', '1', '--days', '2']))"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PACKETX_DATA_DIR": str(work / "data")}
    done = subprocess.run([sys.executable, "-c", program, str(tmp_path / "site")], cwd=work, env=env,
                          capture_output=True, text=True, timeout=PATIENCE)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "Seeded" in done.stdout and "alice-2026-11-21.csv" not in done.stderr
    assert "checks: " in done.stdout and ", 0 failed" in done.stdout
    assert (work / "data" / "serving" / "packetx.duckdb").is_file()
