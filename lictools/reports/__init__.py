"""Usage reports from the journal: the fold (:mod:`usage`), its time window and buckets (:mod:`periods`),
and where the events come from (:mod:`source`).

Nothing here is imported by ``acquire``, ``release``, ``refresh`` or ``detach``.
"""
