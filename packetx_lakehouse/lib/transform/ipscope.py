"""What an IP address is: its version and scope, and which private address a device had.

Shared by silver (orienting each pair around the device) and gold (the IP and users dimensions).
Python's ``ipaddress`` only ever sees *distinct* addresses, so cost does not grow with rows.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from functools import lru_cache

import polars as pl

#: Address scopes that count as "private": the device's own side of a conversation.
PRIVATE_SCOPES = frozenset({"private", "loopback", "link_local"})

# RFC 1918 and RFC 4193 (ULA); loopback and link-local are recognised by ipaddress itself.
_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)


def ip_scope(text: str) -> tuple[int | None, str]:
    """Classify one address as ``(ip_version, scope)``; unparseable text is scope ``invalid``.

    Scopes: ``loopback``, ``link_local``, ``private`` (RFC 1918, ULA), ``multicast``,
    ``unspecified``, ``reserved``, ``public``. Only the first three are the device's side.
    """
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None, "invalid"
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return 6, ip_scope(str(ip.ipv4_mapped))[1]
    if ip.is_loopback:
        scope = "loopback"
    elif ip.is_link_local:
        scope = "link_local"
    elif any(ip in net for net in _PRIVATE_NETWORKS if net.version == ip.version):
        scope = "private"
    elif ip.is_multicast:
        scope = "multicast"
    elif ip.is_unspecified:
        scope = "unspecified"
    elif ip.is_reserved:  # includes 240.0.0.0/4, hence the broadcast address
        scope = "reserved"
    else:
        scope = "public"
    return ip.version, scope


_cached_ip_scope = lru_cache(maxsize=1 << 16)(ip_scope)


def scope_lookup(ips: Iterable[str]) -> pl.DataFrame:
    """``ip, ip_version, scope, is_private`` for each distinct address in ``ips``."""
    unique = sorted(set(ips))
    versions, scopes = zip(*map(_cached_ip_scope, unique), strict=True) if unique else ((), ())
    return pl.DataFrame(
        {"ip": unique, "ip_version": list(versions), "scope": list(scopes)},
        schema={"ip": pl.String, "ip_version": pl.Int64, "scope": pl.String},
    ).with_columns(is_private=pl.col("scope").is_in(list(PRIVATE_SCOPES)))


def dominant_private_ip(
    frame: pl.DataFrame | pl.LazyFrame, by: Sequence[str], ends: Sequence[tuple[str, str]], weight: str
) -> pl.DataFrame:
    """The private address appearing in the most rows of each ``by`` group (ties: smallest text).

    Args:
        frame: Rows (or pre-aggregated rows) with, for each conversation end, an address column
            and a private flag.
        by: Grouping columns (a user-day for orientation, a user-hour for the users dimension).
        ends: ``(ip_column, is_private_column)`` pairs, one per conversation end.
        weight: Column holding how many rows each row of ``frame`` stands for.

    Returns:
        ``by`` columns plus ``ip`` and ``rows`` (how many rows that address is an end of).
    """
    votes = pl.concat(
        [
            frame.lazy().filter(pl.col(flag)).select(*by, ip=pl.col(ip), rows=pl.col(weight))
            for ip, flag in ends
        ]
    )
    return (
        votes.group_by(*by, "ip")
        .agg(pl.col("rows").sum().cast(pl.Int64))
        .sort("rows", "ip", descending=[True, False])
        .group_by(*by, maintain_order=True)
        .first()
        .collect()
    )
