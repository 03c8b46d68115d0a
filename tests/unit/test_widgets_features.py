"""Notebook 05's widget functions: Feast's answers as tables, and joins in time (no server needed)."""

from __future__ import annotations

from typing import Any

import httpx
import pandas as pd
import pytest

from labcore.widgets import features as fw

# What Feast's feature server answers for two (user_id, post_id) rows: column-major, with statuses.
EPOCH, LATER = "1970-01-01T00:00:00Z", "2026-01-01T00:00:01Z"


def result(values: list[Any], statuses: list[str], stamp: str = EPOCH) -> dict[str, Any]:
    return {"values": values, "statuses": statuses, "event_timestamps": [stamp] * len(values)}


ANSWER: dict[str, Any] = {
    "metadata": {"feature_names": ["user_id", "post_id", "follower_count", "like_count", "embedding"]},
    "results": [
        result(["u", "u"], ["PRESENT", "PRESENT"]),
        result(["p1", "p2"], ["PRESENT", "PRESENT"]),
        result([None, None], ["NOT_FOUND", "NOT_FOUND"]),
        result([0, 3], ["PRESENT", "PRESENT"], LATER),
        result([[0.1] * 384, None], ["PRESENT", "NOT_FOUND"], LATER),
    ],
}


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_online_frame_turns_columns_into_one_row_per_entity() -> None:
    table = fw.online_frame(ANSWER)
    assert table.columns.tolist() == ANSWER["metadata"]["feature_names"]
    assert table["post_id"].tolist() == ["p1", "p2"]
    assert table["like_count"].tolist() == [0, 3]
    assert table["follower_count"].isna().all()  # NOT_FOUND is shown as missing, never as a value
    assert table["embedding"].tolist()[0] == "384 floats" and table["embedding"].isna().tolist()[1]


def test_online_frame_shows_statuses_or_timestamps_on_request() -> None:
    assert fw.online_frame(ANSWER, "statuses")["follower_count"].tolist() == ["NOT_FOUND"] * 2
    assert fw.online_frame(ANSWER, "event_timestamps")["like_count"].tolist() == [LATER] * 2
    with pytest.raises(ValueError):
        fw.online_frame(ANSWER, "everything")


@pytest.mark.parametrize(
    ("feature", "row", "present", "value"),
    [
        ("like_count", 1, True, 3),
        ("like_count", 0, True, 0),
        ("follower_count", 0, False, None),
        ("embedding", 1, False, None),
    ],
)
def test_value_of_is_none_unless_present(feature: str, row: int, present: bool, value: Any) -> None:
    assert fw.is_present(ANSWER, feature, row) is present
    assert fw.value_of(ANSWER, feature, row) == value


def test_get_online_features_sends_feasts_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: dict[str, Any] = {}

    def fake_post(url: str, json: dict[str, Any], timeout: float) -> httpx.Response:
        sent.update(url=url, body=json)
        return httpx.Response(200, json=ANSWER, request=httpx.Request("POST", url))

    monkeypatch.setattr(fw.httpx, "post", fake_post)
    answer = fw.get_online_features("http://fs/", {"user_id": ("u", "u"), "post_id": ["p1", "p2"]},
                                    feature_service="ranking_features")  # fmt: skip
    assert answer == ANSWER
    assert sent["url"] == "http://fs/get-online-features"
    assert sent["body"] == {
        "entities": {"user_id": ["u", "u"], "post_id": ["p1", "p2"]},
        "feature_service": "ranking_features",
    }
    fw.get_online_features("http://fs", {"post_id": ["p1"]}, features=["post_stats:like_count"])
    assert sent["body"]["features"] == ["post_stats:like_count"] and "feature_service" not in sent["body"]
    with pytest.raises(ValueError):
        fw.get_online_features("http://fs", {"post_id": ["p1"]})


def test_wait_until_present_polls_until_the_row_and_the_condition_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    def like_count(value: int | None) -> dict[str, Any]:
        status = "NOT_FOUND" if value is None else "PRESENT"
        return {"metadata": {"feature_names": ["like_count"]}, "results": [result([value], [status])]}

    missing, zero, one = like_count(None), like_count(0), like_count(1)
    answers = iter([missing, zero, one])
    monkeypatch.setattr(fw, "get_online_features", lambda *a, **k: next(answers))
    answer, seconds = fw.wait_until_present("http://fs", {"post_id": ["p"]}, "like_count", feature_service="s",
                                            until=lambda a: fw.value_of(a, "like_count") == 1, interval=0)  # fmt: skip
    assert answer is one and seconds >= 0
    monkeypatch.setattr(fw, "get_online_features", lambda *a, **k: missing)
    with pytest.raises(TimeoutError):
        fw.wait_until_present("http://fs", {"post_id": ["p"]}, "like_count", feature_service="s", timeout=0, interval=0)


# --- joins in time --------------------------------------------------------------------------------

LOG = pd.DataFrame(
    {
        "post_id": ["p", "p", "q"],
        "like_count": [0, 1, 7],
        "event_timestamp": [ts("2026-01-01 00:00:10"), ts("2026-01-01 00:00:20"), ts("2026-01-01 00:00:05")],
    }
)
REQUESTS = pd.DataFrame(
    {
        "request": ["before", "between", "after", "other"],
        "post_id": ["p", "p", "p", "q"],
        "event_timestamp": [ts("2026-01-01 00:00:05"), ts("2026-01-01 00:00:15"), ts("2026-01-01 00:00:25"),
                            ts("2026-01-01 00:00:06")],  # fmt: skip
    }
)


def test_as_of_join_takes_the_latest_value_at_or_before_each_request() -> None:
    joined = fw.as_of_join(REQUESTS, LOG, "post_id", ["like_count"])
    assert joined["request"].tolist() == REQUESTS["request"].tolist()  # input order kept
    assert joined["like_count"].fillna(-1).tolist() == [-1, 0, 1, 7]
    exact = fw.as_of_join(REQUESTS.assign(event_timestamp=ts("2026-01-01 00:00:20")), LOG, "post_id", ["like_count"])
    assert exact.loc[2, "like_count"] == 1  # a value stamped exactly at the request time counts


def test_the_latest_join_leaks_the_future() -> None:
    leaky = fw.latest_join(REQUESTS, LOG, "post_id", ["like_count"])
    assert leaky["like_count"].tolist() == [1, 1, 1, 7]


def test_attach_keeps_every_request_even_when_the_join_dropped_it() -> None:
    # Feast's file offline store leaves out rows with no earlier value; attach puts them back as nulls.
    joined = pd.DataFrame({"request": ["between", "after"], "like_count": [0, 1], "event_timestamp": [1, 2]})
    table = fw.attach(REQUESTS, joined, ["like_count"])
    assert table["request"].tolist() == REQUESTS["request"].tolist()
    assert table["like_count"].fillna(-1).tolist() == [-1, 0, 1, -1]


def test_pit_timeline_marks_each_request_at_its_joined_value() -> None:
    requests = fw.as_of_join(REQUESTS[REQUESTS.post_id == "p"], LOG, "post_id", ["like_count"])
    fig = fw.pit_timeline(LOG[LOG.post_id == "p"], requests, "like_count")
    line, markers = fig.data
    assert list(line.y) == [0, 1] and line.line.shape == "hv"
    assert list(markers.text) == ["between", "after"] and list(markers.y) == [0, 1]
    assert any("nothing known yet" in (a.text or "") for a in fig.layout.annotations)
