"""magic-xpa: Magic xpa 4.x licenses held in the Space (threads, RIA users, Web client users).

Seed 003_e714fd6eb665695a.txt, the sentences this module implements:

- "The Magic xpa license mechanism is floating by nature (both for threads and users), with an
  option to reserve a fixed (minimum) number of license threads or users for each project."
  -> features ``threads`` (ENT), ``ria`` (RIA client users), ``web`` (Web client users); the
  engine floats seats across projects (``--project``) and honours ``lictools reserve``.
- "When a new RIA or Web client connects, the worker will usually attempt to consume a license
  from the Space. When the RIA or Web client terminates, the worker will release a license back
  into the Space." -> ``acquire`` / ``release``.
- "the Magic xpa server will check out (from the license file/server) and will write licenses to
  the Space only if that specific license feature (that is, a license feature with the same
  serial number) was not already written to the Space." -> ``license add --serial`` is idempotent
  per serial (engine.add_license).
- "In case that an engine uses a node-locked license that doesn't match its machine, that engine
  will not check-out from the license but will continue to start and process the requests"
  -> ``license add --host-lock OTHER`` loads nothing, warns, and exits 0.
- "Multiple RIA clients from the same machine accessing the same application consume one (RIA)
  license. Since version: 3.2" -> ``ria`` seat key ``ria:<host>/<app>`` when option
  ``version`` is 3.2 or later.
- "Multiple Web clients from the same machine consume one (Web) license. Since version: 4.0"
  -> ``web`` seat key ``web:<host>`` when ``version`` is 4.0.
- Earlier versions: one seat per client session. ``threads``: one seat per session (a worker
  thread checks out a license for the request it executes).
- "You can use the ReservedRIAUsersLicenses, ReservedWebClientUsersLicenses and
  ReservedThreadsLicenses attributes in the projectsStartup.xml file" -> ``lictools reserve POOL
  --from projectsStartup.xml`` (:func:`parse_reservation_file`).
- "Licenses reserved for a given project are acquired by workers in Magic xpa servers that serve
  that project before trying to acquire non-reserved licenses." -> admission.admit: reserved first.

Machine names are compared the way lictools compares machines (:func:`lictools.host.machine_name`,
as AVEVA device IDs and ``license add --host-lock`` do): without case and without a DNS domain, so
``pc1`` and ``PC1.corp.local`` are one machine; the key holds the name lower-cased (``web:pc1``). A
seat opened before domains were dropped (``web:pc1.corp.local``) is still joined by its machine's
clients while it is held. A ``ria`` client without ``--app`` cannot be grouped and takes a seat of
its own. Option ``version`` takes any version number (``4.13``); grouping follows the seed's
thresholds 3.2 (RIA) and 4.0 (Web).

A grouped seat is charged to the project of the client that opened it, for as long as a client of
that project holds it; clients of other projects joining it cost nothing. When the last client of
the charged project leaves, the engine charges the seat to the project of a client still holding it
(``recharge``, lictools/admission.py ``charge_for``), so a reservation keeps protecting its project.
"""

from __future__ import annotations

from lictools.host import machine_name
from lictools.model import Pool, Request
from lictools.rules.base import Option, ReservationFile, Seat, SessionView
from lictools.rules.base import no_lease_advice as lease_advice
from lictools.rules.base import no_option_warnings as option_warnings
from lictools.rules.base import seat_front_end as front_end

NAME = "magic-xpa"
TITLE = "Magic xpa"
SUMMARY = "floating threads / ria / web seats with per-project reservations; same-machine grouping by option version"
FEATURES: tuple[str, ...] = ("threads", "ria", "web")
FEATURE_TITLES = {"threads": "ENT", "ria": "RIA client users", "web": "Web client users"}
DEFAULT_LEASE = 3600
DETACH_OPTION = "linger"
DENIAL_TEXT: str | None = None

__all__ = [  # what this module provides as a rule (lictools.rules.base.Rule)
    "NAME", "TITLE", "SUMMARY", "FEATURES", "FEATURE_TITLES", "OPTIONS", "DEFAULT_LEASE", "DETACH_OPTION",
    "DENIAL_TEXT", "seat_key", "front_end", "lease_advice", "parse_reservation_file", "option_warnings",
]

RIA_GROUPING = (3, 2)
"""Seed 003: "Multiple RIA clients from the same machine accessing the same application consume one (RIA)
license. Since version: 3.2"."""
WEB_GROUPING = (4, 0)
"""Seed 003: "Multiple Web clients from the same machine consume one (Web) license. Since version: 4.0"."""


def _check_version(value: str) -> str:
    """A version number: 1 to 4 dot-separated whole numbers (``4.0``, ``4.13``, ``3.2``)."""
    from lictools.errors import UsageError

    parts = value.split(".")
    if not 1 <= len(parts) <= 4 or not all(p.isascii() and p.isdigit() and len(p) <= 4 for p in parts):
        raise UsageError(f"{value!r} is not a version number such as 4.0 or 4.13")
    return value


OPTIONS = {
    "version": Option(
        "4.0", _check_version,
        "compatibility version (any, e.g. 4.13) for same-machine grouping: ria per machine+application from 3.2, "
        "web per machine from 4.0",
    ),
}


def _version(pool: Pool) -> tuple[int, ...]:
    return tuple(int(part) for part in pool.options.get("version", "4.0").split("."))


def _grouped(view: SessionView, pool: Pool, request: Request, key: str, legacy: str) -> str:
    """``key``, or the key the same machine's seat was opened with before domains were dropped, while only that one is held."""
    feature = request.feature or ""
    if legacy != key and not view.count_seat_sessions(pool.name, feature, key) and view.count_seat_sessions(
        pool.name, feature, legacy
    ):
        return legacy
    return key


def seat_key(request: Request, pool: Pool, view: SessionView) -> Seat:
    version = pool.options.get("version", "4.0")
    host = machine_name(request.client_host, case="lower")
    legacy_host = request.client_host.lower()
    if request.feature == "ria":
        if _version(pool) < RIA_GROUPING:
            return Seat(f"ria:{request.session}", f"version {version}: one RIA seat per client (grouping by machine came in 3.2)")
        if not request.app:
            return Seat(f"ria:{request.session}", "RIA client without --app: cannot be grouped, one seat per client")
        return Seat(
            _grouped(view, pool, request, f"ria:{host}/{request.app}", f"ria:{legacy_host}/{request.app}"),
            f"RIA clients from one machine ({host}) on one application ({request.app}) share one seat (version {version})",
        )
    if request.feature == "web":
        if _version(pool) < WEB_GROUPING:
            return Seat(f"web:{request.session}", f"version {version}: one Web seat per client (grouping by machine came in 4.0)")
        return Seat(
            _grouped(view, pool, request, f"web:{host}", f"web:{legacy_host}"),
            f"Web clients from one machine ({host}) share one seat (version {version})",
        )
    return Seat(f"thread:{request.session}", "one threads (ENT) seat per session")


# --------------------------------------------------------------------------- projectsStartup.xml
MAX_RESERVATION_FILE = 1024 * 1024
"""The largest projectsStartup.xml accepted (1 MiB); real files are a few kilobytes."""

RESERVATION_ATTRIBUTES = {
    "ReservedThreadsLicenses": "threads",
    "ReservedRIAUsersLicenses": "ria",
    "ReservedWebClientUsersLicenses": "web",
}
"""Magic xpa 4.x reservation attributes of a Project element -> feature (seed 003)."""

LEGACY_ATTRIBUTES = {"ReservedUsersLicenses": "ria"}
"""Magic xpa 3.x: user licenses were RIA users (the Web client came with 4.x); the 4.x attribute wins."""

PROJECT_NAME_KEYS = ("ApplicationPublicName", "Name")
"""Where a Project's name is read, in this order: attribute, then child element of that name."""


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _count(text: str, project: str, attribute: str) -> int:
    from lictools.validate import whole_number

    return whole_number(text.strip(), f"project {project}: {attribute}=")


def parse_reservation_file(data: bytes) -> ReservationFile:
    """Reservations from a projectsStartup.xml: (project -> feature -> count, warnings).

    "You can use the ReservedRIAUsersLicenses, ReservedWebClientUsersLicenses and
    ReservedThreadsLicenses attributes in the projectsStartup.xml file, to reserve a number of users
    and/or thread licenses per project." (seed 003). Every Project element gives its three features
    (a missing attribute is 0: no reservation). Parsed with defusedxml (no DTD, no entities, no
    external references) and capped at :data:`MAX_RESERVATION_FILE`; anything that is not a
    well-formed, harmless file naming its projects is UsageError (exit 2).
    """
    from xml.etree.ElementTree import ParseError

    import defusedxml
    import defusedxml.ElementTree as safe_et

    from lictools import validate
    from lictools.errors import UsageError

    if len(data) > MAX_RESERVATION_FILE:
        raise UsageError(f"projects file is larger than {MAX_RESERVATION_FILE} bytes; refused")
    try:
        root = safe_et.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException as exc:
        raise UsageError(f"projects file refused: it declares a DTD, entities or external references ({type(exc).__name__})") from None
    except ParseError as exc:
        raise UsageError(f"projects file is not well-formed XML: {exc}") from None
    except (ValueError, UnicodeError, RecursionError) as exc:
        raise UsageError(f"projects file cannot be read as XML: {type(exc).__name__}") from None

    out: dict[str, dict[str, int]] = {}
    warnings: list[str] = []
    for index, element in enumerate((e for e in root.iter() if _local(e.tag) == "Project"), start=1):
        name = None
        for key in PROJECT_NAME_KEYS:
            name = element.get(key)
            if not name:
                child = next((c for c in element if _local(c.tag) == key), None)
                name = (child.text or "").strip() if child is not None else None
            if name:
                break
        if not name:
            raise UsageError(f"Project element #{index} has no ApplicationPublicName or Name")
        validate.name(name, f"project (Project element #{index})")
        if name in out:
            raise UsageError(f"project {name} appears twice in the projects file")
        counts = {feature: 0 for feature in RESERVATION_ATTRIBUTES.values()}
        for attribute, feature in LEGACY_ATTRIBUTES.items():
            legacy_value = element.get(attribute)
            if legacy_value is not None:
                counts[feature] = _count(legacy_value, name, attribute)
        for attribute, feature in RESERVATION_ATTRIBUTES.items():
            text = element.get(attribute)
            if text is not None:
                value = _count(text, name, attribute)
                for legacy, legacy_feature in LEGACY_ATTRIBUTES.items():
                    if legacy_feature == feature and element.get(legacy) is not None and counts[feature] != value:
                        warnings.append(f"project {name}: {attribute}={value} overrides the 3.x {legacy}={counts[feature]}")
                counts[feature] = value
        out[name] = counts
    if not out:
        raise UsageError("the projects file has no Project element")
    return out, warnings
