"""Ranking features: Feast online (primary), the Redis feature cache (fallback), and how both stay fresh.

``base``     the rows (``user_stats``, ``post_stats``, ``user_author_affinity``), the ``FeatureSource``
             port and the affinity formula
``feast``    ``FeastServerFeatures``: Feast's feature server over HTTP (walkthrough step 7)
``cache``    ``RedisFeatureCache``: the fallback, written alongside Feast
``writer``   ``FeatureWriter``: rows → Feast push sources + the cache + the offline history
``batch``    ``materialize``: SQL → parquet → ``feast apply`` → the online store
``repo``     the Feast deployment: ``feature_store.yaml``, definitions, the write lock
``history``  the offline side: every value a feature ever had, for point-in-time joins
``server``   Feast's own feature server, embedded in the runtime

The SQL that computes rows lives with the other SQL (``labcore.adapters.sql.feature_rows``); the
event-driven refresh is a worker (``labcore.workers.features``).
"""
