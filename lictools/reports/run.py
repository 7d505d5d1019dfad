"""A report over a store's journal: the window defaults and the checks around :class:`UsageFold`."""

from __future__ import annotations

from itertools import chain

from lictools.errors import NotFoundError
from lictools.reports.source import journal_events
from lictools.reports.usage import UsageFold
from lictools.stores.api import Store

SLOTS = 720
"""Time slots of the charts' series (a 30-day window: one per hour; a day: one per 2 minutes)."""


def build_report(
    store: Store,
    since: float | None,
    until: float,
    by: str | None = None,
    pool: str | None = None,
    feature: str | None = None,
    retry_window: float = 300.0,
    pictures: bool = False,
) -> UsageFold:
    """Fold the store's journal over ``[since, until]`` (``since`` None: from the first event).

    ``pictures`` keeps the series the charts draw and the users and hosts of the HTML report.
    Raises NotFoundError (exit 4) when ``--pool``/``--feature`` name nothing the journal knows.
    """
    events = journal_events(store)
    first = next(events, None)
    if since is None:
        since = min(first["ts"], until) if first is not None else until
    fold = UsageFold(
        since, until, by=by, pool=pool, feature=feature, retry_window=retry_window,
        dims=("user", "host") if pictures else (), slots=SLOTS if pictures else 0,
    )
    if first is not None:
        fold.feed(chain((first,), events))
    fold.finish()
    if pool is not None and not any(key[0] == pool for key in fold.lines):
        raise NotFoundError(f"pool {pool!r} does not appear in the journal")
    if feature is not None and not fold.lines:
        where = f" of pool {pool!r}" if pool else ""
        raise NotFoundError(f"feature {feature!r}{where} does not appear in the journal")
    return fold
