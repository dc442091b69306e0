"""``packetx-lakehouse dashboard``: serve the Streamlit page on loopback."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

APP = Path(__file__).with_name("app.py")


def streamlit_command(port: int, address: str = "127.0.0.1") -> list[str]:
    """The ``streamlit run`` command line; the environment (PACKETX_DATA_DIR, ...) passes through."""
    return [sys.executable, "-m", "streamlit", "run", str(APP), "--server.address", address,
            "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"]


def add_dashboard_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboard", help="serve the traffic dashboard over the DuckDB serving database")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--address", default="127.0.0.1", help="interface to bind (loopback unless you mean it)")


def cmd_dashboard(args: argparse.Namespace) -> int:
    command = streamlit_command(args.port, args.address)
    print(f"PacketX dashboard on http://{args.address}:{args.port}", flush=True)
    # exec, not a child: the PID a caller holds is the server's, so stopping it by PID stops it.
    os.execv(command[0], command)
