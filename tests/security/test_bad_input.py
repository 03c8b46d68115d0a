"""Every string field the API takes, tried with hostile values: stored verbatim or refused with a 4xx.

SQL injection, path traversal, very long strings, odd Unicode (NUL, RTL override, combining marks,
emoji, lone surrogates) and bytes that are not UTF-8 at all. Then the binding itself: ids with
quotes reach exactly their own rows in SQL (SQLite and MariaDB) and in the OLAP store.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from labcore.adapters.impressions.duckdb import DuckdbImpressions
from labcore.adapters.impressions.query import seen_query
from labcore.adapters.sql.store import SqlStore
from labcore.domain import ImpressionLogged
from labcore.errors import NotFound
from tests.security.conftest import Api

EVIL = {
    "sql_quote": "o'brien\"; DROP TABLE users; --",
    "sql_tautology": "' OR '1'='1",
    "sql_comment": "x'/**/UNION/**/SELECT/**/1--",
    "traversal": "../../../../etc/passwd",
    "traversal_encoded": "..%2F..%2Fetc%2Fpasswd",
    "very_long": "y" * 100_000,
    "nul": "a\x00b",
    "odd_unicode": "\u202egnp.exe \u0301\ufeff\U0001F600 \u0000\u200b",
    "lone_surrogate": "\ud800",
}
IDS = pytest.mark.parametrize("value", list(EVIL.values()), ids=list(EVIL))


@pytest.fixture(scope="module")
def people(api: Api) -> dict[str, str]:
    author = api.writes.create_user("bad_input_author", "Author")
    reader = api.writes.create_user("bad_input_reader", "Reader")
    post = api.writes.create_post(author.id, "a post to like")
    return {"author": author.id, "reader": reader.id, "post": post.id}


def send(api: Api, method: str, path: str, body: dict | None = None, **kwargs: object):  # noqa: ANN201
    # json.dumps escapes a lone surrogate as \ud800: valid JSON text, invalid Unicode
    content = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json"} if body is not None else {}
    response = api.client.request(method, path, content=content, headers=headers, **kwargs)
    assert response.status_code < 500, f"{method} {path}: {response.status_code} {response.text[:300]}"
    return response


@IDS
def test_user_fields_are_stored_verbatim_or_refused(api: Api, value: str) -> None:
    for body in ({"username": value, "display_name": "ok"}, {"username": f"u{abs(hash(value)) % 10**9}", "display_name": value}):
        response = send(api, "POST", "/users/", body)
        if response.status_code == 201:
            user = send(api, "GET", f"/users/{response.json()['user_id']}").json()
            assert (user["username"], user["display_name"]) == (body["username"], body["display_name"])
        else:
            assert 400 <= response.status_code < 500 and response.json()["detail"]


@IDS
def test_post_fields_are_stored_verbatim_or_refused(api: Api, people: dict[str, str], value: str) -> None:
    response = send(api, "POST", "/posts/", {"user_id": people["author"], "content": value})
    if response.status_code == 201:
        stored = send(api, "GET", f"/posts/{response.json()['post_id']}").json()
        assert stored["content"] == value
    else:
        assert 400 <= response.status_code < 500
    for body in (
        {"user_id": value, "content": "hello"},
        {"user_id": people["author"], "content": "hello", "media_base64": value, "media_type": "image"},
        {"user_id": people["author"], "content": "hello", "media_base64": "iVBORw0KGgo=", "media_type": value},
    ):
        assert 400 <= send(api, "POST", "/posts/", body).status_code < 500


@IDS
def test_ids_in_bodies_paths_and_queries_are_refused_with_4xx(api: Api, people: dict[str, str], value: str) -> None:
    reader, post = people["reader"], people["post"]
    # a URL cannot carry a lone surrogate (it is percent-encoded UTF-8): send the bytes a broken
    # client would (CESU-8); and httpx refuses URLs over 64 KiB itself, so paths get a long prefix
    in_path = "%ED%A0%80" if value == EVIL["lone_surrogate"] else quote(value[:8000], safe="")
    in_query = in_path if value == EVIL["lone_surrogate"] else value[:8000]
    for method, path, body, params in (
        ("POST", "/users/follow", {"follower_id": value, "followee_id": reader}, None),
        ("POST", "/users/follow", {"follower_id": reader, "followee_id": value}, None),
        ("POST", "/users/unfollow", {"follower_id": value, "followee_id": reader}, None),
        ("POST", f"/posts/{post}/like", {"user_id": value}, None),
        ("POST", f"/posts/{in_path}/like", {"user_id": reader}, None),
        ("POST", "/impressions", {"user_id": value, "post_ids": [post]}, None),
        ("GET", f"/feed/?user_id={in_path}", None, None),
        ("GET", "/feed/explain", None, {"user_id": in_query}),
        ("GET", f"/users/{in_path}", None, None),
        ("GET", f"/posts/{in_path}", None, None),
        ("GET", f"/introspect/interest/{in_path}", None, None),
        ("GET", f"/traces/{in_path}", None, None),
        ("GET", f"/media/{in_path}", None, {"expires": "9999999999", "signature": "0" * 64}),
    ):
        response = send(api, method, path, body, params=params)
        assert 400 <= response.status_code < 500, f"{method} {path}: {response.status_code}"


@IDS
def test_impressions_of_odd_post_ids_are_accepted_or_refused_never_a_500(api: Api, people: dict[str, str], value: str) -> None:
    response = send(api, "POST", "/impressions", {"user_id": people["reader"], "post_ids": [value, people["post"]]})
    assert response.status_code in (202, 413, 422)  # 413: the 100,000-character id outgrows the body limit
    # and the feed, whose filter now queries with that id among the user's impressions, still answers
    assert send(api, "GET", "/feed/", params={"user_id": people["reader"]}).status_code == 200


@pytest.mark.parametrize(
    "raw",
    [b'{"username": "\xff\xfe", "display_name": "x"}', b'{"username": "a\xc3", "display_name": "x"}', b"\xef\xbb\xbf{}", b"{"],
    ids=["invalid_utf8", "truncated_utf8", "bom", "truncated_json"],
)
def test_bodies_that_are_not_utf8_json_are_refused_with_4xx(api: Api, raw: bytes) -> None:
    response = api.client.post("/users/", content=raw, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, response.text


# --- the queries bind their parameters ---------------------------------------------------------------

QUOTED_IDS = ["o'brien", "' OR '1'='1", "x\"); DROP TABLE users; --", "\\'; SELECT 1; --"]


def test_sql_binds_ids_with_quotes_to_exactly_their_own_rows(sql_url: str) -> None:
    store = SqlStore.from_url(sql_url)
    store.drop_schema()
    store.create_schema()
    try:
        for i, user_id in enumerate(QUOTED_IDS):
            store.create_user(user_id, f"quoted{i}", user_id)
        for user_id in QUOTED_IDS:
            user = store.get_user(user_id)
            assert (user.id, user.display_name) == (user_id, user_id)
        assert set(store.get_users(QUOTED_IDS)) == set(QUOTED_IDS)
        with pytest.raises(NotFound):
            store.get_user("' OR 'x'='x")
        assert store.counts()["users"] == len(QUOTED_IDS)  # nothing dropped, nothing extra
    finally:
        store.drop_schema()
        store.dispose()


def test_the_olap_query_binds_the_user_id_and_post_ids() -> None:
    olap = DuckdbImpressions(":memory:")
    try:
        olap.insert([ImpressionLogged(user_id, f"post-of-{i}", 1000.0 + i) for i, user_id in enumerate(QUOTED_IDS)])
        olap.insert([ImpressionLogged("plain", "p'1", 2000.0)])
        for i, user_id in enumerate(QUOTED_IDS):
            assert olap.seen_since(user_id, 0) == {f"post-of-{i}"}
            assert olap.seen_since(user_id, 0, ["' OR '1'='1", f"post-of-{i}"]) == {f"post-of-{i}"}
        assert olap.seen_since("plain", 0, ["p'1"]) == {"p'1"}
        assert olap.count() == len(QUOTED_IDS) + 1
    finally:
        olap.close()
    sql, params = seen_query("' OR '1'='1", 0.0, ["p'1"])
    assert "'" not in sql and params[0] == "' OR '1'='1" and "p'1" in params


def test_a_user_whose_id_has_a_quote_gets_their_own_feed_and_impressions(api: Api) -> None:
    """Through the whole read path: ids are server-made, so this one is written with the write path."""
    user = api.writes.create_user("quoted_id_user", "Quoted", user_id="q'uoted\"--")
    author = api.writes.create_user("quoted_id_author", "Author")
    api.writes.follow(user.id, author.id)
    post = api.writes.create_post(author.id, "seen by a quoted id")
    feed = send(api, "GET", "/feed/", params={"user_id": user.id}).json()
    assert [i["post_id"] for i in feed["items"]] == [post.id]
    assert send(api, "POST", "/impressions", {"user_id": user.id, "post_ids": [post.id]}).status_code == 202
    assert api.stack.impressions.seen_since(user.id, 0) == set()  # not loaded in-process; no error either
    assert send(api, "GET", "/feed/", params={"user_id": user.id}).json()["items"] == []  # Redis's set filters it
    assert send(api, "GET", f"/users/{quote(user.id, safe='')}").json()["user_id"] == user.id
