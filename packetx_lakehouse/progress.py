"""Progress on the command line for work that takes minutes (demo, bench, upload).

Drawn by ``rich`` on standard error, so standard output keeps only the results (pipes and tests
read it). On a terminal the bars move; elsewhere rich prints their final state once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

if TYPE_CHECKING:
    import dagster as dg

STDERR = Console(stderr=True)


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=STDERR)


@contextmanager
def run_progress(steps: int, what: str) -> Iterator[Callable[["dg.DagsterEvent"], None]]:
    """A bar over a run's steps; yields the event callback ``runner.materialize_range`` takes."""
    import dagster as dg

    with progress_bar() as bar:
        task = bar.add_task(what, total=steps)
        written: dict[str, int] = {}

        def on_event(event: "dg.DagsterEvent") -> None:
            if event.event_type == dg.DagsterEventType.STEP_START:
                bar.update(task, description=f"{what}: {event.step_key}")
            elif event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
                written[event.step_key] = written.get(event.step_key, 0) + 1
                bar.update(task, description=f"{what}: {event.step_key} ({written[event.step_key]} written)")
            elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
                bar.advance(task)
                failed = event.event_type == dg.DagsterEventType.STEP_FAILURE
                bar.console.print(f"  {'FAILED' if failed else 'done'}  {event.step_key}: "
                                  f"{written.get(event.step_key, 0)} materialisations")

        yield on_event
        bar.update(task, description=what)
