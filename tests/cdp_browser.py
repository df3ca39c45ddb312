"""A headless Chromium driven over the DevTools protocol on a pipe (test helper).

No Python dependency and no network port: Chromium is started with
``--remote-debugging-pipe`` and reads protocol messages (JSON, each ended by a NUL byte) on
file descriptor 3 and writes its answers and events on descriptor 4. A small ``bash -c exec``
wrapper puts our pipe ends on those descriptor numbers. The browser is Debian's
``/usr/bin/chromium``; tests skip when it is absent.

Every console error, uncaught exception, failed resource load and non-``file:`` request of
the page is recorded in :attr:`Browser.errors` / :attr:`Browser.requests`.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--mute-audio",
         "--remote-debugging-pipe"]


class BrowserError(RuntimeError):
    """The browser answered a command with an error, or did not answer in time."""


class Browser:
    """One headless Chromium with one page (a flattened DevTools session)."""

    def __init__(self, *, timeout_s: float = 60.0, download_dir=None):
        self.timeout_s = timeout_s
        self.profile = tempfile.mkdtemp(prefix="qrspec-chromium-")  # new, empty profile
        cmd_r, self._cmd_w = os.pipe()
        self._res_r, res_w = os.pipe()
        self.proc = subprocess.Popen(
            # bash, not sh: dash only redirects single-digit descriptors
            ["bash", "-c", f'exec "$0" "$@" 3<&{cmd_r} 4>&{res_w}', str(CHROMIUM), *FLAGS,
             f"--user-data-dir={self.profile}", "about:blank"],
            pass_fds=(cmd_r, res_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(cmd_r)
        os.close(res_w)
        self._buf = b""
        self._next_id = 0
        self.events: list[dict] = []
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.downloads: dict[str, dict] = {}
        self.session = None
        try:
            target = self.call("Target.createTarget", url="about:blank")["targetId"]
            self.session = self.call("Target.attachToTarget", targetId=target,
                                     flatten=True)["sessionId"]
            for domain in ("Runtime", "Page", "Log", "Network"):
                self.call(f"{domain}.enable", session=True)
            if download_dir is not None:
                self.call("Browser.setDownloadBehavior", behavior="allow",
                          downloadPath=str(download_dir), eventsEnabled=True)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ protocol
    def _send(self, method, params, session):
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        return self._next_id

    def _read(self, deadline):
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("no message from the browser in time")
            ready, _, _ = select.select([self._res_r], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(self._res_r, 1 << 20)
                if not chunk:
                    raise BrowserError("the browser closed its pipe")
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        msg = json.loads(raw)
        if "method" in msg:
            self._record(msg)
        return msg

    def _record(self, ev):
        self.events.append(ev)
        m, p = ev["method"], ev.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            self.errors.append("console: " + " ".join(
                str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.errors.append("exception: " + d.get("text", "") + " " +
                               str(d.get("exception", {}).get("description", "")))
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            e = p["entry"]
            self.errors.append(f"log: {e.get('text')} {e.get('url', '')}")
        elif m == "Network.requestWillBeSent":
            self.requests.append(p.get("request", {}).get("url", ""))
        elif m == "Browser.downloadProgress":
            self.downloads[p.get("guid", "")] = p
        elif m == "Browser.downloadWillBegin":
            self.downloads.setdefault(p.get("guid", ""), {}).update(
                suggestedFilename=p.get("suggestedFilename"))

    def call(self, method, *, session=False, **params):
        """Send a command and return its result (raises BrowserError on an error answer)."""
        mid = self._send(method, params, session)
        deadline = time.monotonic() + self.timeout_s
        while True:
            msg = self._read(deadline)
            if msg.get("id") == mid:
                if "error" in msg:
                    raise BrowserError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def wait_for(self, predicate, what: str):
        """Read events until ``predicate(event)`` is true for one of them."""
        deadline = time.monotonic() + self.timeout_s
        for ev in self.events:
            if predicate(ev):
                return ev
        while True:
            msg = self._read(deadline)
            if "method" in msg and predicate(msg):
                return msg
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out waiting for {what}")

    # ------------------------------------------------------------------ page helpers
    def open(self, url: str):
        """Navigate and wait until the page's script has run (``html[data-ready]``);
        ``errors`` and ``requests`` then hold this page's only."""
        # leave the previous page first (about:blank, loaded), so that none of its late
        # events (a thumbnail still loading, a console message) is counted for this one
        self.events.clear()
        self.call("Page.navigate", session=True, url="about:blank")
        self.wait_for(lambda e: e["method"] == "Page.loadEventFired", "about:blank")
        self.js("1")  # read every event sent before this answer
        self.events.clear()
        self.errors.clear()
        self.requests.clear()
        self.call("Page.navigate", session=True, url=url)
        self.wait_for(lambda e: e["method"] == "Page.loadEventFired", f"load of {url}")
        deadline = time.monotonic() + self.timeout_s
        while not self.js("document.documentElement.getAttribute('data-ready') === '1'"):
            if time.monotonic() > deadline:
                raise BrowserError(f"{url}: report script never finished; page errors: "
                                   f"{self.errors}")
            time.sleep(0.05)

    def js(self, expression: str):
        """Evaluate ``expression`` in the page and return its JSON value."""
        res = self.call("Runtime.evaluate", session=True, expression=expression,
                        returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise BrowserError(f"{expression[:80]}: {res['exceptionDetails']}")
        return res.get("result", {}).get("value")

    def wait_until(self, expression: str, what: str):
        """Poll ``expression`` in the page until it is truthy (``timeout_s``)."""
        deadline = time.monotonic() + self.timeout_s
        while not self.js(expression):
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out waiting for {what}; page errors: {self.errors}")
            time.sleep(0.05)

    def wait_download(self):
        """Wait for a finished download; return the event."""
        return self.wait_for(lambda e: e["method"] == "Browser.downloadProgress"
                             and e["params"].get("state") == "completed", "a download")

    def close(self):
        try:
            if self.proc.poll() is None:
                try:
                    self._send("Browser.close", {}, False)
                    self.proc.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    self.proc.kill()  # our own child, by its handle
                    self.proc.wait(timeout=10)
        finally:
            for fd in (self._cmd_w, self._res_r):
                try:
                    os.close(fd)
                except OSError:
                    pass
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
