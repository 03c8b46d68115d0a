"""Notebook 04's widget functions: journey tables, the query shown, the window, the seen explorer."""

from __future__ import annotations

import math
from typing import Any

import pytest

from labcore.adapters.impressions.query import seen_query, to_pyformat
from labcore.domain import ImpressionLogged
from labcore.testing import FakeLab
from labcore.widgets import impressions
from tests.helpers import journey

NOW = 1_750_000_000.25
HOUR = 3600.0


def explain(*journeys: dict[str, Any], items: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"journeys": list(journeys), "items": [{"post_id": post_id} for post_id in items]}


# --- Served vs seen ----------------------------------------------------------------------------------


def test_journey_table_shows_each_labelled_post_and_whether_it_made_the_feed() -> None:
    result = explain(
        journey("aaaa-1", filtered="seen_in_24h"), journey("bbbb-2", "discovery", rank=1), items=("bbbb-2",)
    )
    table = impressions.journey_table(result, {"#1": "aaaa-1", "#2": "bbbb-2", "#3": "cccc-3"}, {"bbbb-2": "hi"})
    assert table.loc["#1", "filtered"] == "seen_in_24h" and not table.loc["#1", "in feed"]
    assert table.loc["#2", "rank"] == 1 and table.loc["#2", "in feed"] and table.loc["#2", "content"] == "hi"
    assert table.loc["#3", "source"] == "-" and table.loc["#1", "post_id"] == "aaaa"
    assert table["rank"].isna().tolist() == [True, False, True]


def test_find_event_takes_the_newest_match() -> None:
    events = [
        {"key": "u", "value": {"user_id": "u", "post_id": "p", "seen_at": 1.0}},
        {"key": "v", "value": {"user_id": "v", "post_id": "p", "seen_at": 2.0}},
        {"key": "u", "value": {"user_id": "u", "post_id": "p", "seen_at": 3.0}},
    ]
    assert impressions.find_event(events, "u", "p")["value"]["seen_at"] == 3.0
    assert impressions.find_event(events, "u", "q") is None


def test_find_row_takes_the_newest_match() -> None:
    rows = [{"user_id": "u", "post_id": "p", "seen_at": s} for s in (5.0, 9.0, 7.0)]
    assert impressions.find_row(rows, "u", "p")["seen_at"] == 9.0
    assert impressions.find_row(rows, "v", "p") is None


def test_seen_explorer_reports_a_post_and_the_table_shows_it_filtered() -> None:
    lab = FakeLab(["p1", "p2", "p3"], now=NOW)
    explorer = impressions.SeenExplorer(lab, "u", limit=2)
    assert explorer.served == {"#1": "p1", "#2": "p2"} and explorer.content["p2"] == "text of p2"
    table = explorer.table(explorer.report(["p1"]))
    assert table.loc["#1", "filtered"] == "seen_in_24h" and table.loc["#1", "reported seen"]
    assert table.loc["#2", "filtered"] is None and not table.loc["#2", "reported seen"]


def test_seen_explorer_widget_button_reports_its_post() -> None:
    explorer = impressions.SeenExplorer(FakeLab(["p1", "p2"], now=NOW), "u")
    box = impressions.seen_explorer(explorer)
    buttons = box.children[0].children
    assert [b.description for b in buttons] == ["I saw #1", "I saw #2"]
    buttons[1].click()
    assert explorer.reported == ["p2"] and buttons[1].disabled


def test_wait_for_olap_row_polls_through_the_ingestion_lag() -> None:
    lab = FakeLab(["p1"], olap_lag=3, now=NOW)
    lab.impressions("u", ["p1"])
    row, seconds = impressions.wait_for_olap_row(lab, "u", "p1", timeout=5)
    assert row["post_id"] == "p1" and lab.olap_reads == 3 and seconds >= 0


def test_wait_for_olap_row_matches_the_moment_when_asked() -> None:
    lab: Any = FakeLab(["p1"], olap_lag=1, now=NOW)
    lab.impressions("u", ["p1"])
    with pytest.raises(TimeoutError):
        impressions.wait_for_olap_row(lab, "u", "p1", seen_at=NOW - HOUR, timeout=0.2)
    assert impressions.wait_for_olap_row(lab, "u", "p1", seen_at=NOW, timeout=1)[0]["seen_at"] == NOW


# --- The query ---------------------------------------------------------------------------------------


def test_render_sql_writes_values_in_and_quotes_strings() -> None:
    sql, params = seen_query("o'brien", NOW - 24 * HOUR, ["p1", "p2"])
    text = impressions.render_sql(sql, params)
    assert "?" not in text and "user_id = 'o''brien'" in text
    assert f"seen_at >= {math.floor(NOW - 24 * HOUR)} " in text and text.endswith("LIMIT 2")
    assert "post_id IN ('p1', 'p2')" in text


def test_render_sql_and_to_pyformat_agree_on_the_placeholders() -> None:
    sql, params = seen_query("u", NOW, ["p"])
    assert len(to_pyformat(sql, params)[1]) == len(params)
    with pytest.raises(ValueError, match="placeholders"):
        impressions.render_sql(sql, params[:-1])


def test_params_table_names_every_placeholder() -> None:
    sql, params = seen_query("u", NOW, ["p1", "p2"])
    table = impressions.params_table(params, ["p1", "p2"])
    assert list(table["binds"]) == ["user_id", "since (epoch s, floored)", "post_id 1", "post_id 2", "LIMIT"]
    assert list(table["value"]) == params and sql.count("?") == len(table)
    with pytest.raises(ValueError):
        impressions.params_table(params, ["p1"])


class FakeRedis:
    def __init__(self, entries: list[tuple[str, float]]) -> None:
        self.entries = entries
        self.asked: list[tuple[Any, ...]] = []

    def zrange(self, key: str, start: int, end: int, withscores: bool = False) -> list[tuple[str, float]]:
        self.asked.append((key, start, end, withscores))
        return self.entries


def test_recent_set_reads_the_users_sorted_set_with_scores() -> None:
    client = FakeRedis([("p1", NOW - 2 * HOUR), (b"p2", NOW)])
    frame = impressions.recent_set(client, "u", now=NOW)
    assert client.asked == [("seen:u", 0, -1, True)]
    assert list(frame["post_id"]) == ["p1", "p2"] and list(frame["hours ago"]) == [2.0, 0.0]
    assert impressions.recent_set(FakeRedis([]), "u").empty


# --- The window --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age_seconds", "counted"),
    [
        (60, True),
        (23 * HOUR, True),
        (24 * HOUR, True),  # exactly at the bound: >=
        (24 * HOUR + 0.25, True),  # the bound is floored to a whole second, so still in
        (24 * HOUR + 1.5, False),
        (25 * HOUR, False),
    ],
)
def test_seen_in_window_runs_the_real_query_on_a_scratch_duckdb(age_seconds: float, counted: bool) -> None:
    seen = impressions.seen_in_window([ImpressionLogged("u", "p", NOW - age_seconds)], NOW, 24)
    assert seen == ({"p"} if counted else set())


def test_seen_in_window_follows_the_window_setting() -> None:
    old = [ImpressionLogged("u", "p", NOW - 25 * HOUR)]
    assert impressions.seen_in_window(old, NOW, 24) == set()
    assert impressions.seen_in_window(old, NOW, 48) == {"p"}
    assert impressions.seen_in_window([], NOW) == set()


def test_seen_in_window_takes_one_user() -> None:
    with pytest.raises(ValueError, match="one user"):
        impressions.seen_in_window([ImpressionLogged("u", "p", NOW), ImpressionLogged("v", "p", NOW)], NOW)


def test_window_start_is_floored() -> None:
    assert impressions.window_start(NOW, 24) == math.floor(NOW - 24 * HOUR)


def test_window_figure_splits_impressions_at_the_window() -> None:
    figure = impressions.window_figure({"old": NOW - 25 * HOUR, "new": NOW - HOUR}, NOW, 24)
    inside, outside = figure.data
    assert list(inside.text) == ["new"] and list(outside.text) == ["old"]
    assert list(inside.x) == [-1.0] and list(outside.x) == [-25.0]
