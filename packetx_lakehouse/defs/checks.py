"""Asset-check results built from the pure validators in ``lib.transform.checks``.

Daily steps evaluate their checks day by day and record each result on its own partition
(:class:`DayChecks`): a range run then shows, per day, what a one-day run would have shown.
(A yielded ``AssetCheckResult`` of a range run is recorded without a partition, and each day's
planned evaluation stays pending.) The evaluations are yielded from the step, so Dagster still
enforces ``blocking``: the step fails after its body and nothing downstream runs. Each targets its
day's latest materialisation (yield the asset first): the checks are partitioned by day
(``conventions.daily_step``), and Dagster keeps a day's result only while it targets that.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import dagster as dg

from packetx_lakehouse.dagster_internals import on_latest_materialization
from packetx_lakehouse.defs.metadata import shorten

#: Problems listed in a check's metadata, each cut to a few hundred characters.
MAX_PROBLEMS, MAX_PROBLEM_CHARS = 20, 300
#: Names of the checks that several layers run on their own tables (a check only one asset has
#: is named beside its spec).
KB_VALID, UNIQUE_KEY, ROWS_CONSERVED = "kb_valid", "unique_key", "rows_conserved"


def problems_check(
    name: str,
    problems: list[str],
    asset_key: dg.AssetKey | None = None,
    metadata: dict[str, dg.MetadataValue] | None = None,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
) -> dg.AssetCheckResult:
    """Passed when there are no problems; otherwise a failure of ``severity`` listing them for the UI."""
    return dg.AssetCheckResult(
        check_name=name,
        asset_key=asset_key,
        passed=not problems,
        severity=severity,
        metadata={**(metadata or {}), "problems": problem_list(problems)},
    )


def problem_list(problems: list[str]) -> dg.MetadataValue:
    """Problems as a markdown list: the first ``MAX_PROBLEMS``, each cut to ``MAX_PROBLEM_CHARS``."""
    shown = [f"- {shorten(p, MAX_PROBLEM_CHARS)}" for p in problems[:MAX_PROBLEMS]]
    more = [f"- … {len(problems) - MAX_PROBLEMS:,} more"] if len(problems) > MAX_PROBLEMS else []
    return dg.MetadataValue.md("\n".join(shown + more) or "none")


def check_spec(asset: dg.AssetKey, name: str, description: str, *, blocking: bool = False) -> dg.AssetCheckSpec:
    """``blocking``: a failure means wrong numbers downstream, so nothing downstream may run."""
    return dg.AssetCheckSpec(name, asset=asset, description=description, blocking=blocking)


def selected_checks(context: dg.AssetExecutionContext, asset: dg.AssetKey) -> set[str]:
    """The names of ``asset``'s checks this (subset) run asked for."""
    return {check.name for check in context.selected_asset_check_keys if check.asset_key == asset}


class DayChecks:
    """A daily step's check results, each on its day's partition, and the blocking ones that failed."""

    def __init__(self, context: dg.AssetExecutionContext, *, held_back: bool = False) -> None:
        """``held_back``: the step's events reach Dagster only when its body ends
        (``tables.redo_when_stale``), which targets each evaluation at its day's materialisation
        then; looked up here, the target would be the materialisation before this run's."""
        self.context = context
        self.held_back = held_back
        self.specs = {spec.key: spec for spec in context.assets_def.check_specs}
        self._emitted: set[dg.AssetCheckKey] = set()
        #: ``<asset> <check> on <day>: <problems>`` for every failed blocking check.
        self.blocking_failures: list[str] = []

    def evaluate(self, day: dt.date, result: dg.AssetCheckResult) -> Iterator[dg.Output | dg.AssetCheckEvaluation]:
        """Yield ``result`` as ``day``'s evaluation (and, once per check, the check's output);
        nothing for a check the (subset) run did not select."""
        key = dg.AssetCheckKey(result.asset_key, result.check_name)
        if key not in self.context.selected_asset_check_keys:
            return
        spec = self.specs[key]
        if key not in self._emitted:
            # What Dagster yields for an AssetCheckResult: marks the check as run, so the steps it
            # gates wait for it (a missing output would let them proceed).
            self._emitted.add(key)
            yield dg.Output(None, output_name=self.context.assets_def.get_output_name_for_asset_check_key(key))
        evaluation = dg.AssetCheckEvaluation(
            asset_key=key.asset_key, check_name=key.name, passed=result.passed, metadata=result.metadata,
            severity=result.severity, description=spec.description, blocking=spec.blocking,
            partition=day.isoformat(),
        )
        yield evaluation if self.held_back else on_latest_materialization(evaluation, self.context.instance)
        if not result.passed and spec.blocking and result.severity == dg.AssetCheckSeverity.ERROR:
            problems = result.metadata.get("problems")
            detail = f": {problems.value}" if problems is not None and problems.value != "none" else ""
            self.blocking_failures.append(f"{key.asset_key.to_user_string()} {key.name} on {day}{detail}")

    def blocked(self, consequence: str) -> bool:
        """Whether a blocking check failed; if so, log which, and ``consequence``, as an error."""
        if self.blocking_failures:
            self.context.log.error(f"{len(self.blocking_failures)} blocking check(s) failed, so {consequence}:\n"
                                   + "\n".join(self.blocking_failures))
        return bool(self.blocking_failures)
