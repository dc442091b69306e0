"""Tables written by an earlier version of the lakehouse, brought to today's schema in place.

Pure PyIceberg (no Dagster): every step that reads or writes such a table calls its upgrade first.
"""

from __future__ import annotations

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError

from packetx_lakehouse.lib.retry import retrying
from packetx_lakehouse.lib.schemas import GOLD_PACKETS_FACT
from packetx_lakehouse.lib.storage.iceberg import COMMIT_ATTEMPTS, migrate_table
from packetx_lakehouse.lib.transform.gold import hourly_fact_from_row_grain


def upgrade_row_grain_fact(catalog: Catalog) -> int | None:
    """Sum a ``packets_fact`` written at the former row grain to the hourly grain, once.

    Every step that reads or writes the fact calls this first, so a lakehouse made by an earlier
    version keeps all its days without a backfill. The table is migrated in place, in one commit
    (``migrate_table``): its per-day source generations stay, and a run killed half-way leaves
    the old fact whole. Runs upgrading at the same time race on that commit; the losers find the
    fact hourly when they look again.

    Returns:
        The rows written at the hourly grain, or None when there was nothing to upgrade.
    """
    def upgrade() -> int | None:
        try:
            table = catalog.load_table(GOLD_PACKETS_FACT.identifier)
        except NoSuchTableError:
            return None
        if "rows" in table.schema().column_names:
            return None
        hourly = hourly_fact_from_row_grain(table.scan().to_arrow())
        migrate_table(table, GOLD_PACKETS_FACT, hourly)
        return hourly.num_rows

    try:
        # A lost commit: the fact was written or migrated meanwhile, so look again.
        return retrying(CommitFailedException, attempts=COMMIT_ATTEMPTS)(upgrade)
    except CommitFailedException as error:
        raise CommitFailedException(f"{GOLD_PACKETS_FACT.identifier}: the upgrade to the hourly grain lost "
                                    f"{COMMIT_ATTEMPTS} commits in a row to concurrent writers") from error
