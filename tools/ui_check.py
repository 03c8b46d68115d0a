"""``make ui-check``: run notebook 07 in JupyterLab, in a real headless Chromium, and screenshot the feed.

papermill proves the notebooks *execute*; it cannot prove that a learner *sees* the feed widget (an
ipywidget needs JupyterLab's widget manager, a browser and the API's signed media URLs). This script
does what a learner does:

1. starts a fresh embedded stack (``feedlab up`` in a temp ``FEEDLAB_DATA_DIR`` on free ports) and
   seeds the tiny world;
2. starts ``jupyter lab`` on free port with a random token (token auth kept) over a copy of the
   notebook with ``WORLD = "tiny"`` injected the way papermill does — a copy, because JupyterLab
   saves outputs into the file it runs and committed notebooks carry none;
3. drives Debian's Chromium through chromedriver (plain W3C WebDriver over HTTP, no extra Python
   package): opens the notebook, clicks **Run → Run All Cells**, waits for ``all checks passed``,
   checks the feed cards rendered with their images, and saves
   ``build/ui-check/07_feed_end_to_end.png`` (the feed widget) and ``..._checks.png`` (the last cell);
4. stops everything it started, in reverse order.

Chromium and chromedriver come from Debian (``apt-get install chromium chromium-driver``); run as
root, the script installs them if they are missing.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from labcore.engines.process import free_port
from labcore.lab.notebook_check import CI_PARAMETERS, fresh_stack

ROOT = Path(__file__).resolve().parents[1]

NOTEBOOK = "07_feed_end_to_end.ipynb"
CHROMIUM_FLAGS = [  # the flags this machine's Chromium needs (no GPU, no sandbox as root, closed network)
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1440,1100", "--hide-scrollbars",
]  # fmt: skip
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C WebDriver element reference key

# JupyterLab user settings for an unattended run: no news or update toasts over the screenshot, every
# cell attached to the DOM (the default windowing skips off-screen cells), no autosave.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False,
    },
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}  # fmt: skip


def log(message: str) -> None:
    print(f"[ui-check] {message}", flush=True)


def wait_for(condition: Callable[[], Any], what: str, timeout: float, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting until {what}")
        time.sleep(interval)


# --- the browser ------------------------------------------------------------------------------------
def ensure_chromium() -> tuple[str, str]:
    """Paths of chromium and chromedriver, installing Debian's packages when missing (as root)."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit("ui-check needs Debian's chromium and chromium-driver: sudo apt-get install chromium chromium-driver")
    log("installing chromium and chromium-driver with apt-get (a test tool, once per machine)")
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"], check=True, env=env)
    return shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver") or "/usr/bin/chromedriver"


class Browser:
    """A W3C WebDriver session on chromedriver: just the handful of calls this check needs."""

    def __init__(self, driver_url: str, chromium: str, profile_dir: Path) -> None:
        self.http = httpx.Client(base_url=driver_url, timeout=60.0)
        args = [*CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}"]
        caps = {"browserName": "chrome", "goog:chromeOptions": {"binary": chromium, "args": args}}
        self.session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})["sessionId"]

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.http.request(method, path, json=body)
        value = response.json().get("value")
        if response.status_code >= 400:
            raise RuntimeError(f"webdriver {method} {path}: {value}")
        return value

    def _s(self, path: str) -> str:
        return f"/session/{self.session}{path}"

    def open(self, url: str) -> None:
        self._call("POST", self._s("/url"), {"url": url})

    def js(self, script: str, *args: Any) -> Any:
        return self._call("POST", self._s("/execute/sync"), {"script": script, "args": list(args)})

    def find(self, xpath: str) -> str | None:
        found = self._call("POST", self._s("/elements"), {"using": "xpath", "value": xpath})
        return found[0][ELEMENT] if found else None

    def click(self, xpath: str, what: str, timeout: float = 30) -> None:
        element = wait_for(lambda: self.find(xpath), f"{what} is on the page", timeout)
        self._call("POST", self._s(f"/element/{element}/click"), {})

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self._call("GET", self._s("/screenshot"))))

    def close(self) -> None:
        try:
            self._call("DELETE", self._s(""))
        finally:
            self.http.close()


# --- processes ----------------------------------------------------------------------------------------
@contextmanager
def process(args: list[str], name: str, env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen]:
    """Run ``args`` for the duration of the block; SIGTERM (then SIGKILL) its own process group after."""
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log(f"stopped {name}")


def prepare_notebook(work: Path) -> Path:
    """Copy the notebook into ``work`` with the CI parameters injected (papermill's own injection)."""
    import papermill as pm

    work.mkdir(parents=True, exist_ok=True)
    target = work / NOTEBOOK
    pm.execute_notebook(
        str(ROOT / "notebooks" / NOTEBOOK), str(target), parameters=CI_PARAMETERS, prepare_only=True,
        kernel_name="python3", language="python", progress_bar=False,
    )  # fmt: skip
    return target


def write_lab_settings(settings_dir: Path) -> None:
    for relative, values in LAB_SETTINGS.items():
        path = settings_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


# --- what the browser checks ------------------------------------------------------------------------
# How far the run got, read from the page: the last cell's text, any traceback, the feed cards.
PROGRESS_JS = """
const outputs = [...document.querySelectorAll('.jp-OutputArea-output')].map(o => o.innerText);
const error = outputs.find(t => t.includes('Traceback (most recent call last)'));
const cards = document.querySelectorAll('.feedlab-feed .feedlab-card').length;
const busy = [...document.querySelectorAll('.jp-InputPrompt')].filter(p => p.innerText.includes('*')).length;
return {passed: outputs.some(t => t.includes('all checks passed')), error: error || null, cards, busy};
"""

# A learner answers "Select Kernel" with the preselected Python 3 (ipykernel); so does the check.
SELECT_KERNEL_JS = """
const dialog = [...document.querySelectorAll('.jp-Dialog')].find(d => d.innerText.includes('Select Kernel'));
if (!dialog) return false;
dialog.querySelector('.jp-mod-accept').click();
return true;
"""

FEED_JS = """
const feed = document.querySelector('.feedlab-feed');
if (!feed) return null;
const images = [...feed.querySelectorAll('img.feedlab-media')];
const cell = feed.closest('.jp-Cell');
cell.scrollIntoView({block: 'start'});
document.querySelector('.jp-WindowedPanel-outer')?.scrollBy(0, -8);
return {
  cards: feed.querySelectorAll('.feedlab-card').length,
  images: images.length,
  loaded: images.filter(i => i.complete && i.naturalWidth > 0).length,
  badges: [...new Set([...feed.querySelectorAll('.feedlab-card .feedlab-badge')].map(b => b.dataset.source))],
  inWidget: !!feed.closest('.widget-html'),
};
"""


def run_in_browser(
    browser: Browser, url: str, out_dir: Path, timeout: float, kernel_ready: Callable[[], bool]
) -> dict[str, Any]:
    try:
        return _run_in_browser(browser, url, out_dir, timeout, kernel_ready)
    except Exception:
        browser.screenshot(out_dir / "07_feed_end_to_end_error.png")  # what the page looked like
        (out_dir / "page.html").write_text(browser.js("return document.documentElement.outerHTML"))
        raise


def _run_in_browser(
    browser: Browser, url: str, out_dir: Path, timeout: float, kernel_ready: Callable[[], bool]
) -> dict[str, Any]:
    browser.open(url)
    wait_for(lambda: browser.js("return !!document.querySelector('.jp-Notebook .jp-Cell')"), "the notebook opens", 90)
    # The page shows "Idle" before its kernel is connected; Run All before that asks for a kernel.
    wait_for(kernel_ready, "the notebook's kernel is started, connected and idle", 90)
    time.sleep(1.0)
    log("notebook open, kernel idle: Run → Run All Cells")
    browser.click("//li[contains(@class,'lm-MenuBar-item')][.//div[normalize-space()='Run']]", "the Run menu")
    browser.click(
        "//li[contains(@class,'lm-Menu-item')][.//div[contains(@class,'lm-Menu-itemLabel')]"
        "[normalize-space()='Run All Cells']]", "Run → Run All Cells",
    )  # fmt: skip

    def finished() -> dict[str, Any] | None:
        if browser.js(SELECT_KERNEL_JS):
            log("JupyterLab asked which kernel to use: picked its default, Python 3 (ipykernel)")
        state = browser.js(PROGRESS_JS)
        return state if state["passed"] or state["error"] else None

    state = wait_for(finished, "the last cell prints 'all checks passed'", timeout, interval=1.0)
    if state["error"]:
        raise RuntimeError(f"a cell failed in the browser:\n{state['error'][-2000:]}")
    log("all cells ran: 'all checks passed' is on the page")
    browser.screenshot(out_dir / "07_feed_end_to_end_checks.png")

    def feed_ready() -> dict[str, Any] | None:
        feed = browser.js(FEED_JS)
        return feed if feed and feed["cards"] and feed["images"] and feed["loaded"] == feed["images"] else None

    feed = wait_for(feed_ready, "the feed widget shows its cards and images", 30)
    time.sleep(1.0)  # let the scroll settle before the picture
    browser.screenshot(out_dir / "07_feed_end_to_end.png")
    return feed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "build" / "ui-check"))
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds for Run All Cells to finish")
    args = parser.parse_args(argv)
    out_dir = Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*out_dir.glob("*.png"), out_dir / "page.html"]:
        stale.unlink(missing_ok=True)

    chromium, chromedriver = ensure_chromium()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="feedlab-ui-check-") as tmp_name, fresh_stack() as stack_env:
        tmp = Path(tmp_name)
        log(f"stack up (data dir {stack_env['FEEDLAB_DATA_DIR']}, api port {stack_env['FEEDLAB_API_PORT']})")
        subprocess.run([sys.executable, "-m", "labcore.lab.cli", "seed", "--size", "tiny", "--quiet"],
                       env=stack_env, check=True, cwd=ROOT)  # fmt: skip
        notebook = prepare_notebook(out_dir / "work")
        write_lab_settings(tmp / "lab-settings")
        token, lab_port, driver_port = secrets.token_hex(24), free_port(), free_port()
        lab_env = stack_env | {
            "JUPYTERLAB_SETTINGS_DIR": str(tmp / "lab-settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "lab-workspaces"),
            "JUPYTER_RUNTIME_DIR": str(tmp / "jupyter-runtime"),
        }
        jupyter = [
            sys.executable, "-m", "jupyterlab", "--no-browser", "--ip", "127.0.0.1", "--port", str(lab_port),
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={notebook.parent}",
        ] + (["--allow-root"] if os.geteuid() == 0 else [])  # fmt: skip
        lab_url = f"http://127.0.0.1:{lab_port}"
        with process(jupyter, "jupyter lab", lab_env, out_dir / "jupyter.log") as server:

            def answers() -> bool:
                if server.poll() is not None:
                    raise RuntimeError(f"jupyter lab exited; see {out_dir / 'jupyter.log'}")
                return _ok(f"{lab_url}/api/status", token)

            wait_for(answers, "JupyterLab answers (with the token)", 90)
            assert not _ok(f"{lab_url}/api/status", None), "JupyterLab must refuse requests without the token"
            log(f"jupyter lab on {lab_url} (token auth on)")
            with process([chromedriver, f"--port={driver_port}"], "chromedriver", os.environ.copy(),
                         out_dir / "chromedriver.log"):  # fmt: skip
                wait_for(lambda: _ok(f"http://127.0.0.1:{driver_port}/status", None), "chromedriver answers", 30)
                browser = Browser(f"http://127.0.0.1:{driver_port}", chromium, tmp / "chromium-profile")
                try:
                    feed = run_in_browser(
                        browser, f"{lab_url}/lab/tree/{NOTEBOOK}?token={token}", out_dir, args.timeout,
                        kernel_ready=lambda: _kernel_ready(lab_url, token),
                    )
                finally:
                    browser.close()
    log(
        f"feed widget rendered: {feed['cards']} cards, {feed['loaded']}/{feed['images']} images loaded, "
        f"badges {feed['badges']}, inside an ipywidget: {feed['inWidget']}"
    )
    log(f"screenshot: {out_dir / '07_feed_end_to_end.png'} ({time.monotonic() - started:.0f}s in all)")
    if not feed["inWidget"]:
        log("the cards did not render inside the ipywidget")
        return 1
    return 0


def _kernel_ready(lab_url: str, token: str) -> bool:
    """A kernel runs, is idle, and the page holds a connection to it (Jupyter's REST API)."""
    kernels = httpx.get(f"{lab_url}/api/kernels", headers={"Authorization": f"token {token}"}, timeout=5).json()
    return any(k["execution_state"] == "idle" and k.get("connections", 0) >= 1 for k in kernels)


def _ok(url: str, token: str | None) -> bool:
    try:
        headers = {"Authorization": f"token {token}"} if token else {}
        return httpx.get(url, headers=headers, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    sys.exit(main())
