"""``packetx-lakehouse``: generate sample logs, run the demo, and the operational commands."""

import argparse
import collections
import datetime as dt
import getpass
import importlib.util
import os
import re
import subprocess
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from packetx_lakehouse.dashboard.launch import streamlit_command
from packetx_lakehouse.devices.generator import GeneratorOptions, generate
from packetx_lakehouse.devices.upload import UploadResult, files_to_upload, require_bucket, upload_files
from packetx_lakehouse.progress import progress_bar
from packetx_lakehouse.settings import Settings, prepare_environment


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a YYYY-MM-DD date") from exc


def _add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="write deterministic PacketX traffic logs")
    p.add_argument("--users", type=int, default=3)
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--start", type=_date, default=dt.date.today() - dt.timedelta(days=7))
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, default=None, help="default: the landing directory")
    p.add_argument("--minutes", type=int, default=GeneratorOptions.minutes_per_day, help="minutes with traffic per day")
    p.add_argument("--pairs", type=int, default=GeneratorOptions.pairs_per_minute, help="IP pairs per minute")
    p.add_argument("--bad-lines", type=int, default=0, help="deliberately bad lines per file")
    p.add_argument("--restarts", type=int, default=0, help="producer restarts (replays) per file")
    p.add_argument("--gzip", action="store_true", help="write .csv.gz files as uploads would be")


def cmd_generate(args: argparse.Namespace) -> int:
    out = args.out or Settings.from_env().traffic_log_dir
    options = GeneratorOptions(
        minutes_per_day=args.minutes, pairs_per_minute=args.pairs, bad_lines=args.bad_lines, restarts=args.restarts
    )
    paths = generate(out, users=args.users, days=args.days, start=args.start, seed=args.seed, options=options,
                     gzip_files=args.gzip)
    print(f"wrote {len(paths)} files to {out}")
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="fill an empty landing area with samples and run every asset for every day")
    p.add_argument("--users", type=int, default=3)
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--seed", type=int, default=7)


def cmd_demo(args: argparse.Namespace) -> int:
    from packetx_lakehouse.demo import run_demo
    from packetx_lakehouse.runner import RunStopped

    try:
        return run_demo(users=args.users, days=args.days, seed=args.seed)
    except RunStopped as stopped:
        print(f"packetx-lakehouse demo: run {stopped.run_id} stopped by {stopped.signal_name}, marked canceled",
              file=sys.stderr)
        return stopped.code


def _add_upload(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "upload",
        help="gzip traffic logs and upload them to s3://<bucket>/<prefix>raw_data_upload/ (skips unchanged files)",
    )
    p.add_argument("files", nargs="*", type=Path, help="files to upload (default: the landing directory's)")
    p.add_argument("--date", type=_date, default=None,
                   help="only this day's files (YYYY-MM-DD; default: every day, unchanged ones are skipped)")
    p.add_argument("--dir", type=Path, default=None, help="directory to read (default: PACKETX_TRAFFIC_LOG_DIR)")


def cmd_upload(args: argparse.Namespace) -> int:
    """Credentials come from the AWS chain, or the legacy ``aws_access_key_id`` names; never printed."""
    settings = Settings.from_env()  # the bucket falls back to the legacy s3_bucket_name
    require_bucket(settings)
    paths = list(args.files) or files_to_upload(args.dir or settings.traffic_log_dir, args.date)
    if not paths:
        print("nothing to upload")
        return 1
    with progress_bar() as bar:
        task = bar.add_task("uploading", total=len(paths))

        def done(result: UploadResult) -> None:
            print(f"{result.action:<9} {result.name} -> {result.uri} ({result.size:,} bytes)", flush=True)
            bar.advance(task)

        results = upload_files(settings, paths, on_file=done)
    actions = collections.Counter(r.action for r in results)
    sent = sum(r.size for r in results if r.action != "unchanged")
    print(f"{len(results)} file{'s' * (len(results) != 1)}: "
          + ", ".join(f"{n} {action}" for action, n in sorted(actions.items()))
          + f"; {sent:,} bytes sent")
    return 0


def _add_sql(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sql",
        help="run SQL over the live lakehouse: every Iceberg table as packetx_raw.* / packetx_silver.* / "
        "packetx_gold.*, plus the serving database's gold.* and ops.*",
    )
    p.add_argument("query", nargs="?", help="the SQL (default: read it from standard input)")
    p.add_argument("--csv", action="store_true", help="print CSV with a header instead of a table")
    p.add_argument("--max-rows", type=int, default=40, help="rows shown as a table (default 40)")
    p.add_argument("--as-of", metavar="TIME|SNAPSHOT",
                   help="the Iceberg tables as they were then: an ISO time (UTC unless it names a zone), 90m / 2h "
                   "ago, or a snapshot id; within PACKETX_SNAPSHOT_RETENTION_HOURS (24 h). The serving copy "
                   "(gold.*, ops.*) keeps no history and is left out")


def _s3_access(settings: Settings):
    from packetx_lakehouse.lib.serving.lakehouse_sql import S3Access

    return S3Access.from_environment(os.environ, settings.aws_region, settings.aws_endpoint_url) if settings.is_aws \
        else None


def cmd_sql(args: argparse.Namespace) -> int:
    """DuckDB in process, with the wheels' extensions: no server, no download, nothing to install."""
    import duckdb
    import pyarrow.csv

    from packetx_lakehouse.defs.resources import open_catalog
    from packetx_lakehouse.lib.schemas import TABLES_BY_LAYER
    from packetx_lakehouse.lib.serving.lakehouse_sql import (
        lakehouse_connection,
        metadata_locations,
        views_as_of,
    )
    from packetx_lakehouse.lib.storage.time_travel import parse_as_of

    query = args.query if args.query is not None else sys.stdin.read()
    if not query.strip():
        raise ValueError("no SQL given (pass it as an argument or on standard input)")
    settings = Settings.from_env()
    catalog = open_catalog(settings)
    every_table = [t for layer in TABLES_BY_LAYER.values() for t in layer]
    serving = settings.serving_path
    if args.as_of:
        now = dt.datetime.now(dt.UTC)
        resolved, tables = views_as_of(catalog, every_table, parse_as_of(args.as_of, now), now)
        serving = None
        missing = f"; not kept then: {', '.join(sorted(resolved.out_of_reach))}" if resolved.out_of_reach else ""
        print(f"-- as of {resolved.at:%Y-%m-%d %H:%M:%S} UTC (Iceberg tables only){missing}", file=sys.stderr)
    else:
        tables = metadata_locations(catalog, every_table)
    with lakehouse_connection(tables, serving, _s3_access(settings)) as con:
        # Relations are lazy: a query fails when its rows are fetched as much as when it is parsed.
        try:
            relation = con.sql(query)
            if relation is None:  # a statement without a result
                return 0
            if args.csv:
                pyarrow.csv.write_csv(relation.to_arrow_table(), sys.stdout.buffer)
            else:
                relation.show(max_rows=args.max_rows, max_width=10_000)
        except duckdb.CatalogException as exc:
            hint = (" (as of an earlier time only the Iceberg tables (packetx_*) are there: the serving copy "
                    "keeps no history)") if args.as_of else ""
            raise ValueError(f"{exc}{hint}") from exc
        except duckdb.Error as exc:
            raise ValueError(str(exc)) from exc
    return 0


def _add_explain_anomaly(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain-anomaly",
                       help="why a user-hour stands out: its remote hosts, directions and minutes against the same "
                       "hour of the 7 days before, and what changed most")
    p.add_argument("user", help="the user (device), as in its file names")
    p.add_argument("hour", type=_hour, help="the UTC hour, e.g. 2026-11-24T14 or '2026-11-24 14:00'")


_HOUR = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2})(:\d{2}(?::\d{2})?)?(Z|[+-]\d{2}:\d{2})?$")


def _hour(text: str) -> dt.datetime:
    """A UTC hour from ``2026-11-24T14``, ``2026-11-24 14:00``, ``2026-11-24T15:00+01:00`` or ``...Z``."""
    found = _HOUR.match(text.strip())
    if not found:
        raise argparse.ArgumentTypeError(f"{text!r} is not an hour such as 2026-11-24T14 (UTC)")
    day, hour, rest, zone = found.groups()
    zone = "+00:00" if zone in (None, "Z") else zone
    try:
        moment = dt.datetime.fromisoformat(f"{day}T{hour}{rest or ':00'}{zone}").astimezone(dt.UTC)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from exc
    return moment.replace(minute=0, second=0, microsecond=0)


def _text_table(frame, columns: dict[str, str], limit: int = 15) -> str:
    """A few rows as aligned text: ``columns`` maps each column to its heading."""
    rows = [[_cell(row[c]) for c in columns] for row in frame.head(limit).iter_rows(named=True)]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(columns.values())]
    lines = ["  ".join(h.ljust(w) for h, w in zip(columns.values(), widths))]
    lines += ["  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(row, widths))) for row in rows]
    if frame.height > limit:
        lines.append(f"... {frame.height - limit:,} more")
    return "\n".join("  " + line for line in lines)


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float):
        return f"{value:,.1f}"
    return str(value)


def cmd_explain_anomaly(args: argparse.Namespace) -> int:
    """The same explanation as the dashboard's anomaly link, over the live Iceberg tables."""
    import polars as pl

    from packetx_lakehouse.dashboard.queries import anomaly, explanation
    from packetx_lakehouse.defs.resources import open_catalog
    from packetx_lakehouse.lib.schemas import GOLD_HOURLY_BANDWIDTH, GOLD_TRAFFIC_ANOMALIES, GOLD_USER_HOURLY
    from packetx_lakehouse.lib.serving.lakehouse_sql import lakehouse_connection, metadata_locations
    from packetx_lakehouse.lib.units import format_kb

    settings = Settings.from_env()
    catalog = open_catalog(settings)
    tables = metadata_locations(catalog, [GOLD_HOURLY_BANDWIDTH, GOLD_TRAFFIC_ANOMALIES, GOLD_USER_HOURLY])
    if GOLD_HOURLY_BANDWIDTH.identifier not in tables:
        raise ValueError(f"{GOLD_HOURLY_BANDWIDTH.identifier} holds nothing yet: run the pipeline first")
    with lakehouse_connection(tables, None, _s3_access(settings)) as con:
        found = explanation(con, args.user, args.hour, gold="packetx_gold")
        flagged = anomaly(con, args.user, args.hour, gold="packetx_gold")
    if found.hosts.filter(pl.col("kb") > 0).is_empty():
        raise ValueError(f"no traffic of {args.user} in {args.hour:%Y-%m-%d %H:00} UTC")
    mb = 1024
    print(f"{found.user}, {found.hour:%Y-%m-%d %H:00} UTC: {format_kb(found.kb)} against a typical "
          f"{format_kb(found.typical_kb)} in this hour (the same hour of the 7 days before)")
    if flagged:
        print(f"Flagged: robust z {flagged['robust_z']:.1f} over the user's 7-day baseline (median "
              f"{format_kb(flagged['baseline_median_kb'])} of {flagged['baseline_hours']} active hours)")
    else:
        print("Not flagged in packetx_gold.traffic_anomalies.")
    print(f"\nWhat changed most: {found.what_changed_most}")
    for finding in found.findings:
        print(f"  - {finding}")
    hosts = found.hosts.with_columns(pl.col("kb", "typical_kb", "change_kb") / mb)
    print("\nRemote hosts, largest change first:")
    print(_text_table(hosts, {"remote_ip": "remote host", "direction": "direction", "kb": "MB",
                              "typical_kb": "typical MB", "change_kb": "change MB", "minutes": "minutes",
                              "days_seen": "days seen of 7", "new": "new"}))
    directions = found.directions.with_columns(pl.col("kb", "typical_kb", "change_kb") / mb,
                                               pl.col("share", "typical_share") * 100)
    print("\nDirections:")
    print(_text_table(directions, {"direction": "direction", "kb": "MB", "typical_kb": "typical MB",
                                   "change_kb": "change MB", "share": "% of hour", "typical_share": "typical %"}))
    if found.minutes is not None:
        print(f"\nActive minutes: {found.minutes}, typically {found.typical_minutes:.1f}")
    return 0


def _add_dashboard(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboard", help="serve the traffic dashboard over the DuckDB serving database")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--address", default="127.0.0.1", help="interface to bind (loopback unless you mean it)")


def cmd_dashboard(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("streamlit") is None:
        print("the dashboard needs Streamlit: pip install 'packetx-lakehouse[dashboard]'", file=sys.stderr)
        return 2
    command = streamlit_command(args.port, args.address)
    print(f"PacketX dashboard on http://{args.address}:{args.port}", flush=True)
    # exec, not a child: the PID a caller holds is the server's, so stopping it by PID stops it.
    os.execv(command[0], command)


def _add_ui(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ui", help="serve the Dagster UI (dagster dev) over this lakehouse: its instance lives in "
                       "<PACKETX_DATA_DIR>/dagster, so another data directory is another lakehouse")
    p.add_argument("--port", type=int, default=3000)
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (loopback unless you mean it)")
    p.add_argument("--dg", action="store_true", help="with `dg dev` instead of `dagster dev` (the same location)")


def cmd_ui(args: argparse.Namespace) -> int:
    """``dagster dev`` (or ``dg dev``) from the checkout, with DAGSTER_HOME the lakehouse's own instance."""
    from packetx_lakehouse.runner import prepare_instance_home

    home = prepare_instance_home(Settings.from_env())
    if home is None or not Path("workspace.yaml").is_file():
        print("run `ui` from the project directory (it holds dagster.yaml and workspace.yaml)", file=sys.stderr)
        return 2
    bin_dir = Path(sys.executable).parent
    command = [str(bin_dir / "dg"), "dev"] if args.dg else [str(bin_dir / "dagster"), "dev", "-w", "workspace.yaml"]
    command += ["-h", args.host, "-p", str(args.port)]
    print(f"Dagster UI on http://{args.host}:{args.port} (instance {home})", flush=True)
    # exec, not a child: the PID a caller holds is the server's, so stopping it by PID stops it.
    os.execve(command[0], command, {**os.environ, "DAGSTER_HOME": str(home)})


def _add_retract(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "retract",
        help="withdraw a traffic-log file landed by mistake: its rows leave every layer (the archive keeps "
        "its versions and the record of who retracted it, when and why)",
    )
    p.add_argument("file", help="the file's name, e.g. alice-2026-11-30.csv (or .csv.gz)")
    p.add_argument("--reason", default="landed by mistake", help="why, recorded in the day's manifest")
    p.add_argument("--undo", action="store_true", help="undo an earlier retraction (the file counts again)")
    p.add_argument("--no-run", action="store_true",
                   help="only record it; the rows leave on the day's next run (the sensor, the schedule or the UI)")


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (some containers)
        return f"uid {os.getuid()}"


def cmd_retract(args: argparse.Namespace) -> int:
    """Record the retraction in the raw archive, then (unless ``--no-run``) run the day's pipeline."""
    from packetx_lakehouse.defs.partitions import check_partition_key, daily_partitions
    from packetx_lakehouse.defs.resources import archive_store, landing_store
    from packetx_lakehouse.lib.ingest.archive import (
        load_manifest,
        restore,
        retract,
        source_of_name,
    )
    from packetx_lakehouse.lib.ingest.landing import group_landing_by_day

    settings = Settings.from_env()
    archive = archive_store(settings)
    day, source = source_of_name(args.file)
    if args.undo:
        before, after = restore(archive, args.file)
        done = f"Restored {source} to {day}"
    else:
        landing = landing_store(settings)
        by_day, _ = group_landing_by_day(landing)
        landed = any(source_of_name(info.name)[1] == source for info in by_day.get(day, []))
        if source not in load_manifest(archive, day).files and not landed:
            raise ValueError(f"{source} is neither ingested nor in {landing.describe('')}")
        before, after = retract(archive, args.file, by=_who(), reason=args.reason, now=dt.datetime.now(dt.UTC))
        done = f"Retracted {source} from {day} ({after.retracted[source].describe()})"
    print(f"{done}; the day's source version is now {after.generation} (was {before.generation}).")
    problem = check_partition_key(daily_partitions(settings), day, source)
    if args.no_run or problem:
        print(problem or f"Its rows change in every layer on the day's next run: materialise {day} of the "
              "daily_pipeline job in the Dagster UI (or leave out --no-run to run it from here).")
        return 0
    return _run_day(settings, day)


def _add_acknowledge(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "acknowledge",
        help="accept a landing problem you have looked at (a file gone from the landing area or shrunk: the "
        "archive keeps serving the ingested version): its day's checks pass on the day's next run",
    )
    p.add_argument("file", help="the file's name as the problem names it, e.g. alice-2026-11-21.csv")
    p.add_argument("--reason", default="looked at: the archived version is right", help="why, recorded with it")
    p.add_argument("--undo", action="store_true", help="withdraw the acknowledgement (the problem counts again)")
    p.add_argument("--no-run", action="store_true", help="only record it; the day's next run re-checks it")


def cmd_acknowledge(args: argparse.Namespace) -> int:
    """Record (or withdraw) the acknowledgement of a file's open landing problem, then run its day."""
    from packetx_lakehouse.defs.bronze.acknowledged import acknowledge, withdraw
    from packetx_lakehouse.defs.resources import archive_store, open_catalog
    from packetx_lakehouse.lib.ingest.archive import source_of_name
    from packetx_lakehouse.lib.schemas import LANDING_PROBLEMS
    from packetx_lakehouse.lib.storage.iceberg import ensure_table

    settings = Settings.from_env()
    archive = archive_store(settings)
    day, _ = source_of_name(args.file)
    if args.undo:
        if not withdraw(archive, day, args.file):
            raise ValueError(f"{args.file} has no acknowledged problem on {day}")
        print(f"Withdrew the acknowledgement of {args.file} on {day}.")
    else:
        recorded = ensure_table(open_catalog(settings), LANDING_PROBLEMS).scan().to_arrow().to_pylist()
        open_problems = [p for p in recorded if p["object_key"] == args.file and p["log_date"] == day]
        if not open_problems:
            raise ValueError(f"no landing problem of {args.file} is recorded for {day}")
        kind = open_problems[0]["kind"]
        acknowledge(archive, day, args.file, kind, by=_who(), reason=args.reason, now=dt.datetime.now(dt.UTC))
        print(f"Acknowledged {args.file} on {day} ({kind}: {open_problems[0]['reason']}).")
    if args.no_run:
        print(f"Its day's checks change on the day's next run: materialise {day} of daily_pipeline in the Dagster UI.")
        return 0
    return _run_day(settings, day)


def _run_day(settings: Settings, day: dt.date) -> int:
    """Run ``day`` of the daily pipeline here, on the lakehouse's own instance (so the UI shows it)."""
    from packetx_lakehouse.definitions import build_definitions
    from packetx_lakehouse.runner import materialize_range, project_instance

    print(f"Running daily_pipeline for {day} ...", flush=True)
    result = materialize_range(build_definitions(settings), day, day, instance=project_instance(settings),
                               log_level="ERROR", raise_on_error=False)
    print(f"Run {result.run_id} of {day} {'succeeded' if result.success else 'FAILED (see the Dagster UI)'}.")
    return 0 if result.success else 1


def _add_bench(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("bench", help="run the benchmark suite of this source checkout (see benchmarks/README.md); "
                   "its options (--small, --json PATH, --no-dagster) are passed on")


def cmd_bench(args: argparse.Namespace) -> int:
    """The suite lives in the checkout (``benchmarks/``), not in the installed package."""
    checkout = next((d for d in (Path.cwd(), *Path.cwd().parents) if (d / "benchmarks" / "run.py").is_file()), None)
    if checkout is None:
        raise FileNotFoundError("no benchmarks/run.py here or above: run `bench` inside a PacketX Lakehouse checkout")
    return subprocess.call([sys.executable, "-m", "benchmarks.run", *args.bench_args], cwd=checkout)


COMMANDS = {
    "generate": (_add_generate, cmd_generate),
    "demo": (_add_demo, cmd_demo),
    "upload": (_add_upload, cmd_upload),
    "sql": (_add_sql, cmd_sql),
    "explain-anomaly": (_add_explain_anomaly, cmd_explain_anomaly),
    "dashboard": (_add_dashboard, cmd_dashboard),
    "ui": (_add_ui, cmd_ui),
    "retract": (_add_retract, cmd_retract),
    "acknowledge": (_add_acknowledge, cmd_acknowledge),
    "bench": (_add_bench, cmd_bench),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="packetx-lakehouse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for add, _ in COMMANDS.values():
        add(sub)
    args, extra = parser.parse_known_args(argv)
    if args.command == "bench":
        args.bench_args = extra  # the suite parses its own options
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    prepare_environment()  # .env and legacy names, exactly as the Dagster code location sees them
    # Dagster flags beta parameters (backfill_policy, ...) on every import: noise for a CLI user.
    warnings.filterwarnings("ignore", message=".*is currently in beta")
    try:
        return COMMANDS[args.command][1](args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"packetx-lakehouse {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
