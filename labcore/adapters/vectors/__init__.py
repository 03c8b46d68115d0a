"""Vector stores: the port (``base``) and its Qdrant adapter (``qdrant``: local mode or a server).

Only the port is imported here; ``labcore.bootstrap`` imports the backend it needs.
"""

from labcore.adapters.vectors.base import VectorHit, VectorItem, VectorStore

__all__ = ["VectorHit", "VectorItem", "VectorStore"]
