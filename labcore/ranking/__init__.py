"""Ranking: turn each candidate's features into a pClick score.

``formula``   ``formula-v1``, the hand-weighted model, and ``Candidate``
``models``    a model version by name: the formula or a learned one (``get_model``)
``ab_split``  which version scores a user's feed (control / treatment by user hash)
``client``    the feed's HTTP client for the ranking service (``POST /rank``)
``learned/``  a learned ranker: dataset, training, evaluation, the registry

The ranking service itself is a deployable: ``services/ranking``.
"""
