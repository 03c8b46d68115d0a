"""The feed widget of notebook 07: cards HTML, funnel counts, journeys, stage latency, the fallback drill."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from labcore.testing import FakeLab
from labcore.widgets.feed import (
    DRILL_FALLBACKS,
    FUNNEL_STAGES,
    SOURCE_COLORS,
    STAGES,
    age_label,
    candidate_funnel,
    candidate_sankey,
    fallback_drill,
    feed_cards,
    feed_cards_html,
    journey_links,
    journeys_frame,
    median_stage_latency,
    stage_counts,
    stage_latency_bar,
)
from tests.helpers import journey

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def item(**overrides: Any) -> dict[str, Any]:
    return {
        "post_id": "p1",
        "user_id": "u1",
        "username": "ada",
        "display_name": "Ada Lovelace",
        "content": "Notes on the analytical engine.",
        "media_url": None,
        "media_type": None,
        "like_count": 3,
        "created_at": (NOW - timedelta(hours=3)).isoformat().replace("+00:00", "Z"),
        "source": "social",
        "score": 0.61234,
    } | overrides


def feed(*items: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {
        "items": list(items),
        "fallbacks": [],
        "feature_source": "feast",
        "model_version": "formula-v1",
        "latency_ms": 42.4,
        "stage_latency_ms": {},
    } | overrides


# --- cards ------------------------------------------------------------------------------------------
def test_a_card_shows_author_content_score_age_and_like_count() -> None:
    html = feed_cards_html(feed(item()), now=NOW)
    assert html.count('class="feedlab-card"') == 1
    assert "Ada Lovelace" in html and "@ada" in html
    assert "Notes on the analytical engine." in html
    assert "0.612" in html and "♥ 3" in html
    assert "3 h ago" in html and 'title="2026-11-25 09:00:00 UTC"' in html


@pytest.mark.parametrize("source", ["social", "celebrity", "discovery"])
def test_each_source_has_its_own_coloured_badge(source: str) -> None:
    html = feed_cards_html(feed(item(source=source)), now=NOW)
    badge = re.search(rf'<span class="feedlab-badge" data-source="{source}" style="background:([^;]+);', html)
    assert badge and badge.group(1) == SOURCE_COLORS[source]
    assert len(set(SOURCE_COLORS.values())) == 3, "three sources, three colours"


def test_an_unknown_source_gets_a_neutral_badge_not_an_error() -> None:
    html = feed_cards_html(feed(item(source="experimental")), now=NOW)
    assert 'data-source="experimental" style="background:#6b7280' in html


@pytest.mark.parametrize(
    ("media_url", "media_type", "tag"),
    [
        ("http://127.0.0.1:8000/media/posts/p1.png?signature=ab&expires=1", "image/png", "img"),
        ("https://cdn.example/v.mp4", "video/mp4", "video"),
        ("http://127.0.0.1:8000/media/x.gif", "image", "img"),
    ],
)
def test_media_becomes_a_thumbnail(media_url: str, media_type: str, tag: str) -> None:
    html = feed_cards_html(feed(item(media_url=media_url, media_type=media_type)), now=NOW)
    element = re.search(rf'<{tag} class="feedlab-media" src="([^"]+)"', html)
    assert element, html
    assert element.group(1) == media_url.replace("&", "&amp;")  # attribute-escaped, same URL


@pytest.mark.parametrize("media_url", [None, "", "javascript:alert(1)", "data:image/png;base64,AAAA"])
def test_no_media_or_a_non_http_url_shows_no_thumbnail(media_url: str | None) -> None:
    html = feed_cards_html(feed(item(media_url=media_url, media_type="image/png")), now=NOW)
    assert "feedlab-media" not in html and "javascript:" not in html


def test_user_text_is_escaped() -> None:
    evil = item(content='<script>alert("x")</script>', display_name="<b>bold</b>", username='a"b')
    html = feed_cards_html(feed(evil), now=NOW)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html


def test_cards_keep_the_feed_order_and_number_it() -> None:
    html = feed_cards_html(feed(item(post_id="a", score=0.9), item(post_id="b", score=0.5)), now=NOW)
    assert re.findall(r'data-post-id="(\w)"', html) == ["a", "b"]
    assert re.findall(r'class="feedlab-rank"[^>]*>#(\d+)<', html) == ["1", "2"]


@pytest.mark.parametrize(
    ("overrides", "shown"),
    [
        ({"score": None}, "score <b style=\"color:#111827\">—</b>"),
        ({"created_at": None}, '<span class="feedlab-created" style="margin-left:auto">—</span>'),
        ({"created_at": "not a date"}, '<span class="feedlab-created" style="margin-left:auto">—</span>'),
    ],
)
def test_missing_values_show_a_dash(overrides: dict[str, Any], shown: str) -> None:
    assert shown in feed_cards_html(feed(item(**overrides)), now=NOW)


def test_the_summary_names_fallbacks_model_and_latency() -> None:
    html = feed_cards_html(feed(item(), fallbacks=["ranking:recency"], model_version="recency"), now=NOW)
    assert "1 posts · model recency · features feast · fallbacks: ranking:recency · 42 ms" in html
    assert "fallbacks: none" in feed_cards_html(feed(item()), now=NOW)


def test_an_empty_feed_says_so() -> None:
    html = feed_cards_html(feed(), now=NOW)
    assert "feedlab-card" not in html and "This feed is empty." in html


def test_the_html_is_pure() -> None:
    data = feed(item(), item(post_id="p2", source="discovery"))
    assert feed_cards_html(data, now=NOW) == feed_cards_html(data, now=NOW)


def test_feed_cards_is_an_html_widget_with_that_html() -> None:
    import ipywidgets

    widget = feed_cards(feed(item()), now=NOW)
    assert isinstance(widget, ipywidgets.HTML)
    assert widget.value == feed_cards_html(feed(item()), now=NOW)


@pytest.mark.parametrize(
    ("age", "label"),
    [
        (timedelta(seconds=5), "just now"),
        (timedelta(seconds=-30), "just now"),  # clock skew: a post "from the future"
        (timedelta(minutes=5), "5 min ago"),
        (timedelta(hours=3, minutes=59), "3 h ago"),
        (timedelta(days=2, hours=1), "2 d ago"),
    ],
)
def test_age_label(age: timedelta, label: str) -> None:
    assert age_label(NOW - age, NOW) == label


# --- the explain view -------------------------------------------------------------------------------
FEATURES = {"created_at": 1.0, "topic_similarity": 0.5}


EXPLAIN = {
    "journeys": [
        journey("s1", "social", rank=1, score=0.9, features=FEATURES),
        journey("s2", "social", filtered="seen_in_24h", score=None, features={}),
        journey("s3", "social", demoted="author_cap", dropped="below_cutoff", score=0.4, features=FEATURES),
        journey("c1", "celebrity", rank=2, score=0.8, features=FEATURES),
        journey("d1", "discovery", demoted="out_of_network_cap", dropped="below_cutoff", score=0.7, features=FEATURES),
        journey("d4", "discovery", demoted="out_of_network_cap", rank=4, score=0.65, features=FEATURES),
        journey("d2", "discovery", filtered="post_missing", score=None, features={}),
        journey("d3", "discovery", rank=3, score=0.6, features=FEATURES),
    ]
}


def test_stage_counts_shrink_stage_by_stage_per_source() -> None:
    counts = stage_counts(EXPLAIN)
    assert list(counts) == list(FUNNEL_STAGES)
    assert counts["1 retrieved"] == {"social": 3, "celebrity": 1, "discovery": 4}
    assert counts["2 not seen in 24 h"] == {"social": 2, "celebrity": 1, "discovery": 4}
    assert counts["3 scored"] == {"social": 2, "celebrity": 1, "discovery": 3}
    assert counts["4 in the feed"] == {"social": 1, "celebrity": 1, "discovery": 2}


def test_journey_links_route_every_candidate_to_one_outcome() -> None:
    links = journey_links(EXPLAIN)
    assert links[("social", "seen in 24 h")] == 1
    assert links[("not seen", "in the feed")] == 3
    assert links[("not seen", "demoted: author cap")] == 1 and links[("not seen", "demoted: out of network cap")] == 2
    assert links[("demoted: author cap", "below cutoff")] == 1
    assert links[("demoted: out of network cap", "below cutoff")] == 1
    assert links[("demoted: out of network cap", "in the feed")] == 1, "demoted, not dropped: room on the page"
    assert links[("not seen", "post missing")] == 1
    into_outcomes = sum(v for (a, _), v in links.items() if a == "not seen")
    assert into_outcomes + links[("social", "seen in 24 h")] == len(EXPLAIN["journeys"])


def test_figures_build_from_an_explain() -> None:
    funnel = candidate_funnel(EXPLAIN)
    assert [trace.name for trace in funnel.data] == ["social", "celebrity", "discovery"]
    assert list(funnel.data[0].x) == [3, 2, 2, 1]
    sankey = candidate_sankey(EXPLAIN)
    assert "in the feed" in sankey.data[0].node.label


def test_journeys_frame_lists_the_feed_first_with_outcomes_and_features() -> None:
    frame = journeys_frame(EXPLAIN)
    assert list(frame["rank"][:4]) == [1, 2, 3, 4]
    assert set(frame["outcome"]) == {"in feed", "seen_in_24h", "below_cutoff", "post_missing"}
    assert frame["demoted"][3] == "out_of_network_cap", "rank 4 is on the page although demoted"
    assert "topic_similarity" in frame.columns


def test_median_stage_latency_keeps_request_order() -> None:
    feeds = [
        {"stage_latency_ms": {s: float(i + k) for i, s in enumerate(STAGES)}} for k in (0, 100, 1)
    ]  # fmt: skip
    medians = median_stage_latency(feeds)
    assert list(medians) == list(STAGES)
    assert medians["stage1_retrieval"] == 1.0  # the cold 100 ms outlier does not move the median
    assert list(stage_latency_bar(feeds).data[0].y) == list(STAGES)
    assert len(stage_latency_bar(feeds[0]).data[0].x) == len(STAGES)  # one response works too


# --- the fallback drill -----------------------------------------------------------------------------
def test_the_drill_stops_reads_and_restarts_each_service_in_turn() -> None:
    lab = FakeLab(slow_to_recover=2)
    drill = fallback_drill(lab, "u1", recover_timeout=5)
    assert lab.calls == [f"{verb} {s}" for s in DRILL_FALLBACKS for verb in ("stop", "start")]
    assert list(drill["stopped"]) == list(DRILL_FALLBACKS)
    assert drill["fallback seen"].all() and drill["recovered"].all()
    assert list(drill["fallbacks while stopped"]) == list(DRILL_FALLBACKS.values())
    assert drill.set_index("stopped").loc["vectors", "discovery candidates"] == 0


def test_the_drill_restarts_the_service_even_when_the_read_fails() -> None:
    lab = FakeLab(fail_read_of="ranking")
    with pytest.raises(RuntimeError, match="the API broke"):
        fallback_drill(lab, "u1", {"ranking": "ranking:recency"})
    assert lab.calls == ["stop ranking", "start ranking"] and not lab.stopped
