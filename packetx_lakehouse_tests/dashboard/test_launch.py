"""``packetx-lakehouse dashboard`` execs Streamlit on loopback with the environment untouched."""

import importlib.util
import os
import sys

import pytest

from packetx_lakehouse import cli
from packetx_lakehouse.dashboard import launch


@pytest.mark.parametrize(("argv", "address", "port"), [([], "127.0.0.1", "8501"),
                                                       (["--port", "9123"], "127.0.0.1", "9123")])
def test_dashboard_command_runs_streamlit_headless_on_loopback(monkeypatch, argv, address, port):
    calls = []
    monkeypatch.setattr(os, "execv", lambda path, args: calls.append((path, args)))
    cli.main(["dashboard", *argv])
    [(path, args)] = calls
    assert path == sys.executable
    assert args[:4] == [sys.executable, "-m", "streamlit", "run"] and args[4] == str(launch.APP)
    options = dict(zip(args[5::2], args[6::2]))
    assert options == {"--server.address": address, "--server.port": port, "--server.headless": "true",
                       "--browser.gatherUsageStats": "false"}


def test_without_the_dashboard_extra_the_command_says_what_to_install(monkeypatch, capsys):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "streamlit" else
                        real_find_spec(name, *a))
    monkeypatch.setattr(os, "execv", lambda *a: pytest.fail("started Streamlit"))
    assert cli.main(["dashboard"]) == 2
    assert "pip install 'packetx-lakehouse[dashboard]'" in capsys.readouterr().err
