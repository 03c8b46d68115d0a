"""The offline feature history: parts per write, folded without losing what a point-in-time join sees."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from labcore.features.base import UserStats
from labcore.features.history import FeatureHistory, changed_rows
from labcore.features.writer import USER_STATS_SCHEMA, arrow_table

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def users(at: datetime, **followers: int) -> pa.Table:
    rows = [UserStats(name, count, 0, 0, 0.0) for name, count in followers.items()]
    return arrow_table(rows, USER_STATS_SCHEMA, at)


def test_fold_keeps_changes_only(tmp_path: Path) -> None:
    history = FeatureHistory(tmp_path)
    history.write_batch("user_stats", users(T0, alice=1, bob=5))
    history.append("user_stats", users(T0 + timedelta(minutes=1), alice=2))  # a follow: changed
    history.write_batch("user_stats", users(T0 + timedelta(minutes=5), alice=2, bob=5))  # nothing changed
    history.write_batch("user_stats", users(T0 + timedelta(minutes=10), alice=2, bob=6))

    parts = [p.name.split("-")[0] for p in history.parts("user_stats")]
    assert parts == ["history", "batch"]  # older parts folded; the newest snapshot stays whole
    frame = history.read("user_stats").sort_values(["user_id", "event_timestamp"])
    seen = [(r.user_id, r.follower_count, r.event_timestamp.to_pydatetime()) for r in frame.itertuples()]
    assert seen == [
        ("alice", 1, T0),
        ("alice", 2, T0 + timedelta(minutes=1)),
        ("alice", 2, T0 + timedelta(minutes=10)),  # the newest snapshot, whole
        ("bob", 5, T0),
        ("bob", 6, T0 + timedelta(minutes=10)),
    ]


def test_changed_rows_compares_lists_by_presence() -> None:
    table = pa.table(
        {
            "post_id": ["p", "p", "p"],
            "embedding": [None, [0.1, 0.2], [0.1, 0.2]],
            "event_timestamp": [T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)],
        },
        schema=pa.schema(
            [("post_id", pa.string()), ("embedding", pa.list_(pa.float32())), ("event_timestamp", pa.timestamp("us", tz="UTC"))]
        ),
    )
    assert changed_rows(table, ["post_id"]).num_rows == 2  # None → vector is a change; equal vectors are not


def test_a_pre_history_snapshot_file_becomes_the_first_part(tmp_path: Path) -> None:
    pq.write_table(users(T0, alice=1), tmp_path / "user_stats.parquet")  # the old layout: one file
    history = FeatureHistory(tmp_path)
    history.append("user_stats", users(T0 + timedelta(minutes=1), alice=3))
    assert (tmp_path / "user_stats.parquet").is_dir()
    assert sorted(history.read("user_stats")["follower_count"]) == [1, 3]


def test_parts_being_written_are_invisible(tmp_path: Path) -> None:
    history = FeatureHistory(tmp_path)
    (history.dataset("user_stats") / ".push-1-abc.parquet.tmp").write_bytes(b"half a file")
    assert history.parts("user_stats") == []


def test_many_pushes_are_bundled_without_losing_a_row(tmp_path: Path) -> None:
    history = FeatureHistory(tmp_path)
    for minute in range(70):
        history.append("user_stats", users(T0 + timedelta(minutes=minute), alice=minute % 3))
    assert len(history.parts("user_stats")) < 10
    assert len(history.read("user_stats")) == 70  # bundling keeps every row; only a fold drops repeats
