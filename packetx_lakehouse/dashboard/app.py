"""The PacketX traffic dashboard (``packetx-lakehouse dashboard``): a thin Streamlit page.

All SQL lives in :mod:`packetx_lakehouse.dashboard.queries`; this file only lays out what the
queries return. The serving database is opened read-only once per page run and closed, so the
pipeline can write between runs. A few small Iceberg tables (device status, changes of the daily
totals) are read beside it, and "as of" an earlier state the gold panels read Iceberg's snapshots
of then instead of the serving copy, which keeps no history.
"""

from __future__ import annotations

import datetime as dt
import os
import urllib.parse
from dataclasses import dataclass

import altair as alt
import duckdb
import polars as pl
import streamlit as st
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

from packetx_lakehouse.dashboard import queries
from packetx_lakehouse.dashboard.queries import (
    LAKEHOUSE_TABLES,
    SERVED_GOLD,
    Filters,
    NoDataYet,
    ServingBusy,
)
from packetx_lakehouse.defs.resources import open_catalog
from packetx_lakehouse.lib.schemas import (
    DAILY_TOTAL_CHANGES,
    DEVICE_STATUS,
    DIRECTIONS,
    GOLD_DAILY_USER_BANDWIDTH,
    GOLD_USER_HOURLY,
)
from packetx_lakehouse.lib.serving.lakehouse_sql import S3Access, metadata_locations, views_as_of
from packetx_lakehouse.lib.storage.time_travel import AsOf, AsOfOutOfReach, kept_states, parse_as_of
from packetx_lakehouse.lib.transform.explain import Explanation
from packetx_lakehouse.lib.units import format_kb
from packetx_lakehouse.settings import Settings

HOUR_FORMAT = "%Y-%m-%dT%H:%MZ"  # no '+' in links: a query string would decode it as a space
#: Rows a markdown list shows (silent devices, changes); the rest are counted.
MAX_LISTED = 30
#: Users the headline shows (largest first), and how many metrics share a row.
HEADLINE_USERS, HEADLINE_COLUMNS = 6, 3
DIRECTION_ORDER = {direction: i for i, direction in enumerate(DIRECTIONS)}
DIRECTION_COLOURS = alt.Scale(domain=list(DIRECTIONS), range=["#4c78a8", "#f58518", "#54a24b", "#9d9d9d"])


@dataclass(frozen=True)
class Page:
    """Everything one page run shows, fetched in one read-only connection."""

    filters: Filters
    totals: pl.DataFrame
    hourly: pl.DataFrame
    daily: pl.DataFrame
    hosts: pl.DataFrame
    anomalies: pl.DataFrame
    ip_history: pl.DataFrame
    freshness: pl.DataFrame
    quarantine: pl.DataFrame
    landing_problems: pl.DataFrame
    devices: pl.DataFrame | None
    changes: pl.DataFrame | None
    explanation: Explanation | None
    flagged: dict | None


def readable(frame: pl.DataFrame) -> pl.DataFrame:
    """Days as YYYY-MM-DD and instants as UTC minutes: Streamlit would show both as local datetimes."""
    return frame.with_columns(
        pl.col(pl.Date).dt.strftime("%Y-%m-%d"),
        pl.col(pl.Datetime).dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%d %H:%M"),
    )


def linked_hour() -> tuple[str, dt.datetime] | None:
    """The user-hour an anomaly link points at (``?user=…&hour=…``), if any."""
    user, hour = st.query_params.get("user"), st.query_params.get("hour")
    if not user or not hour:
        return None
    try:
        return user, dt.datetime.strptime(hour, HOUR_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def sidebar_filters(bounds: tuple[dt.date, dt.date], all_users: list[str],
                    linked: tuple[str, dt.datetime] | None) -> Filters | None:
    """Date-range and user widgets; a linked hour preselects its day and user."""
    first, last = bounds
    default_range = (linked[1].date(),) * 2 if linked and first <= linked[1].date() <= last else bounds
    default_users = [linked[0]] if linked and linked[0] in all_users else all_users
    st.sidebar.header("Filters")
    picked = st.sidebar.date_input("Days (file date)", value=default_range, min_value=first, max_value=last)
    chosen = st.sidebar.multiselect("Users", all_users, default=default_users)
    if not isinstance(picked, tuple) or len(picked) != 2:
        st.sidebar.info("Pick the last day of the range.")
        return None
    # No user picked reads as "everyone": an empty page helps nobody.
    return Filters(picked[0], picked[1], tuple(chosen))


def load_page(filters: Filters, con: duckdb.DuckDBPyConnection, linked: tuple[str, dt.datetime] | None) -> Page:
    return Page(
        filters=filters,
        totals=queries.total_kb_by_user(con, filters),
        hourly=queries.hourly_by_direction(con, filters),
        daily=queries.daily_totals(con, filters),
        hosts=queries.top_external_hosts(con, filters),
        anomalies=queries.anomalies(con, filters),
        ip_history=queries.ip_history(con, filters.users),
        freshness=queries.freshness(con),
        quarantine=queries.quarantine_by_day(con, filters),
        landing_problems=queries.landing_problems(con, filters),
        devices=queries.device_status(con),
        changes=queries.total_changes(con, filters),
        explanation=queries.explanation(con, *linked) if linked else None,
        flagged=queries.anomaly(con, *linked) if linked else None,
    )


@st.cache_resource
def lakehouse_catalog(settings: Settings) -> Catalog:
    """The Iceberg catalog, opened once per server process."""
    return open_catalog(settings)


def as_of_choice(catalog: Catalog) -> AsOf | None:
    """The sidebar's "as of" toggle: one of the gold states Iceberg keeps (or the time in a link's ``as_of``)."""
    linked = st.query_params.get("as_of")
    try:
        kept = kept_states(catalog.load_table(GOLD_DAILY_USER_BANDWIDTH.identifier))[1:]  # [0] is now
    except (NoSuchTableError, NoSuchNamespaceError):
        kept = []
    if not st.sidebar.toggle("As of an earlier state", value=bool(linked),
                             help="Gold as it was after an earlier run: Iceberg keeps replaced states for "
                                  "PACKETX_SNAPSHOT_RETENTION_HOURS (24 h by default)."):
        return None
    options: list[AsOf] = [AsOf(snapshot_id=state.snapshot_id) for state in kept]
    labels = {state.snapshot_id: f"{state.committed_at:%Y-%m-%d %H:%M:%S} UTC · run {(state.run_id or '?')[:8]}"
              for state in kept}
    if linked:
        try:
            asked = parse_as_of(linked, dt.datetime.now(dt.UTC))
        except ValueError as exc:
            st.sidebar.error(str(exc))
            return None
        if asked not in options:
            options.insert(0, asked)
    if not options:
        st.sidebar.info("No earlier state of gold is kept yet.")
        return None
    return st.sidebar.selectbox(
        "Gold as it was after", options, index=options.index(asked) if linked else 0,
        format_func=lambda o: labels.get(o.snapshot_id) or f"{o.at:%Y-%m-%d %H:%M:%S} UTC")


def show_headline(page: Page) -> None:
    total = page.totals["total_kb"].sum() if page.totals.height else 0.0
    f = page.filters
    st.caption(f"{f.first} … {f.last} (file dates) · total {total:,.0f} KB across {page.totals.height} user(s)")
    # The total on a row of its own, then the six biggest users three to a row (the rest are in the
    # tables): a metric never gets less than a third of the page, so "460.67 GB" is never cut.
    st.metric("All selected users", format_kb(total))
    biggest = list(page.totals.head(HEADLINE_USERS).iter_rows(named=True))
    for first in range(0, len(biggest), HEADLINE_COLUMNS):
        for column, row in zip(st.columns(HEADLINE_COLUMNS), biggest[first:first + HEADLINE_COLUMNS]):
            column.metric(row["user"], format_kb(row["total_kb"]),
                          help=f"{row['total_kb']:,.0f} KB; outbound {format_kb(row['outbound_kb'])}, "
                          f"inbound {format_kb(row['inbound_kb'])}, internal {format_kb(row['internal_kb'])}")


def show_hourly(page: Page) -> None:
    st.subheader("Bandwidth per hour")
    if page.hourly.is_empty():
        st.info("No traffic in the selected range.")
        return
    # Stacked here (directions in a fixed order), as Vega-Lite does not stack bars given an x2.
    hourly = (
        page.hourly.with_columns(mb=pl.col("kb") / 1024, hour_end=pl.col("hour_utc") + pl.duration(hours=1),
                                 order=pl.col("direction").replace_strict(DIRECTION_ORDER, default=len(DIRECTIONS)))
        .sort("user", "hour_utc", "order")
        .with_columns(top=pl.col("mb").cum_sum().over("user", "hour_utc"))
        .with_columns(bottom=pl.col("top") - pl.col("mb"))
    )
    # One shared time axis, so users' charts line up hour for hour.
    f = page.filters
    domain = [dt.datetime.combine(f.first, dt.time(), dt.UTC).isoformat(),
              dt.datetime.combine(f.last + dt.timedelta(days=1), dt.time(), dt.UTC).isoformat()]
    for user in hourly["user"].unique(maintain_order=True):
        st.markdown(f"**{user}**")
        st.altair_chart(hourly_chart(hourly.filter(pl.col("user") == user), domain), width="stretch")


def hourly_chart(hourly: pl.DataFrame, domain: list[str]) -> alt.Chart:
    """One user's hours as bars stacked by direction (the data is already summed in DuckDB)."""
    hour = alt.Tooltip("hour_utc:T", title="hour (UTC)", format="%Y-%m-%d %H:00", formatType="utc")
    return (
        alt.Chart(hourly)
        .mark_bar()
        .encode(
            # Bars span [hour, hour + 1): a bar per hour stays visible on a month-long axis.
            x=alt.X("hour_utc:T", title="hour (UTC)", scale=alt.Scale(type="utc", domain=domain)),
            x2="hour_end:T",
            y=alt.Y("bottom:Q", title="MB"),
            y2="top:Q",
            color=alt.Color("direction:N", scale=DIRECTION_COLOURS, title="direction"),
            tooltip=[hour, "direction:N", alt.Tooltip("mb:Q", format=",.1f", title="MB")],
        )
        .properties(height=160)
    )


def show_daily(page: Page) -> None:
    st.subheader("Daily totals per user")
    st.dataframe(
        readable(page.daily).with_columns(pl.col(c) / 1024 for c in ("total_kb", "inbound_kb", "outbound_kb", "internal_kb",
                                                            "unknown_kb", "peak_minute_kb"))
        .rename(lambda c: c.replace("_kb", "_mb")),
        hide_index=True,
        column_config={c: st.column_config.NumberColumn(format="%.1f") for c in
                       ("total_mb", "inbound_mb", "outbound_mb", "internal_mb", "unknown_mb", "peak_minute_mb")},
    )


def show_hosts(page: Page) -> None:
    st.subheader("Top external hosts")
    if page.hosts.is_empty():
        st.info("No public remote hosts in the selected range.")
        return
    st.dataframe(
        page.hosts.with_columns(mb=pl.col("kb") / 1024, share=pl.col("share") * 100).drop("kb"),
        hide_index=True,
        column_order=["remote_ip", "mb", "share", "users"],
        column_config={"mb": st.column_config.NumberColumn("MB", format="%.1f"),
                       "share": st.column_config.ProgressColumn("share of public KB", format="%.1f%%",
                                                                min_value=0, max_value=100)},
    )


def show_anomalies(page: Page) -> None:
    st.subheader("Anomalies")
    if page.anomalies.is_empty():
        st.info("No hour stood out from its user's trailing 7-day baseline.")
        return
    lines = ["| user | hour (UTC) | MB | baseline MB | robust z |", "|---|---|---|---|---|"]
    for row in page.anomalies.iter_rows(named=True):
        hour = row["hour_utc"].astimezone(dt.UTC)
        query = urllib.parse.urlencode({"user": row["user"], "hour": hour.strftime(HOUR_FORMAT)})
        link = f"[{hour:%Y-%m-%d %H:00}](?{query})"
        lines.append(f"| {row['user']} | {link} | {row['kb'] / 1024:,.1f} | "
                     f"{row['baseline_median_kb'] / 1024:,.1f} | {row['robust_z']:.1f} |")
    st.markdown("\n".join(lines))


def show_hour_detail(page: Page, linked: tuple[str, dt.datetime]) -> None:
    """An anomaly's drill-down: the hour against the same hour of the 7 days before, and what changed most."""
    user, hour = linked
    st.subheader(f"{user}, {hour:%Y-%m-%d %H:00} UTC")
    found = page.explanation
    if found is None or found.hosts.filter(pl.col("kb") > 0).is_empty():
        st.info("No traffic served for this hour.")
        return
    left, middle, right = st.columns(3)
    left.metric("This hour", format_kb(found.kb), delta=format_kb(found.change_kb), delta_color="inverse",
                help="Against the mean of the same UTC hour on the 7 days before")
    middle.metric("Typical for this hour", format_kb(found.typical_kb))
    if page.flagged:
        right.metric("Robust z", f"{page.flagged['robust_z']:.1f}",
                     help=f"Over the user's {page.flagged['baseline_hours']} active hours of the 7 days before "
                          f"(median {format_kb(page.flagged['baseline_median_kb'])})")
    if found.minutes is not None:
        right.caption(f"Active minutes: {found.minutes}, typically {found.typical_minutes:.0f}")
    st.markdown(f"**What changed most: {found.what_changed_most}**\n\n"
                + "\n".join(f"- {finding}" for finding in found.findings))
    mb = pl.col("kb", "typical_kb", "change_kb") / 1024
    megabytes = {"kb": st.column_config.NumberColumn("MB", format="%.2f"),
                 "typical_kb": st.column_config.NumberColumn("typical MB", format="%.2f"),
                 "change_kb": st.column_config.NumberColumn("change MB", format="%.2f")}
    st.dataframe(found.hosts.with_columns(mb), hide_index=True,
                 column_config={**megabytes, "days_seen": st.column_config.NumberColumn("days seen of 7"),
                                "new": st.column_config.CheckboxColumn("new host")})
    st.dataframe(found.directions.with_columns(mb, pl.col("share", "typical_share") * 100), hide_index=True,
                 column_config={**megabytes,
                                "share": st.column_config.NumberColumn("% of the hour", format="%.0f"),
                                "typical_share": st.column_config.NumberColumn("typical %", format="%.0f")})


def show_devices(page: Page) -> None:
    st.subheader("Devices")
    if page.devices is None or page.devices.is_empty():
        st.info("Not judged yet: the fleet_watch job judges every device against its own history every ten minutes.")
        return
    silent = page.devices.filter(pl.col("status") == "silent")
    evaluated = page.devices["evaluated_at"].max()
    st.caption(f"Judged at {evaluated:%Y-%m-%d %H:%M} UTC against each device's own active hours; silent ones first.")
    if silent.height:
        st.markdown("\n".join(
            f"- **{row['user']}** silent since {row['silent_since']:%Y-%m-%d %H:%M} UTC: {row['missed_minutes']:,} "
            f"minutes of its active hours ({row['active_hours']}) without data, {row['allowed_minutes']:,} allowed"
            for row in silent.head(MAX_LISTED).iter_rows(named=True)))
    else:
        st.success("No device is silent.")
    st.dataframe(readable(page.devices.drop("evaluated_at")), hide_index=True)


def show_changes(page: Page) -> None:
    st.subheader("Changes to daily totals")
    if page.changes is None:
        st.info("Not recorded yet: the fleet_watch job records each change of a day's totals every ten minutes.")
        return
    if page.changes.is_empty():
        st.info("No day's total changed after it was built, in the selected range.")
        return
    st.caption("After each user-day was first built: late files, retractions, rebuilds. Every change, the first "
               "build included: packetx_gold.daily_total_changes.")
    lines = ["| day | changed (UTC) | user | what | file | MB | MB after | run |", "|---|---|---|---|---|---|---|---|"]
    for row in page.changes.head(MAX_LISTED).iter_rows(named=True):
        files = row["files"].replace("|", "\\|")
        lines.append(f"| {row['log_date']} | {row['changed_at']:%Y-%m-%d %H:%M} | {row['user']} | {row['kind']} | "
                     f"{files} | {row['delta_kb'] / 1024:+,.2f} | {row['kb_after'] / 1024:,.2f} | "
                     f"{(row['run_id'] or '')[:8]} |")
    if page.changes.height > MAX_LISTED:
        lines.append(f"\n… {page.changes.height - MAX_LISTED:,} more in packetx_gold.daily_total_changes")
    st.markdown("\n".join(lines))


def show_ip_history(page: Page) -> None:
    st.subheader("Local IP history")
    st.caption("From gold.users_dim (SCD type 2): one version per stretch of hours with the same device IP.")
    st.dataframe(readable(page.ip_history), hide_index=True)


def show_freshness(page: Page) -> None:
    st.subheader("Data freshness")
    st.dataframe(readable(page.freshness), hide_index=True)
    st.markdown("**Landing problems** (files not ingested as they are)")
    if page.landing_problems.is_empty():
        st.info("No landing problems: every file in the landing area was ingested as it is.")
    else:
        st.dataframe(readable(page.landing_problems), hide_index=True)
    st.markdown("**Quarantined lines per day**")
    if page.quarantine.is_empty():
        st.info("No quarantined lines in the selected range.")
        return
    st.altair_chart(
        alt.Chart(readable(page.quarantine)).mark_bar().encode(
            x=alt.X("log_date:O", title="day", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("sum(lines):Q", title="lines"),
            color=alt.Color("reason:N", legend=alt.Legend(orient="bottom", columns=2)),
            tooltip=["log_date:O", "reason:N", "lines:Q"],
        ).properties(height=220),
        width="stretch",
    )
    st.dataframe(readable(page.quarantine), hide_index=True)


def main() -> None:
    st.set_page_config(page_title="PacketX traffic", layout="wide")
    st.title("PacketX traffic")
    settings = Settings.from_env()
    database = settings.serving_path
    linked = linked_hour()
    try:
        if not database.is_file():
            raise NoDataYet(f"no serving database at {database}")
        catalog = lakehouse_catalog(settings)
        as_of = as_of_choice(catalog)
        if as_of is None:
            lakehouse, note = metadata_locations(catalog, LAKEHOUSE_TABLES), None
        else:
            now = dt.datetime.now(dt.UTC)
            # Gold as of then; the devices and the changes of the daily totals as they are now.
            resolved, lakehouse = views_as_of(catalog, (*SERVED_GOLD, GOLD_USER_HOURLY), as_of, now)
            lakehouse |= metadata_locations(catalog, (DEVICE_STATUS, DAILY_TOTAL_CHANGES))
            note = (f"As of {resolved.at:%Y-%m-%d %H:%M:%S} UTC: gold as it was then, read from Iceberg's snapshots; "
                    "devices, landing problems, quarantine and freshness are as of now.")
        s3 = S3Access.from_environment(os.environ, settings.aws_region, settings.aws_endpoint_url) \
            if settings.is_aws else None
        with queries.connect(database, lakehouse, gold_from_lakehouse=as_of is not None, s3=s3) as con:
            bounds = queries.date_bounds(con)
            if bounds is None:
                raise NoDataYet(f"{database} holds no gold rows yet")
            filters = sidebar_filters(bounds, queries.users(con), linked)
            if filters is None:
                st.stop()
            page = load_page(filters, con, linked)
    except NoDataYet as exc:
        st.info(f"No data yet — run `packetx-lakehouse demo`, or materialise the assets in the Dagster UI, "
                f"then reload this page. ({exc})")
        st.stop()
    except ServingBusy:
        st.warning("The pipeline is refreshing the serving database; retry in a few seconds.")
        st.button("Retry")
        st.stop()
    except (AsOfOutOfReach, duckdb.InvalidInputException) as exc:
        st.error(f"Not kept: {exc}")  # a state that Iceberg no longer keeps, or cannot prove
        st.stop()

    if note:
        st.warning(note)
    show_headline(page)
    if linked:
        show_hour_detail(page, linked)
    show_hourly(page)
    left, right = st.columns(2)
    with left:
        show_daily(page)
        show_ip_history(page)
    with right:
        show_hosts(page)
        show_anomalies(page)
    show_devices(page)
    show_changes(page)
    show_freshness(page)


main()
