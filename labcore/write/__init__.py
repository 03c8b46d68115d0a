"""The request side of the write path: what ``POST /posts``, likes, follows and impressions do.

``posts``        ``WritePath``: users, follows, posts (+ outbox row, one transaction) and likes
``media``        an uploaded ``media_base64`` string → checked bytes, before anything stores them
``outbox``       ``OutboxRelay``: committed outbox rows → the event log (no event without a row)
``impressions``  ``record_impressions``: the Redis recent set, then one event per post seen

What happens after an event is on the log is ``labcore.workers``.
"""
