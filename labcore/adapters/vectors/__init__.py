"""Vector stores: the port (``base``) and its Qdrant adapters: ``qdrant_edge`` (Qdrant's engine
in-process, the embedded profile) and ``qdrant`` (a Qdrant server, compose).

Only the port is imported here; ``labcore.bootstrap`` imports the backend it needs.
"""

from labcore.adapters.vectors.base import VectorHit, VectorItem, VectorStore

__all__ = ["VectorHit", "VectorItem", "VectorStore"]
