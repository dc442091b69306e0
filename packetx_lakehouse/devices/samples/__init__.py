"""Real PacketX captures, shipped with the package so the demo and tests work from a wheel too."""

from __future__ import annotations

from pathlib import Path

#: The directory holding the captures (``<user>-<YYYY-MM-DD>.csv``, untouched producer output).
SAMPLES_DIR = Path(__file__).parent


def sample_captures() -> list[Path]:
    """Every real capture, sorted by name."""
    return sorted(SAMPLES_DIR.glob("*.csv"))
