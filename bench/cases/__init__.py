"""One module per benchmark case; each ``run(...)`` returns a ``bench.report.CaseResult``.

In-process cases (``fanout``, ``embedding``, ``recall``) build only what they measure, in a temporary
folder. Runtime cases (``feed``, ``features``, ``freshness``, ``memory``) take a ``bench.session.Session``:
a real ``feedlab up`` runtime with the world loaded.
"""
