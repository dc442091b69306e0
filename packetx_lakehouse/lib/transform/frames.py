"""Polars helpers for tables in file order: one cheap pass instead of sorts and group-bys.

Every layer writes each file's lines in order, grouped by file; these helpers prove that shape
(or report that it does not hold) so transforms and checks can skip work they would otherwise do.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

#: KB are summed as whole micro-KB: PacketX prints 6 significant digits, so such sums are exact
#: (below 2**53 micro-KB, ~9 TB per group) and the same whatever order rows are summed in (one
#: day at once, minute by minute, or a stored sum plus new rows). Stored as float KB, so a NaN
#: still shows.
MICRO_KB = 1_000_000


def micro_kb(kb: pl.Expr) -> pl.Expr:
    """KB (as PacketX prints them, or a stored exact sum) as whole micro-KB.

    Whole numbers held as floats: their sums are exact below 2**53, and a NaN (never read from a
    file, but the ``kb_valid`` checks must see one that got in) still shows in every sum.
    """
    return (kb * MICRO_KB).round()


def as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Categorical columns as strings, for the few rows that get compared or looked up as text."""
    return frame.with_columns(pl.col(pl.Categorical).cast(pl.String))


def run_heads(frame: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame | None:
    """The leading ``columns`` at the start of each run of equal leading values, or None.

    None unless the last column strictly increases within every run and no value is null: the
    shape every layer writes (each file's lines in order). One pass with cheap equality tests
    instead of ordering comparisons on text for every row.
    """
    *lead, last = columns
    changed = (
        pl.any_horizontal(pl.col(c).ne_missing(pl.col(c).shift(1)) for c in lead)
        if lead
        else pl.int_range(pl.len()) == 0  # no leading columns: one run
    )
    within = changed | (pl.col(last) > pl.col(last).shift(1)).fill_null(False)
    checked = frame.select(
        ordered=within.slice(1).all(), nulls=pl.any_horizontal(pl.col(c).is_null() for c in columns).any()
    )
    if frame.height and (not checked.item(0, "ordered") or checked.item(0, "nulls")):
        return None
    return frame.filter(changed.fill_null(True)).select(lead)


def sorted_by(frame: pl.DataFrame, columns: Sequence[str]) -> bool:
    """Whether each row's ``columns`` are greater than the row before's (strictly; nulls: no)."""
    heads = run_heads(frame, columns)
    if heads is None:
        return False
    heads = as_text(heads)
    later, tied = pl.lit(False), pl.lit(True)
    for column in columns[:-1]:  # the run heads, a few rows: plain ordering comparisons
        value, previous = pl.col(column), pl.col(column).shift(1)
        later, tied = later | (tied & (value > previous)), tied & (value == previous)
    return heads.height < 2 or bool(heads.select(later.fill_null(False).slice(1).all()).item())
