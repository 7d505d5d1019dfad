"""aveva-batch: AVEVA Batch Management client connection licenses (Security Manager).

Seed 000_913904e4552ffb47.txt, the sentences this module implements:

- "A single Development Client connection license is consumed for all development client
  applications (including automation servers), which are opened from the same node."
  -> feature ``dev``; seat key = the device ID, so every dev client of one device shares one seat.
- "A single MOM Client connection license is consumed for all runtime client applications, which
  are opened from the same node. These runtime client applications can be from any of the
  products such as Batch Management, MES, or Skelta BPM."
  -> feature ``mom``, same key; ``dev`` and ``mom`` are counted separately (a node with both holds one of each).
- "Each Terminal Server session consumes a client connection license, irrespective of whether it
  is launched by the same user or a different user from different host machines."
- "The Device ID in the license server is displayed in the following format: HOST1_BMC1"
  -> with ``--terminal`` the key is ``<client host>_<node>``; without it, the node name (``BMC1``).
- "If you launch two Terminal Server sessions to the same machine from the same host (either with
  same user/different user), then a maximum of one Development client connection license for
  development clients and one MOM client connection license for runtime clients are consumed."
  -> the user is not part of the key.
- "... Terminal Server session of BMC1 from HOST1, and Terminal Server session of BMC1 from HOST2
  ... then two client connection licenses are consumed as follows: HOST1_BMC1 HOST2_BMC1"
- "A timer refreshes the connection license for active development and runtime client
  connections, at an interval of five minutes." / "The SecMngr service refreshes the client
  connections at an interval of 5 minutes and 24 hours respectively."
  -> read as: client connections every 5 minutes (option ``refresh_interval``, 300 s), the server
  license every 24 hours (option ``server_refresh_interval``, 86400 s, informational: lictools
  does not count the server license). A client that misses refreshes for the default lease of
  1200 s (AVEVA Enterprise Licensing reclaims a client license after 20 minutes) loses its seat.
- "A Development Client connection license gets released on closing the last development client
  in a particular node." / "An MOM Client connection license gets released on closing the last
  runtime client on that node."
  -> the engine frees a seat with its last session.

Device names: Windows computer names are case-insensitive, so by default (``device_case=upper``)
the key is upper-cased (``bmc1`` and ``BMC1`` are one device); ``device_case=keep`` keeps the text
as given. ``device_domain=strip`` (default) drops a DNS domain (``host1.corp.example`` ->
``HOST1``), as the device ID uses the computer name; IP addresses are kept whole. The comparison
itself is :func:`lictools.host.machine_name`, which ``remove --host`` and ``gc --check-pids`` use too.

A terminal server session needs its client host: without ``--host`` (or with an empty one, as a hook
passing an empty ``$CLIENTNAME`` gives) there is no ``HOST_NODE`` device ID, and taking the node
instead would make every such session share one seat (``BMC1_BMC1``): refused with exit 2.
"""

from __future__ import annotations

from lictools.errors import UsageError
from lictools.host import machine_name
from lictools.model import Pool, Request
from lictools.rules.base import Option, Seat, SessionView, choice, seconds
from lictools.rules.base import no_reservation_file as parse_reservation_file
from lictools.rules.base import seat_front_end as front_end

NAME = "aveva-batch"
TITLE = "AVEVA Batch Management"
SUMMARY = "one dev / mom seat per device ID: the node (BMC1), or HOST_NODE (HOST1_BMC1) for a terminal server session"
FEATURES: tuple[str, ...] = ("dev", "mom")
DEFAULT_LEASE = 1200
DETACH_OPTION = "linger"
DENIAL_TEXT: str | None = None

__all__ = [  # what this module provides as a rule (lictools.rules.base.Rule)
    "NAME", "TITLE", "SUMMARY", "FEATURES", "FEATURE_TITLES", "OPTIONS", "DEFAULT_LEASE", "DETACH_OPTION",
    "DENIAL_TEXT", "seat_key", "front_end", "lease_advice", "parse_reservation_file", "option_warnings",
]

FEATURE_TITLES = {
    "dev": "Development Client connection",
    "mom": "MOM Client connection",
}

OPTIONS = {
    "refresh_interval": Option(
        "300", seconds,
        "seconds between the refreshes Security Manager sends for active client connections (the seed's 5 minutes)",
    ),
    "server_refresh_interval": Option(
        "86400", seconds,
        "seconds between refreshes of the Batch Management server license (the seed's 24 hours; informational)",
    ),
    "device_case": Option(
        "upper", choice("upper", "keep"),
        "upper: host and node names are upper-cased in the device ID (Windows names ignore case); keep: as given",
    ),
    "device_domain": Option(
        "strip", choice("strip", "keep"),
        "strip: drop a DNS domain from host and node names (host1.corp.example -> HOST1); keep: as given",
    ),
}


def device_name(name: str, pool: Pool) -> str:
    """A host or node name as it appears in a device ID, per the pool's device_* options."""
    return machine_name(name, pool.options.get("device_case", "upper"), pool.options.get("device_domain", "strip"))


def device_id(request: Request, pool: Pool) -> str:
    """The device ID of a client: ``NODE``, or ``HOST_NODE`` inside a terminal server session."""
    node = device_name(request.node, pool)
    if request.terminal:
        if not request.host_given:
            raise UsageError(
                "--terminal needs --host, the client host of the Terminal Server session (its device ID is "
                f"HOST_{node}); --host was missing or empty (an empty $CLIENTNAME?)"
            )
        return f"{device_name(request.client_host, pool)}_{node}"
    return node


def seat_key(request: Request, pool: Pool, view: SessionView) -> Seat:
    key = device_id(request, pool)
    feature = request.feature or ""
    kind = FEATURE_TITLES.get(feature, feature)
    if request.terminal:
        why = (
            f"terminal server session from host {request.client_host} on node {request.node}: device ID "
            f"<host>_<node> = {key}; one {kind} license per device, whatever the user"
        )
    else:
        why = f"client on node {request.node}: device ID = the node name {key}; one {kind} license per device"
    return Seat(key, why)


def lease_advice(pool: Pool) -> str | None:
    """Security Manager refreshes active client connections every ``refresh_interval`` seconds (seed 000)."""
    return f"clients are expected to refresh every {pool.options.get('refresh_interval', '300')} s"


def option_warnings(options: dict[str, str]) -> list[str]:
    """A lease not longer than ``refresh_interval`` ends between two of Security Manager's refreshes."""
    lease, every = int(options.get("lease") or DEFAULT_LEASE), int(options.get("refresh_interval") or 300)
    if 0 < lease <= every:
        return [
            f"lease {lease} s is not longer than refresh_interval {every} s: a client refreshing every {every} s "
            f"can lose its seat between two refreshes; keep lease a few times refresh_interval (default {DEFAULT_LEASE})"
        ]
    return []
