"""A sampling profiler that accounts for every CPU second of a run, for ``bench --profile``.

Wall-clock profilers (pyinstrument, py-spy) answer "where did the run's thread wait", and on a
shared machine mostly measure the neighbours; py-spy also counts PyIceberg's and Polars' pool
threads separately, so their samples lose the call that asked for the work. Here a background
thread wakes every few milliseconds, reads the process's CPU time (all threads) and charges what
was spent since the last sample to the main thread's stack at that moment. The work a thread
pool does for a call is charged to the call that waits for it, and the charges add up to the
process's CPU seconds exactly: nothing is left out.
"""

from __future__ import annotations

import collections
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType, TracebackType

#: One frame: (file, function name).
Frame = tuple[str, str]


class CpuSampler:
    """Charge the process's CPU time to the main thread's stack, sample by sample."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.stacks: collections.Counter[tuple[Frame, ...]] = collections.Counter()
        self._main = threading.main_thread().ident
        self._stop = threading.Event()
        self._reading = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def __enter__(self) -> CpuSampler:
        """Returns once the sampler has read the clock: the block's every CPU second is charged, however
        late a loaded machine schedules the sampler's thread."""
        self._thread.start()
        self._reading.wait()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        last = time.process_time()
        self._reading.set()
        while not self._stop.wait(self.interval):
            now = time.process_time()
            self.stacks[_stack(sys._current_frames().get(self._main))] += now - last
            last = now
        # The sampler's own CPU is in here too: a few percent at 5 ms, charged like the rest.
        self.stacks[_stack(sys._current_frames().get(self._main))] += time.process_time() - last


def _stack(frame: FrameType | None) -> tuple[Frame, ...]:
    """Outermost frame first."""
    frames = []
    while frame is not None:
        frames.append((frame.f_code.co_filename, frame.f_code.co_name))
        frame = frame.f_back
    return tuple(reversed(frames))


OWN_CODE = "(step's own code, Dagster inside the step)"


def by_step(stacks: collections.Counter[tuple[Frame, ...]], steps: Sequence[str]) -> dict[str, dict[str, float]]:
    """CPU seconds per step of the run, each split by the outermost ``packetx_lakehouse.lib`` call
    under it (the part of the lakehouse it ran: a commit, a read, a transform); what no step
    holds is ``"outside the steps"``."""
    out: dict[str, dict[str, float]] = {}
    for stack, seconds in stacks.items():
        step, part = "outside the steps", "(Dagster run machinery, imports)"
        for i, (path, function) in enumerate(stack):
            if function in steps and "packetx_lakehouse/defs" in path:
                step = function
                lib = next(((p, f) for p, f in stack[i + 1:] if "packetx_lakehouse/lib/" in p), None)
                part = _lib_name(*lib) if lib else OWN_CODE
                break
        parts = out.setdefault(step, {})
        parts[part] = parts.get(part, 0.0) + seconds
    return out


def _lib_name(path: str, function: str) -> str:
    module = path.split("packetx_lakehouse/lib/", 1)[1].removesuffix(".py").replace("/", ".")
    return f"{module}.{function}"
