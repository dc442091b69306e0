"""The package's layering: ``lib/`` is pure (no Dagster, no deployment settings, nothing above it)."""

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "packetx_lakehouse" / "lib"
FORBIDDEN = ("dagster", "dagster_duckdb", "dagster_aws", "packetx_lakehouse.settings", "packetx_lakehouse.defs",
             "packetx_lakehouse.devices", "packetx_lakehouse.definitions", "packetx_lakehouse.runner")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(LIB.rglob("*.py")), ids=lambda p: str(p.relative_to(LIB)))
def test_lib_imports_neither_dagster_nor_settings_nor_anything_above_it(path):
    bad = sorted(n for n in _imports(path) if any(n == f or n.startswith(f + ".") for f in FORBIDDEN))
    assert bad == [], f"{path.name} imports {bad}"
