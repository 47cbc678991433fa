"""A page opened in headless Chromium over the DevTools protocol (``--remote-debugging-pipe``:
NUL-separated JSON messages on file descriptors 3, commands in, and 4, replies and events out),
with the standard library alone: every request the page made, everything the browser logged, a
screenshot, and the values of JavaScript expressions evaluated in the loaded page.

Chromium is Debian's ``chromium`` package (``.ci/run`` installs it); the flags keep it off the
network on its own account (no background, component or sync traffic, which a closed network
refuses), so that any request seen is the page's."""

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-pipe", "--window-size=1280,2000")
TIMEOUT = 120
"""Seconds a visit may take before the browser is killed (the test fails)."""


def chromium() -> str:
    """The Chromium executable; the test is skipped, saying why, where it is not installed."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("headless Chromium is not installed: .ci/run installs Debian's chromium package "
                    "(apt-get install -y chromium, as root)")
    return found


@dataclass
class Visit:
    """What opening a page showed: ``requests`` (every URL it asked for, the page's own
    included), ``errors`` (console errors, uncaught exceptions and log entries of level error),
    the ``screenshot`` (PNG bytes) and ``values`` ({expression: its JSON value})."""

    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    screenshot: bytes = b""
    values: dict = field(default_factory=dict)


class _Pipe:
    """The DevTools pipe of a running Chromium: ``call`` a method, every event kept in ``events``."""

    def __init__(self, commands, replies):
        self.commands, self.replies, self.buffer, self.events, self.next_id = commands, replies, b"", [], 0
        self.deadline = time.monotonic() + TIMEOUT

    def _message(self) -> dict:
        while b"\0" not in self.buffer:
            if not select.select([self.replies], [], [], max(0.0, self.deadline - time.monotonic()))[0]:
                raise TimeoutError(f"Chromium did not answer within {TIMEOUT} s")
            chunk = os.read(self.replies, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.commands, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._message()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, method: str) -> None:
        while not any(event.get("method") == method for event in self.events):
            self.events.append(self._message())


def _collect(events: list[dict], visit: Visit) -> None:
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent":
            visit.requests.append(params["request"]["url"])
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            visit.errors.append(f"{params['entry']['source']}: {params['entry']['text']}")
        elif method == "Runtime.exceptionThrown":
            visit.errors.append(params["exceptionDetails"]["text"])
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            visit.errors.append("console: " + " ".join(str(arg.get("value")) for arg in params["args"]))


def visit(page: Path, expressions: tuple[str, ...] = ()) -> Visit:
    """Open ``page`` (a file) in headless Chromium, wait for its load event, evaluate each of
    ``expressions`` and take a screenshot; what it requested and logged is in the ``Visit``."""
    executable = chromium()
    to_browser, from_browser = os.pipe(), os.pipe()
    with tempfile.TemporaryDirectory() as profile:
        def descriptors():  # the child's 3 and 4: copies first, as 3 or 4 may hold an original or the other copy
            reads, writes = os.dup(to_browser[0]), os.dup(from_browser[1])
            os.dup2(reads, 3)
            os.dup2(writes, 4)
            for fd in (3, 4):  # dup2 onto itself leaves a copy close-on-exec
                os.set_inheritable(fd, True)

        browser = subprocess.Popen([executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                   preexec_fn=descriptors, close_fds=False, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        os.close(to_browser[0])
        os.close(from_browser[1])
        try:
            return _drive(_Pipe(to_browser[1], from_browser[0]), page, expressions)
        finally:
            browser.kill()
            browser.wait(TIMEOUT)
            os.close(to_browser[1])
            os.close(from_browser[0])


def _drive(pipe: _Pipe, page: Path, expressions: tuple[str, ...]) -> Visit:
    target = pipe.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Network", "Log", "Runtime"):
        pipe.call(f"{domain}.enable", session=session)
    pipe.call("Page.navigate", {"url": page.resolve().as_uri()}, session)
    pipe.wait_for("Page.loadEventFired")
    result = Visit()
    for expression in expressions:
        reply = pipe.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
        result.values[expression] = reply["result"].get("value")
    result.screenshot = base64.b64decode(pipe.call("Page.captureScreenshot", {"format": "png"}, session)["data"])
    _collect(pipe.events, result)
    return result
