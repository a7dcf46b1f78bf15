#!/usr/bin/env python3
"""Load apactors' HTML reports in a real headless browser: no console errors, the pictures are there,
and PNG screenshots for the README.

    tools/check_html.py PAGE.html [PAGE.html ...] [--screenshot OUT.png] [--element CSS] [--width 1400]
                        [--height 900] [--full-page] [--max-height 6000] [--expect CSS ...] [--require-browser]

It drives Chromium (or Chrome) through the DevTools protocol over a pipe (``--remote-debugging-pipe``:
no port, no extra Python package), records console errors, uncaught exceptions, failed loads and any
request that leaves the file (a self-contained page makes none), waits for the load event, checks that
each ``--expect`` selector matches at least one element whose box is not empty, and takes a screenshot
(the viewport, the whole page, or one element).  Exit status: 0 all pages clean, 1 a page had errors, 2
usage.  Without a browser it prints why and exits 0 (``--require-browser``: 2) so that CI without one
skips it.  Install one with ``apt-get update && apt-get install -y chromium``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
DEFAULT_EXPECT = ("svg",)


def find_browser() -> str | None:
    """A Chromium-family browser: ``$APACTORS_BROWSER``, else the first of :data:`BROWSERS` on PATH."""
    env = os.environ.get("APACTORS_BROWSER")
    if env:
        return env if shutil.which(env) or Path(env).exists() else None
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageCheck:
    """What loading one page showed."""

    url: str
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  #: every URL the page loaded
    found: dict[str, int] = field(default_factory=dict)  #: expected selector -> visible elements
    title: str = ""
    size: tuple[int, int] = (0, 0)  #: the page's content size (CSS px)
    screenshot: str | None = None

    @property
    def ok(self) -> bool:
        return not self.errors and all(self.found.values())


class Browser:
    """A headless browser driven over the DevTools pipe (fd 3: commands in, fd 4: replies out)."""

    def __init__(self, exe: str, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="apactors-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def fds() -> None:  # in the child: the pipe ends become fds 3 and 4 (via spare copies: no clobbering)
            a, b = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        args = [exe, "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
                "--disable-background-networking", "--disable-sync", "--mute-audio", "--font-render-hinting=none",
                f"--user-data-dir={self.profile}", "about:blank"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, preexec_fn=fds,  # noqa: PLW1509
                                     pass_fds=(3, 4))
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def _read_message(self, deadline: float) -> dict[str, Any]:
        import select

        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the browser did not answer in time")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("the browser closed the DevTools pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        """Send a command and return its result (events that arrive meanwhile are kept in ``events``)."""
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_event(self, method: str, session: str, timeout: float | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + (timeout or self.timeout)
        for i, ev in enumerate(self.events):
            if ev.get("method") == method and ev.get("sessionId") == session:
                return self.events.pop(i)
        while True:
            ev = self._read_message(deadline)
            if ev.get("method") == method and ev.get("sessionId") == session:
                return ev
            if "method" in ev:
                self.events.append(ev)


def _errors_of(events: list[dict[str, Any]], session: str) -> tuple[list[str], list[str]]:
    errors, urls = [], []
    for ev in events:
        if ev.get("sessionId") != session:
            continue
        m, p = ev.get("method"), ev.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            errors.append(f"console.{p.get('type')}: {text}")
        elif m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            errors.append(f"uncaught exception: {d.get('exception', {}).get('description') or d.get('text')}")
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            e = p["entry"]
            errors.append(f"{e.get('source')}: {e.get('text')} {e.get('url', '')}".strip())
        elif m == "Network.requestWillBeSent":
            urls.append(p.get("request", {}).get("url", ""))
        elif m == "Network.loadingFailed":
            errors.append(f"failed to load: {p.get('errorText')} ({p.get('type')})")
    return errors, urls


def check_page(path: str | Path, *, screenshot: str | Path | None = None, width: int = 1400, height: int = 900,
               full_page: bool = False, element: str | None = None, max_height: int = 6000,
               expect: tuple[str, ...] = DEFAULT_EXPECT, browser: str | None = None) -> PageCheck:
    """Load ``path`` in a headless browser; see the module docstring.  Raises ``RuntimeError`` without
    a browser."""
    exe = browser or find_browser()
    if exe is None:
        raise RuntimeError("no Chromium or Chrome found (apt-get install chromium, or set APACTORS_BROWSER)")
    url = Path(path).resolve().as_uri()
    res = PageCheck(url)
    b = Browser(exe)
    try:
        target = b.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = b.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            b.send(f"{domain}.enable", session=session)
        b.send("Emulation.setDeviceMetricsOverride",
               {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
        b.send("Page.navigate", {"url": url}, session=session)
        b.wait_event("Page.loadEventFired", session)
        time.sleep(0.3)  # let late console messages arrive
        b.send("Runtime.evaluate", {"expression": "1"}, session=session)
        probe = ("(function(sels){var f={};sels.forEach(function(s){f[s]=Array.prototype.filter.call("
                 "document.querySelectorAll(s),function(e){var r=e.getBoundingClientRect();"
                 "return r.width>0&&r.height>0;}).length;});return JSON.stringify({title:document.title,"
                 "w:document.documentElement.scrollWidth,h:document.documentElement.scrollHeight,found:f});})"
                 f"({json.dumps(list(expect))})")
        info = json.loads(b.send("Runtime.evaluate", {"expression": probe, "returnByValue": True},
                                 session=session)["result"]["value"])
        res.title, res.size, res.found = info["title"], (info["w"], info["h"]), info["found"]
        errors, urls = _errors_of(b.events, session)
        res.errors += errors
        res.requests = urls
        for u in urls:
            if not (u.startswith("file:") or u.startswith("data:") or u.startswith("about:")):
                res.errors.append(f"network request from a self-contained page: {u}")
        for sel, n in res.found.items():
            if not n:
                res.errors.append(f"expected a visible element matching {sel!r}, found none")
        if screenshot is not None:
            clip = None
            if element:
                rect = b.send("Runtime.evaluate", {"expression": (
                    "(function(){var e=document.querySelector(%s); if(!e) return null; var r=e.getBoundingClientRect();"
                    "return JSON.stringify({x:r.left+window.scrollX,y:r.top+window.scrollY,w:r.width,h:r.height});})()"
                    % json.dumps(element)), "returnByValue": True}, session=session)["result"].get("value")
                if not rect:
                    res.errors.append(f"--element {element!r} matches nothing")
                else:
                    r = json.loads(rect)
                    clip = {"x": r["x"], "y": r["y"], "width": r["w"], "height": min(r["h"], max_height), "scale": 1}
            elif full_page:
                clip = {"x": 0, "y": 0, "width": max(width, res.size[0]), "height": min(res.size[1], max_height),
                        "scale": 1}
            params: dict[str, Any] = {"format": "png"}
            if clip is not None:
                params.update(clip=clip, captureBeyondViewport=True)
            data = b.send("Page.captureScreenshot", params, session=session)["data"]
            out = Path(screenshot)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(base64.b64decode(data))
            res.screenshot = str(out)
    finally:
        b.close()
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="check_html", description=__doc__.split("\n\n")[0])
    p.add_argument("pages", nargs="+", help="HTML files to load")
    p.add_argument("--screenshot", help="PNG to write (with several pages: a directory)")
    p.add_argument("--element", help="screenshot only the first element matching this CSS selector")
    p.add_argument("--width", type=int, default=1400)
    p.add_argument("--height", type=int, default=900)
    p.add_argument("--full-page", action="store_true", help="screenshot the whole page (up to --max-height)")
    p.add_argument("--max-height", type=int, default=6000)
    p.add_argument("--expect", action="append", default=[], metavar="CSS",
                   help="a selector that must match a visible element (repeatable; default: svg)")
    p.add_argument("--require-browser", action="store_true", help="fail (status 2) when no browser is installed")
    args = p.parse_args(argv)
    if find_browser() is None:
        print("check_html: skipped: no Chromium or Chrome found (apt-get update && apt-get install -y chromium, "
              "or set APACTORS_BROWSER)", file=sys.stderr)
        return 2 if args.require_browser else 0
    bad = 0
    for page in args.pages:
        shot = args.screenshot
        if shot and len(args.pages) > 1:
            shot = str(Path(shot) / (Path(page).stem + ".png"))
        r = check_page(page, screenshot=shot, width=args.width, height=args.height, full_page=args.full_page,
                       element=args.element, max_height=args.max_height,
                       expect=tuple(args.expect) or DEFAULT_EXPECT)
        status = "ok" if r.ok else "FAILED"
        found = ", ".join(f"{k}: {v}" for k, v in r.found.items())
        print(f"{page}: {status}; title {r.title!r}; page {r.size[0]}x{r.size[1]}; {found}"
              + (f"; screenshot {r.screenshot}" if r.screenshot else ""))
        for e in r.errors:
            print(f"  error: {e}")
        bad += not r.ok
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
