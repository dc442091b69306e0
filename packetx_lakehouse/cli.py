"""``packetx-lakehouse``: generate sample logs, run the demo, and the operational commands."""

import argparse
import datetime as dt
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from packetx_lakehouse.dashboard.launch import add_dashboard_parser, cmd_dashboard
from packetx_lakehouse.lib.generator import GeneratorOptions, generate
from packetx_lakehouse.lib.upload import add_upload_parser, cmd_upload
from packetx_lakehouse.settings import Settings

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

    return run_demo(users=args.users, days=args.days, seed=args.seed)


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmark the pipeline on a generated data set (see benchmarks/README.md)")
    p.add_argument("--small", action="store_true", help="a quick look on a small data set instead of ~5 M rows")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON")
    p.add_argument("--no-dagster", action="store_true", help="skip the backfill and sensor runs through dagster dev")


def cmd_bench(args: argparse.Namespace) -> int:
    from benchmarks.run import main as bench

    return bench(small=args.small, json_path=args.json, dagster=not args.no_dagster)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="packetx-lakehouse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    commands = {
        "generate": (_add_generate, cmd_generate),
        "demo": (_add_demo, cmd_demo),
        "upload": (add_upload_parser, cmd_upload),
        "dashboard": (add_dashboard_parser, cmd_dashboard),
        "bench": (_add_bench, cmd_bench),
    }
    for add, _ in commands.values():
        add(sub)
    args = parser.parse_args(argv)
    # Dagster flags beta parameters (backfill_policy, ...) on every import: noise for a CLI user.
    warnings.filterwarnings("ignore", message=".*is currently in beta")
    try:
        return commands[args.command][1](args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"packetx-lakehouse {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
