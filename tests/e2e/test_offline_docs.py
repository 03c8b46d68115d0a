"""``/docs`` renders with no network but loopback: Swagger UI's files come from the installed package.

A real browser (the system's headless Chromium, driven by Playwright) with every host but 127.0.0.1
unresolvable, and every non-loopback request aborted and recorded. The control case proves the
setup bites: FastAPI's stock page, which loads Swagger UI from a CDN, stays blank under it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
from fastapi.openapi.docs import get_swagger_ui_html

from tests.conftest import RunningStack

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LOOPBACK_ONLY = "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: install Debian's chromium (.ci/run does)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[LOOPBACK_ONLY])
        yield browser
        browser.close()


def offline_page(browser: object) -> tuple[object, list[str]]:
    """A page that may only reach 127.0.0.1; returns it and the list of requests it tried elsewhere."""
    page = browser.new_page()  # type: ignore[attr-defined]
    elsewhere: list[str] = []

    def only_loopback(route: object) -> None:
        url = route.request.url  # type: ignore[attr-defined]
        if urlparse(url).hostname in ("127.0.0.1", None) or url.startswith(("data:", "blob:", "about:")):
            route.continue_()  # type: ignore[attr-defined]
        else:
            elsewhere.append(url)
            route.abort()  # type: ignore[attr-defined]

    page.route("**/*", only_loopback)
    return page, elsewhere


@pytest.mark.parametrize("service", ["api", "ranking"])
def test_swagger_ui_renders_the_operations_offline(browser: object, running_stack: RunningStack, service: str) -> None:
    info = json.loads((running_stack.data_dir / "runtime.json").read_text())
    base = info["api_url"] if service == "api" else info["ranking_url"]
    page, elsewhere = offline_page(browser)
    page.goto(f"{base}/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=30_000)
    paths = set(page.locator(".opblock-summary-path").all_inner_texts())
    expected = {"/feed/", "/users/{user_id}/followers", "/health"} if service == "api" else {"/rank"}
    assert expected <= {p.replace("\u200b", "") for p in paths}, paths
    assert elsewhere == [], f"/docs reached beyond loopback: {elsewhere}"
    page.close()


def test_the_cdn_docs_page_stays_blank_without_network(browser: object, running_stack: RunningStack) -> None:
    page, elsewhere = offline_page(browser)
    stock = get_swagger_ui_html(openapi_url=f"{running_stack.api_url}/openapi.json", title="stock").body.decode()
    page.set_content(stock)
    page.wait_for_timeout(2000)
    assert page.locator(".opblock-summary-path").count() == 0
    assert any("cdn" in url for url in elsewhere), elsewhere
    page.close()
