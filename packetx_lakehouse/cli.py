"""``packetx-lakehouse``: generate sample logs, run the demo, and the operational commands."""

import argparse
import datetime as dt
import os
import subprocess
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from packetx_lakehouse.dashboard.launch import streamlit_command
from packetx_lakehouse.devices.generator import GeneratorOptions, generate
from packetx_lakehouse.devices.upload import files_to_upload, upload_files
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
    paths = list(args.files) or files_to_upload(args.dir or settings.traffic_log_dir, args.date)
    if not paths:
        print("nothing to upload")
        return 1
    for result in upload_files(settings, paths):
        print(f"{result.action:<9} {result.name} -> {result.uri} ({result.size:,} bytes)")
    return 0


def _add_dashboard(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboard", help="serve the traffic dashboard over the DuckDB serving database")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--address", default="127.0.0.1", help="interface to bind (loopback unless you mean it)")


def cmd_dashboard(args: argparse.Namespace) -> int:
    command = streamlit_command(args.port, args.address)
    print(f"PacketX dashboard on http://{args.address}:{args.port}", flush=True)
    # exec, not a child: the PID a caller holds is the server's, so stopping it by PID stops it.
    os.execv(command[0], command)


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
    "dashboard": (_add_dashboard, cmd_dashboard),
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
