"""Bronze's ``lines_conserved``: every line of a day's archived files is a bronze row, a quarantined
line, a header or a blank line, on a rebuild and after every refresh, judged from recorded counts."""

import datetime as dt
import json

import dagster as dg

from packetx_lakehouse.defs.bronze.assets import LINES_CONSERVED
from packetx_lakehouse.defs.conventions import NEW_LINES, REFRESH_TAG
from packetx_lakehouse.devices.generator import GeneratorOptions, generate_day
from packetx_lakehouse.runner import materialize_range

DAY = dt.date(2026, 3, 11)
#: Headers, a blank line and quarantined lines mixed in, the last line cut short.
OPTIONS = GeneratorOptions(minutes_per_day=90, pairs_per_minute=10, bad_lines=4, truncated_last_line=True)


def _lines_conserved(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (found,) = [e for e in result.get_asset_check_evaluations() if e.check_name == LINES_CONSERVED]
    return found


def _figures(evaluation: dg.AssetCheckEvaluation) -> dict[str, int]:
    return {name: evaluation.metadata[name].value
            for name in ("archive_lines", "rows", "quarantined", "headers", "blank_lines")}


def _write(lakehouse, name: str, data: bytes) -> None:
    lakehouse.landing.mkdir(parents=True, exist_ok=True)
    (lakehouse.landing / name).write_bytes(data)


def test_a_rebuild_accounts_for_every_line_a_cut_last_line_included(lakehouse):
    data = generate_day("alice", DAY, seed=5, options=OPTIONS)
    assert not data.endswith(b"\n")
    _write(lakehouse, f"alice-{DAY}.csv", data)

    result = materialize_range(lakehouse.defs, DAY, DAY, selection="group:bronze", log_level="WARNING")

    evaluation = _lines_conserved(result)
    assert evaluation.passed and evaluation.partition == DAY.isoformat()
    figures = _figures(evaluation)
    # Counted from the bytes, not from anything the pipeline says: every LF, plus the cut line.
    assert figures["archive_lines"] == data.count(b"\n") + 1
    assert figures["headers"] == 2 and figures["blank_lines"] == 1 and figures["quarantined"] == 4 + 1
    assert figures["rows"] + figures["quarantined"] + figures["headers"] + figures["blank_lines"] \
        == figures["archive_lines"]


def test_each_refresh_adds_its_new_lines_to_the_recorded_counts(lakehouse):
    data = generate_day("alice", DAY, seed=5, options=OPTIONS)
    instance = dg.DagsterInstance.ephemeral()
    seen = []
    for fraction in (0.1, 0.45, 0.8, 1.0):
        # A refresh takes whole lines only: a cut last line waits for the next one.
        part = data[: int(len(data) * fraction)]
        _write(lakehouse, f"alice-{DAY}.csv", part)
        result = materialize_range(lakehouse.defs, DAY, DAY, instance=instance, tags={REFRESH_TAG: NEW_LINES},
                                   selection="group:bronze", log_level="WARNING")
        evaluation = _lines_conserved(result)
        assert evaluation.passed, evaluation.metadata["problems"].value
        assert _figures(evaluation)["archive_lines"] == part.count(b"\n")
        seen.append(_figures(evaluation))
    # The refreshes appended (the counts grew with the file), and met the blank line and the
    # repeated header somewhere after the first tenth of the file.
    assert [f["archive_lines"] for f in seen] == sorted({f["archive_lines"] for f in seen})
    assert seen[0]["headers"] == 1 and seen[-1]["headers"] == 2 and seen[-1]["blank_lines"] == 1


def test_a_day_whose_archive_and_bronze_disagree_fails_and_nothing_downstream_is_built(lakehouse):
    _write(lakehouse, f"alice-{DAY}.csv", generate_day("alice", DAY, seed=5, options=OPTIONS))
    assert materialize_range(lakehouse.defs, DAY, DAY, log_level="WARNING").success
    # The archive says the file had one more line than bronze accounts for (a line lost on the way).
    manifest_path = lakehouse.settings.archive_dir / f"date={DAY}" / "manifest.json"
    manifest = json.loads(manifest_path.read_bytes())
    manifest["files"][f"alice-{DAY}.csv"]["lines"] += 1
    manifest_path.write_text(json.dumps(manifest))

    result = materialize_range(lakehouse.defs, DAY, DAY, raise_on_error=False, log_level="WARNING")

    assert not result.success
    evaluation = _lines_conserved(result)
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    figures = _figures(evaluation)
    assert figures["archive_lines"] == figures["rows"] + figures["quarantined"] + 2 + 1 + 1
    assert f"{figures['archive_lines']:,} lines in the day's archived files" in evaluation.metadata["problems"].value
    assert "(-1)" in evaluation.metadata["problems"].value
    built = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "packetx_raw/packets" in built and not any(key.startswith(("packetx_silver", "packetx_gold")) for key in built)
