"""The read path, one module per stage (the module names are the spans' names).

``pipeline``          ``FeedPipeline.run(user_id)``: the four stages in order, with fallbacks
``stage1_retrieval``  social (mailbox + celebrity pull) and discovery (ANN) candidates
``stage2_filter``     drop what the user has seen in the last 24 h
``stage3_rank``       features + topic similarity, then the ranking service's scores
``stage4_rerank``     author diversity, the out-of-network mix, exploration, hydration
``journey``           what flows through: ``Journey`` per candidate, ``FeedItem`` per result

The names a notebook or an extension point uses are importable from ``labcore.feed`` itself.
"""

from labcore.feed.journey import FeedItem, Journey
from labcore.feed.pipeline import FeedPipeline, FeedResult
from labcore.feed.stage1_retrieval import read_mailbox
from labcore.feed.stage3_rank import cosine, fetch_features
from labcore.feed.stage4_rerank import rerank

__all__ = ["FeedItem", "FeedPipeline", "FeedResult", "Journey", "cosine", "fetch_features", "read_mailbox", "rerank"]
