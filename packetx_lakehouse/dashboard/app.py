"""The PacketX traffic dashboard (``packetx-lakehouse dashboard``): a thin Streamlit page.

All SQL lives in :mod:`packetx_lakehouse.dashboard.queries`; this file only lays out what the
queries return. The serving database is opened read-only once per page run and closed, so the
pipeline can write between runs.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from dataclasses import dataclass

import altair as alt
import duckdb
import polars as pl
import streamlit as st

from packetx_lakehouse.dashboard import queries
from packetx_lakehouse.dashboard.queries import (
    Filters,
    NoDataYet,
    ServingBusy,
    format_kb,
)
from packetx_lakehouse.lib.schemas import DIRECTIONS
from packetx_lakehouse.settings import Settings

HOUR_FORMAT = "%Y-%m-%dT%H:%MZ"  # no '+' in links: a query string would decode it as a space
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
    hour_detail: pl.DataFrame | None


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
        hour_detail=queries.hour_detail(con, *linked) if linked else None,
    )


def show_headline(page: Page) -> None:
    total = page.totals["total_kb"].sum() if page.totals.height else 0.0
    f = page.filters
    st.caption(f"{f.first} … {f.last} (file dates) · total {total:,.0f} KB across {page.totals.height} user(s)")
    # The five biggest users (the rest are in the tables); the total gets room for a long number.
    columns = st.columns([1.5] + [1] * min(page.totals.height, 5))
    columns[0].metric("All selected users", format_kb(total))
    for column, row in zip(columns[1:], page.totals.iter_rows(named=True)):
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
    user, hour = linked
    st.subheader(f"{user}, {hour:%Y-%m-%d %H:00} UTC")
    if page.hour_detail is None or page.hour_detail.is_empty():
        st.info("No traffic served for this hour.")
        return
    st.dataframe(page.hour_detail.with_columns(mb=pl.col("kb") / 1024).drop("kb"), hide_index=True,
                 column_config={"mb": st.column_config.NumberColumn("MB", format="%.2f")})


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
    database = Settings.from_env().serving_path
    linked = linked_hour()
    try:
        with queries.connect(database) as con:
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
    show_freshness(page)


main()
