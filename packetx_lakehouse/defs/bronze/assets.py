"""Bronze: archive each day's landing files and land every line in Iceberg, good or bad.

The first layer of the daily step (``defs/transform.py``) reads each file once and produces the
raw archive, ``packetx_raw.packets``, ``packetx_raw.quarantine`` and ``packetx_raw.landing_problems``
together, so they can never disagree about what was ingested. Its checks say what did not go in
as it was: landing problems WARN; a file that shrank or vanished since it was ingested, or whose
rows are mostly not on its date, FAILS (and the latter stops the run with an error naming the
file); a day whose archived lines bronze does not all account for FAILS.
"""


import collections
import datetime as dt
from collections.abc import Iterator, Mapping

import dagster as dg
import pyarrow as pa

from packetx_lakehouse.defs.bronze.acknowledged import acknowledged, is_acknowledged
from packetx_lakehouse.defs.checks import DayChecks, problem_list, problems_check
from packetx_lakehouse.defs.conventions import (
    OWNERS,
    RAW_ARCHIVE_KEY,
    asset_key,
    refreshes_new_lines,
    table_spec,
)
from packetx_lakehouse.defs.metadata import markdown_table, shorten
from packetx_lakehouse.defs.partitions import check_partition_key, describe_partitions
from packetx_lakehouse.defs.tables import PerDay, RunTables, add_day_metadata
from packetx_lakehouse.lib.ingest.archive import DayManifest, DayTails, collect_tails, lines_to_read, manifest_at
from packetx_lakehouse.lib.ingest.bronze import BronzeBatch, ingest_days, ingest_tails, merge_batches
from packetx_lakehouse.lib.ingest.landing import group_landing_by_day
from packetx_lakehouse.lib.ingest.limits import IngestLimits
from packetx_lakehouse.lib.ingest.problems import (
    GONE,
    OFF_DATE,
    RETRACTED,
    SHRUNK,
    LandingProblem,
    already_recorded,
    first_sightings,
    problems_table,
)
from packetx_lakehouse.lib.schemas import (
    BRONZE_PACKETS,
    BRONZE_QUARANTINE,
    BRONZE_TABLES,
    LANDING_PROBLEMS,
    TableDef,
)
from packetx_lakehouse.lib.storage.iceberg import DayCounts, recorded_totals, source_generations
from packetx_lakehouse.lib.storage.objectstore import ObjectInfo, ObjectStore

Event = dg.MaterializeResult | dg.Output | dg.AssetCheckEvaluation
#: The bronze tables with a row per line of a file: a refresh appends to both.
BRONZE_LINE_TABLES = (BRONZE_PACKETS, BRONZE_QUARANTINE)

BRONZE_PACKETS_KEY = asset_key(BRONZE_PACKETS)
BRONZE_QUARANTINE_KEY = asset_key(BRONZE_QUARANTINE)
LANDING_PROBLEMS_KEY = asset_key(LANDING_PROBLEMS)
#: Check names: problems at the landing edge (WARN), ingested data contradicted (ERROR).
LANDING_PROBLEMS_CHECK, SOURCES_INTACT, ROWS_ON_FILE_DATE = "landing_problems", "sources_intact", "rows_on_file_date"
#: Check name: every archived line of a day is in bronze, as a row, a quarantined line, a header or a blank line.
LINES_CONSERVED = "lines_conserved"
#: A day's lines that are neither rows nor quarantined, kept with bronze's totals (``counted``).
NOT_ROWS = ("headers", "blank_lines")
#: Run tag of a run whose bronze checks failed on some day, naming them (the run may still succeed).
PROBLEMS_TAG = "packetx/problems"
#: Problems logged one by one per run; the rest are counted (all are in the table and metadata).
MAX_LOGGED_PROBLEMS = 20


def bronze_specs() -> list[dg.AssetSpec]:
    """The raw archive and bronze's three tables: written together by one reading of the files."""
    archive_spec = dg.AssetSpec(
        RAW_ARCHIVE_KEY,
        description="Immutable gzip copy of every ingested traffic-log version, content-addressed by "
        "SHA-256, with a per-day manifest (and its history: new versions, retractions): the audit "
        "trail bronze is rebuilt from.",
        kinds={"s3", "gzip"},
        group_name="bronze",
        owners=OWNERS,
    )
    return [archive_spec, *(table_spec(t, group="bronze", deps=[RAW_ARCHIVE_KEY], automation_condition=None,
                                       kinds=("iceberg", "pyarrow")) for t in BRONZE_TABLES)]


def bronze_check_specs() -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(LANDING_PROBLEMS_CHECK, asset=RAW_ARCHIVE_KEY,
                          description="WARNs when a landing file is not ingested as it is: refused (size "
                          "bounds, not or corrupt gzip, binary data, line ends), empty or header only, badly "
                          "named, skipped (links, sub-folders, hidden entries), gone or shrunk (a retracted "
                          "file, or a problem acknowledged with `packetx-lakehouse acknowledge`, is listed as "
                          "resolved)"),
        dg.AssetCheckSpec(SOURCES_INTACT, asset=RAW_ARCHIVE_KEY,
                          description="FAILS when an ingested file shrank, or left the landing area since the "
                          "last run, naming it with the rows and KB at stake (the archive keeps serving them)"),
        # Blocking: nothing downstream of the day is built (by this run or by automation) until it passes.
        dg.AssetCheckSpec(LINES_CONSERVED, asset=BRONZE_PACKETS_KEY, blocking=True,
                          description="archive lines = bronze rows + quarantined + headers + blank lines: every "
                          "line of the day's archived files (a cut last line included) is accounted for, from "
                          "the archive manifest and the totals bronze's commits keep (WARNs when either is not "
                          "recorded)"),
        dg.AssetCheckSpec(ROWS_ON_FILE_DATE, asset=BRONZE_PACKETS_KEY, blocking=True,
                          description="FAILS when most of a file's rows are not on the date in its name "
                          "(they are quarantined; the run stops with an error naming the file, and nothing "
                          "downstream of the day is built until it passes)"),
    ]


def ingest_bronze(
    context: dg.AssetExecutionContext,
    tables: RunTables,
    checks: DayChecks,
    landing_store: ObjectStore,
    archive_store: ObjectStore,
    partitions: dg.DailyPartitionsDefinition,
    limits: IngestLimits,
) -> Iterator[Event]:
    """Ingest every day of the run's partition range; each table gets one atomic commit.

    The first layer of the daily step (``defs/transform.py``): what it commits stays in ``tables``
    for silver to read from memory. It raises ``dg.Failure`` (after everything is recorded) when a
    file's rows are mostly off its date.
    """
    days = tables.days
    by_day, undated = group_landing_by_day(landing_store)
    _refuse_days_outside(partitions, days, by_day)
    now = dt.datetime.now(dt.UTC)
    tails = _new_lines(context, tables, landing_store, archive_store, by_day, now, limits)
    if tails is not None:
        batch = merge_batches([ingest_tails(tails[day], day, limits=limits) for day in days])
    else:
        batch = ingest_days(landing_store, archive_store, days, by_day, now=now, limits=limits)
    for day in batch.days_without_files:
        context.log.warning(f"No traffic-log files for {day} in {landing_store.describe('')} or the archive")
    for file in batch.files:
        context.log.info(f"{file.source_file}: {file.rows:,} rows, {file.quarantined:,} quarantined"
                         + (" (clean: fast path)" if file.fast_path else "")
                         + (f", {file.pending:,} bytes of a line still being written" if file.pending else ""))
    problems = batch.problems + undated
    recorded_before = tables.get(LANDING_PROBLEMS, undated=True)
    _log_problems(context, problems, told=already_recorded(undated, recorded_before))

    files_by_day = {day: [f for f in batch.files if f.log_date == day] for day in days}
    # Problems of a day, and those of no day (bad names, links, sub-folders): every day's concern.
    problems_by_day = {day: [p for p in problems if p.log_date in (day, None)] for day in days}

    def file_list(day: dt.date) -> dg.MetadataValue:
        return markdown_table(
            ["file", "lines", "rows", "quarantined", "off date", "sha256", "archive"],
            [(f.source_file, f"{f.lines:,}", f"{f.rows:,}", f"{f.quarantined:,}", f"{f.off_date:,}",
              f.sha256[:16], f.archive_state) for f in files_by_day[day]],
        )

    def packets_of_day(day: dt.date, _rows: object) -> dict[str, object]:
        files = files_by_day[day]
        return {"lines_read": sum(f.lines for f in files), "quarantined": sum(f.quarantined for f in files),
                "headers": sum(f.headers for f in files), "blank_lines": sum(f.blank for f in files),
                "files": file_list(day)}

    def quarantine_of_day(_day: dt.date, rows: pa.Table) -> dict[str, object]:
        reasons = collections.Counter(rows.column("reason").to_pylist()).most_common(10)
        return {"top_reasons": markdown_table(["reason", "lines"], reasons)}

    def problems_of_day(day: dt.date, _rows: object) -> dict[str, object]:
        found = problems_by_day[day]
        return {"problems_by_kind": dg.MetadataValue.json(dict(collections.Counter(p.kind for p in found))),
                "problems": _problems_md(found)}

    # Bronze carries the source version (archive manifest generation) of each day it read.
    counted = {day: {"headers": sum(f.headers for f in files_by_day[day]),
                     "blank_lines": sum(f.blank for f in files_by_day[day])} for day in days}
    # Bronze's tables are always written together; a run that selected some of them reports those.
    selected = context.selected_asset_keys
    if tails is None:
        packets = tables.commit(context, BRONZE_PACKETS, batch.packets, generations=batch.generations,
                                counted=counted, per_day=packets_of_day, report=BRONZE_PACKETS_KEY in selected)
        quarantine = tables.commit(context, BRONZE_QUARANTINE, batch.quarantine, generations=batch.generations,
                                   per_day=quarantine_of_day, report=BRONZE_QUARANTINE_KEY in selected)
    else:
        since = {day: found.since for day, found in tails.items()}
        packets = _append_new_lines(context, tables, BRONZE_PACKETS, batch.packets, since, batch.generations,
                                    packets_of_day, counted)
        quarantine = _append_new_lines(context, tables, BRONZE_QUARANTINE, batch.quarantine, since,
                                       batch.generations, quarantine_of_day)
    recorded = problems_table(problems, first_sightings(recorded_before), now)
    landing_problems = tables.commit(context, LANDING_PROBLEMS, recorded, generations=batch.generations,
                                     undated=True, per_day=problems_of_day, report=LANDING_PROBLEMS_KEY in selected)
    if RAW_ARCHIVE_KEY in selected:
        add_day_metadata(context, RAW_ARCHIVE_KEY, {day: {
            "files": len(files_by_day[day]),
            "newly_archived": sum(f.archive_state in ("new version", "new lines") for f in files_by_day[day]),
            "file_list": file_list(day),
            "landing_problems": _problems_md(problems_by_day[day]),
        } for day in days})
        yield dg.MaterializeResult(asset_key=RAW_ARCHIVE_KEY,
                                   metadata={"archive": dg.MetadataValue.path(archive_store.describe(""))})
    yield from (result for result in (packets, quarantine, landing_problems) if result is not None)
    failed: dict[str, list[str]] = {}
    for day in days:
        lines = _lines_conserved(manifest_at(archive_store, day, batch.generations[day]),
                                 *(recorded_totals(tables.table(t), day) for t in BRONZE_LINE_TABLES))
        for result in [*_checks(problems_by_day[day], acknowledged(archive_store, day)), lines]:
            yield from checks.evaluate(day, result)
            if not result.passed:
                failed.setdefault(result.check_name, []).append(day.isoformat())
    if failed:
        # The run may succeed (a shrunk file's longer version is kept): the tag says it found problems.
        context.instance.add_run_tags(context.run.run_id, {PROBLEMS_TAG: shorten("; ".join(
            f"{name} failed on {', '.join(days_failed)}" for name, days_failed in failed.items()), 250)})
    _stop_on_off_date_files(batch)


def _refuse_days_outside(
    partitions: dg.DailyPartitionsDefinition, days: list[dt.date], by_day: Mapping[dt.date, list[ObjectInfo]]
) -> None:
    """A run for days the partitions do not hold (a range given by hand) ingests nothing: its days
    would be tables no partition shows, checked by nothing until serving."""
    outside = [reason for day in days if (reason := check_partition_key(
        partitions, day, ", ".join(info.key for info in by_day.get(day, [])) or "the run's day (no file)"))]
    if outside:
        raise dg.Failure(
            description=f"{len(outside):,} day(s) of the run are outside the partitions "
            f"{describe_partitions(partitions)}; nothing was ingested: " + "; ".join(outside[:5]) + ("; ..." if len(outside) > 5 else ""),
            metadata={"days_outside": len(outside)},
        )


def _new_lines(
    context: dg.AssetExecutionContext, tables: RunTables, landing: ObjectStore, archive: ObjectStore,
    by_day: dict[dt.date, list[ObjectInfo]], now: dt.datetime, limits: IngestLimits,
) -> dict[dt.date, DayTails] | None:
    """For a refresh, the lines each run day's files gained since bronze's generation; None when a
    day needs the careful whole read (then every day of the run is read whole)."""
    if not refreshes_new_lines(context):
        return None
    found: dict[dt.date, DayTails] = {}
    for day in tables.days:
        since = bronze_generation(tables, day)
        tails = None if since is None else collect_tails(landing, archive, day, by_day.get(day, []), since=since,
                                                         now=now, limits=limits)
        if tails is None:
            context.log.info(f"{day}: read whole (a file shrank, was rewritten, left or was retracted, or bronze "
                             "was built by an earlier version)")
            return None
        found[day] = tails
    return found


def bronze_generation(tables: RunTables, day: dt.date) -> int | None:
    """The generation bronze holds for ``day``, or None when its tables cannot simply be extended
    (they disagree after a run stopped between their commits, or keep no totals yet)."""
    generations = {source_generations(tables.table(t), [day])[day] for t in BRONZE_LINE_TABLES}
    if len(generations) != 1:
        return None
    since = generations.pop()
    totals = [recorded_totals(tables.table(t), day) for t in BRONZE_LINE_TABLES]
    # Totals without the lines that are not rows: kept by an earlier version; one whole read records them.
    if since and (None in totals or any(name not in totals[0] for name in NOT_ROWS)):
        return None
    return since


def _append_new_lines(
    context: dg.AssetExecutionContext, tables: RunTables, table_def: TableDef, rows: pa.Table,
    since: dict[dt.date, int], generations: Mapping[dt.date, int], per_day: PerDay,
    counted: DayCounts | None = None,
) -> dg.MaterializeResult | None:
    """Append a refresh's new rows (and add ``counted``), or, with nothing new for any day, say so
    without a commit (None: the run did not select the table)."""
    moved = {day: generations[day] for day in since if generations[day] != since[day]}
    report = asset_key(table_def) in context.selected_asset_keys
    if not moved:
        return dg.MaterializeResult(asset_key=asset_key(table_def), metadata={"new_rows": 0}) if report else None
    return tables.append(context, table_def, rows, continues={day: since[day] for day in moved}, generations=moved,
                         counted=counted, per_day=per_day, report=report, new_rows=rows.num_rows)


def _lines_conserved(
    manifest: DayManifest | None, packets: Mapping[str, int] | None, quarantine: Mapping[str, int] | None
) -> dg.AssetCheckResult:
    """Archive lines = bronze rows + quarantined + headers + blank lines, for one day.

    ``manifest``: the day's source set at the generation bronze holds; ``packets`` and
    ``quarantine``: the day's totals their tables keep. Both sides are read from what is recorded,
    so the check costs nothing per row, on a refresh as on a rebuild.
    """
    archived = None if manifest is None else lines_to_read(manifest)
    if archived is None or packets is None or quarantine is None or any(n not in packets for n in NOT_ROWS):
        missing = ("the archive's line counts" if archived is None
                   else "bronze's per-day totals (kept by an earlier version: a whole read of the day records them)")
        return dg.AssetCheckResult(check_name=LINES_CONSERVED, asset_key=BRONZE_PACKETS_KEY, passed=False,
                                   severity=dg.AssetCheckSeverity.WARN,
                                   metadata={"problems": problem_list([f"not evaluated: {missing} are not recorded"])})
    figures = {"archive_lines": archived, "rows": packets["records"], "quarantined": quarantine["records"],
               "headers": packets["headers"], "blank_lines": packets["blank_lines"]}
    accounted = sum(figures.values()) - archived
    problems = [] if accounted == archived else [
        f"{archived:,} lines in the day's archived files, but {figures['rows']:,} rows + {figures['quarantined']:,} "
        f"quarantined + {figures['headers']:,} headers + {figures['blank_lines']:,} blank = {accounted:,} "
        f"({accounted - archived:+,})"]
    return problems_check(LINES_CONSERVED, problems, BRONZE_PACKETS_KEY, metadata=figures)


def _log_problems(
    context: dg.AssetExecutionContext, problems: list[LandingProblem], told: list[LandingProblem]
) -> None:
    """Log each problem (``told``: those an earlier run logged already are only counted)."""
    if told:
        context.log.info(f"{len(told):,} landing problem(s) of no day reported by an earlier run, still open "
                         f"(listed in {LANDING_PROBLEMS.identifier}): {', '.join(p.object_key for p in told[:5])}"
                         + (", ..." if len(told) > 5 else ""))
    problems = [p for p in problems if p not in told]
    for problem in problems[:MAX_LOGGED_PROBLEMS]:
        (context.log.error if problem.fails else context.log.warning)(f"Not ingested as it is: {problem.describe()}")
    if len(problems) > MAX_LOGGED_PROBLEMS:
        context.log.warning(f"... and {len(problems) - MAX_LOGGED_PROBLEMS:,} more landing problems "
                            f"(all in {LANDING_PROBLEMS.identifier})")


def _problems_md(problems: list[LandingProblem]) -> dg.MetadataValue:
    return markdown_table(["day", "object", "kind", "reason", "rows at stake"],
                          [(p.log_date or "–", p.object_key, p.kind, p.reason,
                            "" if p.rows_at_stake is None else f"{p.rows_at_stake:,}") for p in problems])


def _checks(problems: list[LandingProblem], acknowledgements: dict[str, dict[str, str]]) -> list[dg.AssetCheckResult]:
    # Resolved by an operator: a retracted file, or a problem acknowledged (``packetx-lakehouse
    # acknowledge``). Still recorded (table, check metadata), no longer failing; a file off its date
    # must be renamed or retracted.
    def resolved(p: LandingProblem) -> bool:
        return p.kind == RETRACTED or (p.kind != OFF_DATE and is_acknowledged(p, acknowledgements))

    def described(kinds: tuple[str, ...]) -> list[str]:
        return [p.describe() for p in problems if p.fails and p.kind in kinds and not resolved(p)]

    done = [p.describe() + ("" if p.kind == RETRACTED else " (acknowledged)") for p in problems if resolved(p)]
    return [
        problems_check(LANDING_PROBLEMS_CHECK, [p.describe() for p in problems if not resolved(p)],
                       RAW_ARCHIVE_KEY, metadata={"resolved": problem_list(done)} if done else None,
                       severity=dg.AssetCheckSeverity.WARN),
        problems_check(SOURCES_INTACT, described((SHRUNK, GONE)), RAW_ARCHIVE_KEY),
        problems_check(ROWS_ON_FILE_DATE, described((OFF_DATE,)), BRONZE_PACKETS_KEY),
    ]


def _stop_on_off_date_files(batch: BronzeBatch) -> None:
    """A file whose rows are mostly not on its date stops the run, after everything was recorded."""
    off_date = [p for p in batch.problems if p.kind == OFF_DATE]
    if off_date:
        raise dg.Failure(
            description="Rows mostly not on their file's date (quarantined; nothing downstream was changed): "
            + "; ".join(p.describe() for p in off_date[:5])
            + "".join(f"\nRetract a file landed by mistake: packetx-lakehouse retract {p.object_key}"
                      for p in off_date[:5]),
            metadata={"files": [p.object_key for p in off_date]},
        )
