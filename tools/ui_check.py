"""``make ui-check``: run every notebook that shows an ipywidget in JupyterLab, in a real headless
Chromium, and screenshot each widget.

papermill proves the notebooks *execute*; it cannot prove that a learner *sees* the widgets (an
ipywidget needs JupyterLab's widget manager and a browser; the feed cards also the API's signed
media URLs). This script does what a learner does:

1. starts a fresh embedded stack (``feedlab up`` in a temp ``FEEDLAB_DATA_DIR`` on free ports) and
   seeds the tiny world;
2. starts ``jupyter lab`` on a free port with a random token (token auth kept) over copies of the
   notebooks with ``WORLD = "tiny"`` injected the way papermill does — copies, because JupyterLab
   saves outputs into the file it runs and committed notebooks carry none;
3. drives Debian's Chromium with Playwright (``executable_path``: Playwright's own browser download is
   not used): for each notebook in ``WIDGET_NOTEBOOKS``, in course order, it opens the notebook, clicks
   **Run → Run All Cells**, waits until the last cell (the notebook's checks) has run without a
   traceback, checks that every widget output rendered its DOM (not "Error displaying widget"; a
   text fallback shows no widget output at all), and saves ``build/ui-check/<notebook>.png`` (the
   cell of the notebook's last widget); for notebook 07 also that the feed cards show their images;
4. shuts each notebook's kernel down before the next, and stops everything it started.

Look at the screenshots: a check can prove the DOM is there, not that it reads well.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
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
from playwright.sync_api import Page, sync_playwright

from labcore.engines.process import free_port
from labcore.lab.notebook_check import CI_PARAMETERS, fresh_stack

ROOT = Path(__file__).resolve().parents[1]

CHROMIUM = "/usr/bin/chromium"  # Debian's; install with `apt-get install chromium`
CHROMIUM_FLAGS = [  # the flags this machine's Chromium needs (no GPU, no sandbox as root, closed network)
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
]  # fmt: skip
VIEWPORT = {"width": 1440, "height": 1100}

# The notebooks that display an ipywidget, and what each one shows.
WIDGET_NOTEBOOKS = {
    "01_write_path": "the post composer",
    "02_fanout": "the celebrity-threshold slider",
    "03_embeddings_and_discovery": "the like explorer",
    "04_impressions": "the seen explorer",
    "06_ranking": "the ranking-weights explorer",
    "07_feed_end_to_end": "the feed cards",
    "08_observability": "the live metrics watch",
}
# An output JupyterLab hands to the widget manager is a panel (other outputs are single renderers,
# each with a data-mime-type); the manager builds the widget's DOM (.jupyter-widgets) inside it.
WIDGET_OUTPUT = ".jp-OutputArea-output.lm-Panel"

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


def prepare_notebooks(names: list[str], work: Path) -> None:
    """Copy the notebooks into ``work`` with the CI parameters injected (papermill's own injection)."""
    import papermill as pm

    work.mkdir(parents=True, exist_ok=True)
    for name in names:
        pm.execute_notebook(
            str(ROOT / "notebooks" / f"{name}.ipynb"), str(work / f"{name}.ipynb"), parameters=CI_PARAMETERS,
            prepare_only=True, kernel_name="python3", language="python", progress_bar=False,
        )  # fmt: skip


def write_lab_settings(settings_dir: Path) -> None:
    for relative, values in LAB_SETTINGS.items():
        path = settings_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


# --- what the browser checks ------------------------------------------------------------------------
# Everything is read from the notebook on show: a restored workspace may keep others open, hidden.
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"

# How far the run got, read from the page: the checks cell ran, or a traceback. A learner answers
# "Select Kernel" with the preselected Python 3 (ipykernel); so does the check.
PROGRESS_JS = """(panel) => {
  const dialog = [...document.querySelectorAll('.jp-Dialog')].find(d => d.innerText.includes('Select Kernel'));
  if (dialog) dialog.querySelector('.jp-mod-accept').click();
  const root = document.querySelector(panel);
  if (!root) return {passed: false, error: null, askedForKernel: !!dialog};
  const outputs = [...root.querySelectorAll('.jp-OutputArea-output')].map(o => o.innerText);
  const error = outputs.find(t => t.includes('Traceback (most recent call last)'));
  // Done: the last code cell (the notebook's checks) has run, and nothing is still running.
  const prompts = [...root.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.innerText);
  const done = prompts.length > 0 && /\[\d+\]/.test(prompts[prompts.length - 1]) && !prompts.some(p => p.includes('*'));
  return {passed: done, error: error || null, askedForKernel: !!dialog};
}"""

# Every widget output: rendered means the widget manager built the view's DOM inside it.
WIDGETS_JS = """([panel, selector]) => {
  // A hidden output (a progress bar closed once its work finished) shows the learner nothing: skip it.
  const outputs = [...document.querySelector(panel).querySelectorAll(selector)]
    .filter(o => !o.classList.contains('lm-mod-hidden'));
  return outputs.map(o => ({
    rendered: !!o.querySelector('.jupyter-widgets'),
    error: o.innerText.includes('Error displaying widget') || o.innerText.includes('Loading widget'),
    text: o.innerText.slice(0, 200),
  }));
}"""

FEED_JS = """(panel) => {
  const feed = document.querySelector(panel).querySelector('.feedlab-feed');
  if (!feed) return null;
  const images = [...feed.querySelectorAll('img.feedlab-media')];
  feed.closest('.jp-Cell').scrollIntoView({block: 'start'});  // the images load lazily, when on screen
  return {
    cards: feed.querySelectorAll('.feedlab-card').length,
    images: images.length,
    loaded: images.filter(i => i.complete && i.naturalWidth > 0).length,
    badges: [...new Set([...feed.querySelectorAll('.feedlab-card .feedlab-badge')].map(b => b.dataset.source))],
    inWidget: !!feed.closest('.widget-html'),
  };
}"""


def check_notebook(page: Page, lab: JupyterLab, name: str, out_dir: Path, timeout: float) -> dict[str, Any]:
    """Run one notebook in the page; returns what rendered. Screenshots the page on failure."""
    try:
        return _check_notebook(page, lab, name, out_dir, timeout)
    except Exception:
        page.screenshot(path=str(out_dir / f"{name}_error.png"))  # what the page looked like
        (out_dir / f"{name}_page.html").write_text(page.content())
        raise


def _check_notebook(page: Page, lab: JupyterLab, name: str, out_dir: Path, timeout: float) -> dict[str, Any]:
    # A workspace of its own, reset: JupyterLab would otherwise reopen the notebooks checked before.
    page.goto(lab.url(f"/lab/workspaces/{name}/tree/{name}.ipynb", "reset"))
    notebook = page.locator(PANEL)
    notebook.locator(".jp-Cell").first.wait_for(timeout=90_000)
    # The page shows "Idle" before its kernel is connected; Run All before that asks for a kernel.
    wait_for(lambda: lab.kernel_ready(f"{name}.ipynb"), f"{name}'s kernel is started, connected and idle", 90)
    time.sleep(1.0)
    log(f"{name}: notebook open, kernel idle: Run → Run All Cells")
    page.locator("xpath=//li[contains(@class,'lm-MenuBar-item')][.//div[normalize-space()='Run']]").click()
    page.locator(
        "xpath=//li[contains(@class,'lm-Menu-item')][.//div[contains(@class,'lm-Menu-itemLabel')]"
        "[normalize-space()='Run All Cells']]"
    ).click()

    def finished() -> dict[str, Any] | None:
        state = page.evaluate(PROGRESS_JS, PANEL)
        if state["askedForKernel"]:
            log("JupyterLab asked which kernel to use: picked its default, Python 3 (ipykernel)")
        return state if state["passed"] or state["error"] else None

    state = wait_for(finished, f"{name}'s last cell (its checks) has run", timeout, interval=1.0)
    if state["error"]:
        raise RuntimeError(f"a cell of {name} failed in the browser:\n{state['error'][-2000:]}")

    def rendered() -> list[dict[str, Any]] | None:
        widgets = page.evaluate(WIDGETS_JS, [PANEL, WIDGET_OUTPUT])
        return widgets if widgets and all(w["rendered"] or w["error"] for w in widgets) else None

    widgets = wait_for(rendered, f"{name}'s widgets render", 30)
    broken = [w["text"] for w in widgets if w["error"] or not w["rendered"]]
    if broken:
        raise RuntimeError(f"{name}: {len(broken)} of {len(widgets)} widgets did not render: {broken}")
    result: dict[str, Any] = {"widgets": len(widgets)}
    if name == "07_feed_end_to_end":
        result["feed"] = wait_for(
            lambda: (f := page.evaluate(FEED_JS, PANEL)) and f["cards"] and f["images"] and f["loaded"] == f["images"] and f,
            "the feed widget shows its cards and images", 30,
        )  # fmt: skip
        target = notebook.locator(".jp-Cell", has=page.locator(".feedlab-feed")).first
    else:
        # The lesson's widget is the last one: an earlier one can be a library's progress bar.
        target = notebook.locator(".jp-Cell", has=page.locator(WIDGET_OUTPUT)).last
    target.scroll_into_view_if_needed()
    time.sleep(1.0)  # let images, plots and the scroll settle before the picture
    target.screenshot(path=str(out_dir / f"{name}.png"))
    return result


class JupyterLab:
    """The running server's URL and token, and its REST API's view of the kernels."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url, self.token = base_url, token
        self.http = httpx.Client(base_url=base_url, headers={"Authorization": f"token {token}"}, timeout=10)

    def url(self, path: str, *flags: str) -> str:
        return f"{self.base_url}{path}?{''.join(f + '&' for f in flags)}token={self.token}"

    def sessions(self, path: str) -> list[dict[str, Any]]:
        return [s for s in self.http.get("/api/sessions").json() if s.get("path") == path]

    def kernel_ready(self, path: str) -> bool:
        """The notebook's kernel runs, is idle, and the page holds a connection to it."""
        return any(
            s["kernel"]["execution_state"] == "idle" and s["kernel"].get("connections", 0) >= 1
            for s in self.sessions(path)
        )

    def shut_down(self, path: str) -> None:
        for session in self.sessions(path):
            self.http.delete(f"/api/sessions/{session['id']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="numbers or names to check (default: every widget notebook)")
    parser.add_argument("--out", default=str(ROOT / "build" / "ui-check"))
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for Run All Cells to finish, per notebook")
    args = parser.parse_args(argv)
    names = [n for n in WIDGET_NOTEBOOKS if not args.notebooks or any(n.startswith(a) for a in args.notebooks)]
    if not names:
        parser.error(f"no widget notebook matches {args.notebooks}; known: {', '.join(WIDGET_NOTEBOOKS)}")
    out_dir = Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in names:  # a partial run keeps the other notebooks' pictures
        for stale in (f"{name}.png", f"{name}_error.png", f"{name}_page.html"):
            (out_dir / stale).unlink(missing_ok=True)
    if not Path(CHROMIUM).exists():
        sys.exit(f"ui-check needs Debian's Chromium at {CHROMIUM}: sudo apt-get install chromium")

    started = time.monotonic()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="feedlab-ui-check-") as tmp_name, fresh_stack() as stack_env:
        tmp = Path(tmp_name)
        log(f"stack up (data dir {stack_env['FEEDLAB_DATA_DIR']}, api port {stack_env['FEEDLAB_API_PORT']})")
        subprocess.run([sys.executable, "-m", "labcore.lab.cli", "seed", "--size", "tiny", "--quiet"],
                       env=stack_env, check=True, cwd=ROOT)  # fmt: skip
        work = out_dir / "work"
        prepare_notebooks(names, work)
        write_lab_settings(tmp / "lab-settings")
        token, lab_port = secrets.token_hex(24), free_port()
        lab_env = stack_env | {
            "JUPYTERLAB_SETTINGS_DIR": str(tmp / "lab-settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "lab-workspaces"),
            "JUPYTER_RUNTIME_DIR": str(tmp / "jupyter-runtime"),
        }
        jupyter = [
            sys.executable, "-m", "jupyterlab", "--no-browser", "--ip", "127.0.0.1", "--port", str(lab_port),
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
        ] + (["--allow-root"] if os.geteuid() == 0 else [])  # fmt: skip
        lab = JupyterLab(f"http://127.0.0.1:{lab_port}", token)
        with process(jupyter, "jupyter lab", lab_env, out_dir / "jupyter.log") as server:

            def answers() -> bool:
                if server.poll() is not None:
                    raise RuntimeError(f"jupyter lab exited; see {out_dir / 'jupyter.log'}")
                return _ok(f"{lab.base_url}/api/status", token)

            wait_for(answers, "JupyterLab answers (with the token)", 90)
            assert not _ok(f"{lab.base_url}/api/status", None), "JupyterLab must refuse requests without the token"
            log(f"jupyter lab on {lab.base_url} (token auth on)")
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
                try:
                    for name in names:
                        page = browser.new_page(viewport=VIEWPORT)
                        try:
                            results[name] = check_notebook(page, lab, name, out_dir, args.timeout)
                        finally:
                            page.close()
                            lab.shut_down(f"{name}.ipynb")
                        log(f"{name}: {results[name]['widgets']} widgets rendered ({WIDGET_NOTEBOOKS[name]}) "
                            f"-> {out_dir / (name + '.png')}")  # fmt: skip
                finally:
                    browser.close()
    feed = results.get("07_feed_end_to_end", {}).get("feed")
    if feed:
        log(
            f"feed widget: {feed['cards']} cards, {feed['loaded']}/{feed['images']} images loaded, "
            f"badges {feed['badges']}, inside an ipywidget: {feed['inWidget']}"
        )
        if not feed["inWidget"]:
            log("the cards did not render inside the ipywidget")
            return 1
    log(f"{len(results)} notebooks, every widget rendered ({time.monotonic() - started:.0f}s in all)")
    return 0


def _ok(url: str, token: str | None) -> bool:
    try:
        headers = {"Authorization": f"token {token}"} if token else {}
        return httpx.get(url, headers=headers, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    sys.exit(main())
