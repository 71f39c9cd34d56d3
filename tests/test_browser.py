"""report.html and explain's page opened in a real browser (headless Chromium): no console error,
every image decoded, no request leaving the file, and a hostile class name shown as text.

Chromium is driven through its DevTools protocol over a pipe (``--remote-debugging-pipe``: JSON
messages ending in NUL on file descriptors 3 and 4), so the test needs no Python package and no
browser download; it skips when no chromium is installed (``.ci/run`` installs Debian's)."""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import time

import pytest

CHROMIUM = next(
    filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium installed (Debian: apt-get install chromium)"
)
EVIL = "<img src=x onerror=alert(1)>"
TIMEOUT = 90  # seconds; CI shares 2 cores


class DevTools:
    """A headless Chromium and its DevTools protocol on a pipe; ``events``: every event seen."""

    def __init__(self, profile):
        to_child, self._write = os.pipe()
        self._read, from_child = os.pipe()

        def onto_3_and_4():  # in the child: the pipe ends where Chromium expects them
            a, b = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_child, from_child))
            os.dup2(a, 3)
            os.dup2(b, 4)

        args = ["--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu"]
        args += ["--no-first-run", "--disable-extensions", "--disable-background-networking"]
        self.proc = subprocess.Popen(
            [CHROMIUM, *args, f"--user-data-dir={profile}", "about:blank"],
            preexec_fn=onto_3_and_4,
            close_fds=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child)
        os.close(from_child)
        self._id, self._buffer, self.events = 0, b"", []

    def send(self, method, params=None, session=None) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        while True:
            answer = self.receive()
            if answer.get("id") == self._id:
                assert "error" not in answer, (method, answer["error"])
                return answer["result"]

    def receive(self) -> dict:
        deadline = time.monotonic() + TIMEOUT
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self._read, 1 << 16)
            if not chunk:
                raise EOFError("chromium exited")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message = json.loads(raw)
        if "method" in message:
            self.events.append(message)
        return message

    def wait_for(self, event: str, session: str) -> None:
        """Until ``event``; a dialog (an injected ``alert``) is recorded and dismissed, or it
        would hold the page's load."""
        while not any(e["method"] == event for e in self.events):
            if self.receive().get("method") == "Page.javascriptDialogOpening":
                self.send("Page.handleJavaScriptDialog", {"accept": True}, session=session)

    def close(self) -> None:
        try:
            self.send("Browser.close")
            self.proc.wait(timeout=30)
        except (OSError, EOFError, TimeoutError, AssertionError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        os.close(self._write)
        os.close(self._read)


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """report.html of a tiny benchmark run whose first class is named ``EVIL``, and explain's
    page for its attributions."""
    import pandas as pd

    from exprssl.datasets import synthetic
    from exprssl.evaluation.protocol import BenchmarkConfig, run_benchmark
    from exprssl.io import write_h5ad
    from exprssl.report import write_report
    from exprssl.report.explain_page import write_explain_page

    root = tmp_path_factory.mktemp("browser")
    a = synthetic(120, 60, 3, seed=0, n_informative=30, module_size=10)
    labels = a.obs["label"].astype(str).to_numpy()
    a.obs["label"] = [EVIL if v == labels[0] else v for v in labels]
    write_h5ad(a, root / "cohort.h5ad")
    config = BenchmarkConfig(
        data=str(root / "cohort.h5ad"),
        label="label",
        out=str(root / "bench"),
        methods=["scarf"],
        baselines=["logreg"],
        seeds=1,
        splits=2,
        fractions=[0.5, 1.0],
        epochs=2,
        batch_size=32,
        encoder={"hidden_dims": [16]},
        finetune={"epochs": 2, "batch_size": 16, "patience": 2},
        bootstrap=100,
        jobs=1,
    )
    run_benchmark(config, progress=False)
    report = write_report(root / "bench")["report_html"]
    table = pd.read_csv(root / "bench" / "attributions.csv", dtype={"gene": str, "class": str})
    page = write_explain_page(table, root / "why.html", title=f"exprssl explain: {EVIL}", k=5)
    return {"report": report, "explain": page}


_CHECKS = """(async () => {
  const images = Array.from(document.images);
  await Promise.all(images.map((i) => i.decode().catch(() => null)));
  return {
    images: images.map((i) => [i.src.slice(0, 22), i.naturalWidth]),
    evil_as_text: document.body.innerText.includes(%s),
    h2_without_anchor: Array.from(document.querySelectorAll("h2")).filter((h) => !h.id).length,
    toc_links: Array.from(document.querySelectorAll("nav a")).map((a) => a.hash),
  };
})()"""


def _open(page, profile) -> tuple[dict, list[dict]]:
    """What the browser saw of ``page``: the checks' values and every event."""
    browser = DevTools(profile)
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        attached = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Page.navigate", {"url": page.as_uri()}, session=session)
        browser.wait_for("Page.loadEventFired", session)
        checks = browser.send(
            "Runtime.evaluate",
            {"expression": _CHECKS % json.dumps(EVIL), "awaitPromise": True, "returnByValue": True},
            session=session,
        )["result"]["value"]
        return checks, browser.events
    finally:
        browser.close()


@pytest.mark.parametrize("which", ["report", "explain"])
def test_the_page_renders_in_a_browser_without_error_request_or_injection(pages, which, tmp_path):
    checks, events = _open(pages[which], tmp_path / "profile")
    errors = [
        e["params"]
        for e in events
        if e["method"] == "Runtime.exceptionThrown"
        or (
            e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert")
        )
        or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
    ]
    assert errors == []
    requests = [
        e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"
    ]
    assert requests and all(url.split(":", 1)[0] in ("file", "data") for url in requests), requests
    assert not [e for e in events if e["method"] == "Page.javascriptDialogOpening"]  # no alert(1)
    images = checks["images"]
    assert len(images) == (7 if which == "report" else 2)
    assert all(src == "data:image/png;base64," and width > 0 for src, width in images), images
    assert checks["evil_as_text"]  # the class name shown as text, not parsed into an <img>
    if which == "report":
        assert checks["h2_without_anchor"] == 0 and len(checks["toc_links"]) >= 6
