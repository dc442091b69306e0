"""How amounts read for people: one formatter for the dashboard, the command line and explanations."""

from __future__ import annotations


def format_kb(kb: float) -> str:
    """KB in the largest unit that keeps it readable (``512.0 KB``, ``1.50 MB``, ``3.00 TB``)."""
    for unit, size in (("TB", 1024.0**3), ("GB", 1024.0**2), ("MB", 1024.0)):
        if abs(kb) >= size:
            return f"{kb / size:,.2f} {unit}"
    return f"{kb:,.1f} KB"
