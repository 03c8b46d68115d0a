"""The consumers of the event log, one module per consumer group.

``loop``         ``ConsumerLoop``: poll a batch, handle it, ack what was handled (every worker runs one)
``fanout``       group ``fanout`` on ``new-posts``: the post id into each follower's mailbox
``embedding``    group ``embedding`` on ``new-posts``: embed, store the vector (+ fresh post features)
``interests``    group ``interests`` on ``engagements``: a like moves the liker's interest vector
``features``     group ``features`` on ``engagements``: a like refreshes counters and affinities
``impressions``  group ``impressions-loader`` on ``impressions``: the DuckDB loader (embedded profile)

``labcore.bootstrap.build_workers`` wires them, for the embedded runtime and the compose services alike.
"""
