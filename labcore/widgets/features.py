"""Notebook 05 (the feature store): read Feast's answers as tables, and join features in time.

* ``get_online_features`` / ``online_frame`` — one call to the feature server in Feast's own protocol
  (walkthrough step 7) and its column-major answer turned into one row per entity;
* ``wait_until_present`` — poll the feature server until a key's row exists (freshness);
* ``open_offline_store`` / ``registry_frame`` / ``offline_frame`` — the Feast repo of the running
  stack opened *read-only* from the notebook: what it declares, and the parquet behind it;
* ``point_in_time`` (Feast) and ``as_of_join`` (pandas) — the leakage-free join; ``latest_join``
  — the naive one that leaks; ``pit_timeline`` — both on one picture.

Why the notebook reads online features over HTTP and never from the online store file: the runtime
owns that store (its writes are ordered by a lock only that process holds), and the feature server is
how every other reader — the feed included — gets them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pandas as pd

if TYPE_CHECKING:
    import feast
    import plotly.graph_objects as go

TIMESTAMP = "event_timestamp"


# --- the feature server (online) ------------------------------------------------------------------


def get_online_features(
    url: str,
    entities: Mapping[str, Sequence[str]],
    *,
    feature_service: str | None = None,
    features: Sequence[str] | None = None,
    timeout: float = 5.0,
) -> dict[str, Any]:
    """``POST {url}/get-online-features``: by feature service name, or by an explicit feature list."""
    if (feature_service is None) == (features is None):
        raise ValueError("name a feature_service or a list of features, not both")
    body: dict[str, Any] = {"entities": {k: list(v) for k, v in entities.items()}}
    body |= {"feature_service": feature_service} if feature_service else {"features": list(features or [])}
    response = httpx.post(f"{url.rstrip('/')}/get-online-features", json=body, timeout=timeout)
    response.raise_for_status()
    return response.json()


def online_frame(answer: Mapping[str, Any], what: str = "values") -> pd.DataFrame:
    """Feast's column-major answer as one row per requested entity, one column per feature.

    ``what`` picks ``values`` (None where the status is not PRESENT; an embedding is shown as its
    length, e.g. ``"384 floats"``), ``statuses`` or ``event_timestamps``.
    """
    if what not in ("values", "statuses", "event_timestamps"):
        raise ValueError(f"what must be values, statuses or event_timestamps, not {what!r}")
    names = answer["metadata"]["feature_names"]
    columns: dict[str, list[Any]] = {}
    for name, result in zip(names, answer["results"], strict=True):
        if what != "values":
            columns[name] = list(result[what])
            continue
        cells = []
        for value, status in zip(result["values"], result["statuses"], strict=True):
            if status != "PRESENT":
                value = None
            elif isinstance(value, list):
                value = f"{len(value)} floats"
            cells.append(value)
        columns[name] = cells
    return pd.DataFrame(columns)


def is_present(answer: Mapping[str, Any], feature: str, row: int = 0) -> bool:
    """Whether ``feature`` of entity row ``row`` was found (and is not null) in an answer."""
    names = answer["metadata"]["feature_names"]
    result = answer["results"][names.index(feature)]
    return result["statuses"][row] == "PRESENT" and result["values"][row] is not None


def value_of(answer: Mapping[str, Any], feature: str, row: int = 0) -> Any:
    """The raw value of ``feature`` for entity row ``row`` (None unless PRESENT)."""
    if not is_present(answer, feature, row):
        return None
    names = answer["metadata"]["feature_names"]
    return answer["results"][names.index(feature)]["values"][row]


def wait_until_present(
    url: str,
    entities: Mapping[str, Sequence[str]],
    feature: str,
    *,
    feature_service: str,
    until: Callable[[dict[str, Any]], bool] | None = None,
    timeout: float = 10.0,
    interval: float = 0.05,
) -> tuple[dict[str, Any], float]:
    """Poll the feature server until ``feature`` is PRESENT for every entity row (and, if given,
    ``until(answer)`` holds — e.g. a like count has reached 1).

    Returns the first such answer and the seconds it took; ``TimeoutError`` after ``timeout``.
    """
    rows = len(next(iter(entities.values())))
    started = time.monotonic()
    while True:
        answer = get_online_features(url, entities, feature_service=feature_service)
        if all(is_present(answer, feature, i) for i in range(rows)) and (until is None or until(answer)):
            return answer, time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{feature} not present after {timeout:.0f} s: {online_frame(answer)}")
        time.sleep(interval)


# --- the repo and the offline store, read-only -----------------------------------------------------


def open_offline_store(
    feast_dir: Path, *, attempts: int = 10, expect: Sequence[str] = ("ranking_features", "affinity_features")
) -> feast.FeatureStore:
    """The running lab's Feast repo, opened read-only from another process.

    It reuses the ``feature_store.yaml`` the runtime generated and never rewrites it (unlike
    ``labcore.features.repo.open_store``, which renders the yaml from *this* process's settings).
    Use it for ``get_historical_features`` and for listing objects — never to apply, materialize or
    write online: the runtime owns those writes.

    Every batch rewrites ``registry.db`` in place, so a read that lands mid-write can see a
    truncated registry; the registry is read once here and retried until the services in
    ``expect`` are all there.
    """
    from feast import FeatureStore

    from labcore.features.repo import _quiet_known_advice

    _quiet_known_advice()
    yaml_path = Path(feast_dir) / "feature_store.yaml"
    if not yaml_path.exists():
        raise FileNotFoundError(f"no Feast repo at {feast_dir}: is the stack running?")
    last: Exception | None = None
    for _ in range(attempts):
        try:
            store = FeatureStore(repo_path=str(feast_dir), fs_yaml_file=yaml_path)
            services = {s.name for s in store.list_feature_services()}
            if set(expect) <= services:
                return store
            last = LookupError(f"registry lists {sorted(services)}, expected {list(expect)}")
        except Exception as exc:  # noqa: BLE001 - a half-written registry fails in many ways
            last = exc
        time.sleep(0.3)
    raise RuntimeError(f"could not read the Feast registry in {feast_dir}: {last!r}")


def registry_frame(store: feast.FeatureStore) -> pd.DataFrame:
    """Every entity, feature view and feature service the repo declares, one row each."""
    rows: list[dict[str, str]] = []
    for entity in sorted(store.list_entities(), key=lambda e: e.name):
        rows.append({"kind": "entity", "name": entity.name, "keys": entity.join_key,
                     "features": "", "description": entity.description})  # fmt: skip
    for view in sorted(store.list_feature_views(), key=lambda v: v.name):
        keys = [column.name for column in view.entity_columns]
        features = ", ".join(f.name for f in view.features)
        rows.append({"kind": "feature view", "name": view.name, "keys": ", ".join(keys),
                     "features": features, "description": view.description})  # fmt: skip
    for service in sorted(store.list_feature_services(), key=lambda s: s.name):
        views = [projection.name for projection in service.feature_view_projections]
        keys = sorted({column.name for view in views for column in store.get_feature_view(view).entity_columns})
        rows.append({"kind": "feature service", "name": service.name, "keys": ", ".join(keys),
                     "features": " + ".join(views), "description": service.description})  # fmt: skip
    return pd.DataFrame(rows)


def offline_frame(data_dir: Path, view: str) -> pd.DataFrame:
    """A view's offline data as pandas: ``<data_dir>/<view>.parquet``, the parquet dataset (a folder of
    batch and push parts, ``labcore.features.history``) that Feast joins over."""
    return pd.read_parquet(Path(data_dir) / f"{view}.parquet")


# --- joining features in time ----------------------------------------------------------------------


def point_in_time(
    store: feast.FeatureStore, entity_df: pd.DataFrame, features: Sequence[str], *, row_id: str = "request"
) -> pd.DataFrame:
    """Feast's point-in-time join, one output row per input row, in the input's order.

    Each row of ``entity_df`` (join keys + ``event_timestamp`` + anything else, e.g. a label) gets
    the latest value of each feature whose timestamp is *at or before* the row's — never a later
    one. Feast's file offline store leaves out a row for which no value existed yet (SQL offline
    stores answer nulls); ``attach`` puts it back with nulls, so no request silently vanishes.
    """
    if row_id not in entity_df.columns:
        raise ValueError(f"entity_df needs a unique {row_id!r} column to keep every row")
    request = entity_df.copy()
    # The offline rows are stored to the microsecond; finer request times would only be truncated.
    request[TIMESTAMP] = pd.to_datetime(request[TIMESTAMP], utc=True).dt.floor("us")
    joined = store.get_historical_features(entity_df=request, features=list(features)).to_df()
    names = [ref.split(":", 1)[1] for ref in features]
    return attach(entity_df, joined, names, row_id=row_id)


def attach(
    entity_df: pd.DataFrame, joined: pd.DataFrame, features: Sequence[str], *, row_id: str = "request"
) -> pd.DataFrame:
    """``entity_df`` with the ``features`` columns of ``joined`` (matched on ``row_id``); rows
    ``joined`` lacks get nulls."""
    values = joined[[row_id, *features]].drop_duplicates(subset=row_id)
    return entity_df.merge(values, on=row_id, how="left", validate="one_to_one")


def as_of_join(entity_df: pd.DataFrame, feature_rows: pd.DataFrame, key: str, features: Sequence[str]) -> pd.DataFrame:
    """The same point-in-time rule in plain pandas (``merge_asof``, backward): for cross-checking."""
    left = entity_df.assign(_order=range(len(entity_df)))
    left[TIMESTAMP] = pd.to_datetime(left[TIMESTAMP], utc=True)
    right = feature_rows[[key, TIMESTAMP, *features]].copy()
    right[TIMESTAMP] = pd.to_datetime(right[TIMESTAMP], utc=True)
    # Same unit on both sides (parquet gives microseconds, pandas defaults to nanoseconds).
    left[TIMESTAMP] = left[TIMESTAMP].astype("datetime64[ns, UTC]")
    right[TIMESTAMP] = right[TIMESTAMP].astype("datetime64[ns, UTC]")
    merged = pd.merge_asof(
        left.sort_values(TIMESTAMP), right.sort_values(TIMESTAMP), on=TIMESTAMP, by=key, direction="backward"
    )
    return merged.sort_values("_order").drop(columns="_order").reset_index(drop=True)


def latest_join(entity_df: pd.DataFrame, feature_rows: pd.DataFrame, key: str, features: Sequence[str]) -> pd.DataFrame:
    """The naive join: every row gets the *latest* value per key, whatever its timestamp.

    This is what reading today's online store for yesterday's training rows amounts to — it leaks
    the future (a like that happened after the impression ends up in the impression's features).
    """
    latest = feature_rows.sort_values(TIMESTAMP).drop_duplicates(subset=key, keep="last")
    return entity_df.merge(latest[[key, *features]], on=key, how="left")


def pit_timeline(
    feature_rows: pd.DataFrame, requests: pd.DataFrame, feature: str, *, label: str = "request"
) -> go.Figure:
    """The feature's value over time (a step line from its logged rows) and each request's moment.

    ``requests`` has ``event_timestamp``, ``label`` and the joined ``feature``; each request is a
    marker at the value the point-in-time join gave it.
    """
    import plotly.graph_objects as go

    rows = feature_rows.sort_values(TIMESTAMP)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=rows[TIMESTAMP], y=rows[feature], mode="lines+markers", line_shape="hv",
                             name=f"{feature} (offline rows)"))  # fmt: skip
    known = requests[requests[feature].notna()]
    fig.add_trace(go.Scatter(x=known[TIMESTAMP], y=known[feature], mode="markers+text", text=known[label],
                             textposition="top center", marker={"size": 12, "symbol": "x"},
                             name="requests (value the join gave)"))  # fmt: skip
    for ts in requests.loc[requests[feature].isna(), TIMESTAMP]:
        fig.add_vline(x=ts, line_dash="dot", annotation_text="nothing known yet")
    fig.update_layout(title=f"Point-in-time join: {feature} as known at each request", yaxis_title=feature,
                      height=360)  # fmt: skip
    return fig
