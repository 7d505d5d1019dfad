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
  --from projectsStartup.xml`` (lictools/cli/reserve.py).
- "Licenses reserved for a given project are acquired by workers in Magic xpa servers that serve
  that project before trying to acquire non-reserved licenses." -> engine.admit: reserved first.

Machine names are compared without case (DNS names ignore case): the key holds ``--host``
lower-cased. A ``ria`` client without ``--app`` cannot be grouped and takes a seat of its own.
A grouped seat is charged to the project of the client that opened it; clients of other projects
joining it cost nothing.
"""

from __future__ import annotations

from lictools.model import Pool, Request
from lictools.rules.base import Option, Seat, choice
from lictools.stores.api import Transaction

NAME = "magic-xpa"
SUMMARY = "floating threads / ria / web seats with per-project reservations; same-machine grouping by option version"
FEATURES: tuple[str, ...] = ("threads", "ria", "web")
DEFAULT_LEASE = 3600
DETACH_OPTION = "linger"
DENIAL_TEXT = None

VERSIONS = ("3.1", "3.2", "4.0")

OPTIONS = {
    "version": Option(
        "4.0", choice(*VERSIONS),
        "compatibility version for same-machine grouping: ria per machine+application from 3.2, web per machine from 4.0",
    ),
}


def _version(pool: Pool) -> tuple[int, ...]:
    return tuple(int(part) for part in pool.options.get("version", "4.0").split("."))


def seat_key(request: Request, pool: Pool, tx: Transaction) -> Seat:
    version = pool.options.get("version", "4.0")
    host = request.host.lower()
    if request.feature == "ria":
        if _version(pool) < (3, 2):
            return Seat(f"ria:{request.session}", f"version {version}: one RIA seat per client (grouping by machine came in 3.2)")
        if not request.app:
            return Seat(f"ria:{request.session}", "RIA client without --app: cannot be grouped, one seat per client")
        return Seat(
            f"ria:{host}/{request.app}",
            f"RIA clients from one machine ({host}) on one application ({request.app}) share one seat (version {version})",
        )
    if request.feature == "web":
        if _version(pool) < (4, 0):
            return Seat(f"web:{request.session}", f"version {version}: one Web seat per client (grouping by machine came in 4.0)")
        return Seat(f"web:{host}", f"Web clients from one machine ({host}) share one seat (version {version})")
    return Seat(f"thread:{request.session}", "one threads (ENT) seat per session")
