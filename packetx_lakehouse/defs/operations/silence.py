"""Device silence: every device judged against its own history, and a check naming the silent ones.

About *now*, like freshness: it runs on its own schedule (``defs/operations/watch.py``), never inside
the pipeline's runs, so a device that stops is found even when nothing else arrives, and the check
clears by itself on the first evaluation after the device resumes. It reads only ``user_hourly``
(a row per device-hour) for the history window, and rewrites two small tables.
"""


import collections
import datetime as dt
from collections.abc import Iterator

import dagster as dg

from packetx_lakehouse.defs.checks import check_spec, problems_check
from packetx_lakehouse.defs.conventions import ICEBERG_POOL, asset_key, table_spec
from packetx_lakehouse.defs.metadata import iceberg_metadata, table_metadata
from packetx_lakehouse.defs.resources import DeviceTimezonesResource, IcebergCatalogResource
from packetx_lakehouse.defs.tables import log_lost_commits
from packetx_lakehouse.lib.schemas import DEVICE_SILENCE, DEVICE_STATUS, GOLD_USER_HOURLY
from packetx_lakehouse.lib.storage.iceberg import ensure_table, read_partitions, replace_table
from packetx_lakehouse.lib.transform.silence import SilencePolicy, evaluate_silence

SILENCE_KEY, STATUS_KEY = asset_key(DEVICE_SILENCE), asset_key(DEVICE_STATUS)
DEVICES_SENDING = "devices_sending"


class SilenceConfig(dg.Config):
    """``at``: judge the devices as they stood at this UTC time (ISO 8601) instead of now."""

    at: str = ""


def judged_at(config: SilenceConfig) -> dt.datetime:
    if not config.at:
        return dt.datetime.now(dt.UTC)
    moment = dt.datetime.fromisoformat(config.at)
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def silence_assets(
    policy: SilencePolicy = SilencePolicy(), *, retry_policy: dg.RetryPolicy | None = None
) -> dg.AssetsDefinition:
    """``device_status`` and ``device_silence``, and the check that fails while a device is silent."""
    deps = [asset_key(GOLD_USER_HOURLY)]
    specs = [table_spec(t, group="operations", deps=deps, automation_condition=None) for t in (DEVICE_STATUS,
                                                                                              DEVICE_SILENCE)]
    check = check_spec(SILENCE_KEY, DEVICES_SENDING,
                       f"FAILS while a device that should be sending has sent nothing for more than its allowance "
                       f"({policy.threshold_minutes} minutes of its active hours, or twice its usual gap if longer), "
                       "naming it and since when; clears by itself once it sends again")

    @dg.multi_asset(name="device_silence", specs=specs, check_specs=[check], pool=ICEBERG_POOL,
                    retry_policy=retry_policy)
    def device_silence(
        context: dg.AssetExecutionContext, config: SilenceConfig, iceberg: IcebergCatalogResource,
        device_timezones: DeviceTimezonesResource,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        now = judged_at(config)
        catalog = iceberg.load()
        hours = read_partitions(ensure_table(catalog, GOLD_USER_HOURLY), values=policy.days_to_read(now.date()))
        report = evaluate_silence(hours, now, device_timezones.zones, device_timezones.default, policy)
        run = {"dagster.run_id": context.run.run_id}
        for key, table_def, data in ((STATUS_KEY, DEVICE_STATUS, report.status),
                                     (SILENCE_KEY, DEVICE_SILENCE, report.silences)):
            written = replace_table(ensure_table(catalog, table_def), data, run,
                                    on_retry=log_lost_commits(context, table_def))
            yield dg.MaterializeResult(asset_key=key, metadata={
                **iceberg_metadata(table_def.identifier, written), **table_metadata(data),
                "evaluated_at": now.isoformat(timespec="seconds"),
            })
        by_status = collections.Counter(report.status.column("status").to_pylist())
        for device in report.silent:
            context.log.warning(f"Silent device: {device.describe()}")
        yield problems_check(DEVICES_SENDING, report.problems(), SILENCE_KEY, metadata={
            "evaluated_at": now.isoformat(timespec="seconds"),
            "devices": dg.MetadataValue.json(dict(sorted(by_status.items()))),
            "silent": len(report.silent),
        })

    return device_silence
