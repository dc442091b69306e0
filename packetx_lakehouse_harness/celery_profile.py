"""The distributed profile (``deploy/``) for real on this machine: broker, daemon, Celery workers.

Used by the distributed-profile test and the Celery benchmark. Everything binds to 127.0.0.1,
lives in fresh PostgreSQL databases, a fresh Celery queue and a temporary DAGSTER_HOME, and is
stopped by PID at the end; a Redis or RabbitMQ server is started only when none is running, and
then stopped again.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from packetx_lakehouse_harness.devserver import PATIENCE, poll

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
REDIS_PORT, RABBITMQ_PORT = 6379, 5672
BROKER = f"pyamqp://guest@127.0.0.1:{RABBITMQ_PORT}//"
BACKEND = f"redis://127.0.0.1:{REDIS_PORT}/0"


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def broker_and_backend() -> Iterator[None]:
    """RabbitMQ and Redis on loopback: the running ones, else started here and stopped after."""
    started: list[str] = []
    pid_dir = Path(tempfile.mkdtemp(prefix="packetx-services-"))
    try:
        if not _listening(REDIS_PORT):
            subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(REDIS_PORT),
                            "--save", "", "--appendonly", "no", "--pidfile", str(pid_dir / "redis.pid")], check=True)
            started.append("redis")
            poll("redis-server to listen", lambda: _listening(REDIS_PORT), interval=0.1)
        if not _listening(RABBITMQ_PORT):
            subprocess.run(["rabbitmq-server", "-detached"], check=True)
            started.append("rabbitmq")
            poll("rabbitmq-server to listen", lambda: _listening(RABBITMQ_PORT))
        yield
    finally:
        if "redis" in started:
            os.kill(int((pid_dir / "redis.pid").read_text()), signal.SIGTERM)
        if "rabbitmq" in started:
            subprocess.run(["rabbitmqctl", "stop"], check=False, capture_output=True)
        shutil.rmtree(pid_dir, ignore_errors=True)


def delete_queue(name: str) -> None:
    """Remove a test's Celery queue from the broker."""
    from kombu import Connection

    with Connection(BROKER) as connection:
        connection.default_channel.queue_delete(name)


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc), to check that stopping left none behind."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, stack = set(), [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class CeleryProfile:
    """``dagster-daemon`` and ``deploy/start-workers.sh N`` on a temporary DAGSTER_HOME.

    The instance is ``deploy/dagster.celery.yaml`` with ``max_concurrent_runs`` set to the number
    of workers, as its comment asks; ``env`` holds every variable docs/distributed.md names.
    """

    home: Path
    env: dict[str, str]
    workers: int
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def configure(cls, root: Path, *, dagster_db_url: str, catalog_url: str, workers: int,
                  extra_env: Mapping[str, str] | None = None) -> CeleryProfile:
        home = root / "dagster_home"
        home.mkdir(parents=True)
        config = yaml.safe_load((PROJECT / "deploy" / "dagster.celery.yaml").read_text())
        config["concurrency"]["runs"]["max_concurrent_runs"] = workers
        (home / "dagster.yaml").write_text(yaml.safe_dump(config))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PACKETX_", "DAGSTER_", "AWS_"))}
        env |= {
            "DAGSTER_HOME": str(home),
            "PACKETX_DAGSTER_PG_URL": dagster_db_url.replace("postgresql://", "postgresql+psycopg2://"),
            "PACKETX_CATALOG_URL": catalog_url,
            "PACKETX_CELERY_BROKER": BROKER,
            "PACKETX_CELERY_BACKEND": BACKEND,
            "PACKETX_CELERY_QUEUE": f"packetx_test_{secrets.token_hex(4)}",
            "PACKETX_CELERY_WORKER_NAME": f"packetx-test-{secrets.token_hex(3)}",
            "PACKETX_DATA_DIR": str(root / "data"),
            "PACKETX_ENV": "local",
            **(extra_env or {}),
        }
        return cls(home, env, workers)

    def _start(self, name: str, command: list[str]) -> None:
        self.logs[name] = self.home.parent / f"{name}.log"
        with self.logs[name].open("wb") as log:
            self.processes[name] = subprocess.Popen(
                command, cwd=PROJECT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def start(self, *, daemon: bool = True) -> CeleryProfile:
        """The workers (ready when Celery says so), then the daemon that launches runs onto them
        (``daemon=False``: the caller serves the instance itself, e.g. with ``dagster dev``)."""
        self._start("workers", [str(PROJECT / "deploy" / "start-workers.sh"), str(self.workers)])
        poll("the Celery workers to be ready", lambda: self._ready("workers"), interval=0.2)
        if daemon:
            self._start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(PROJECT / "workspace.yaml")])
        return self

    def worker_cpu_seconds(self) -> float:
        """CPU seconds used so far by the Celery main process, its children, and their reaped children."""
        main = self.processes["workers"].pid
        ticks = 0
        for pid in {main, *_descendants(main)}:
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ticks += sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
        return ticks / os.sysconf("SC_CLK_TCK")

    def _ready(self, name: str) -> bool:
        if self.processes[name].poll() is not None:
            raise RuntimeError(f"{name} exited with {self.processes[name].returncode}:\n"
                               f"{self.logs[name].read_text()[-3000:]}")
        return " ready." in self.logs[name].read_text()

    def command(self, *args: str, timeout: float = PATIENCE) -> str:
        """A ``dagster`` CLI command against the profile's instance and workspace; its output."""
        done = subprocess.run([str(BIN / "dagster"), *args], cwd=PROJECT, env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        if done.returncode:
            raise RuntimeError(f"dagster {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done.stdout + done.stderr

    def stop(self) -> None:
        """SIGINT to the daemon (it stops its code server), SIGTERM to the Celery main process (warm
        shutdown: it waits for running runs); then check that no process of either is left."""
        family = {pid for process in self.processes.values() for pid in _descendants(process.pid)}
        for name, signum in (("daemon", signal.SIGINT), ("workers", signal.SIGTERM)):
            process = self.processes.get(name)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signum)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        with contextlib.suppress(Exception):
            delete_queue(self.env["PACKETX_CELERY_QUEUE"])
        left = poll("every daemon and worker process to exit",
                    lambda: not any(_alive(pid) for pid in family) or None, timeout=60, interval=0.2)
        assert left

    def __enter__(self) -> CeleryProfile:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
