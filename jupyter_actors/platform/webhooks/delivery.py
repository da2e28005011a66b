"""Sends stored dispatches: a POST per attempt with a timeout, retried with exponential backoff.

One thread picks due dispatches from the registry and hands them to a small pool of senders, so a
slow receiver holds one sender, never a run or the event loop. Every attempt is recorded on its
dispatch before the next is planned; as the plan is in the registry, a restarted server resumes it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from ..clock import iso, now_iso, parse_iso, utcnow
from .store import DISPATCH_ACTIVE, DISPATCH_FAILED, DISPATCH_SUCCEEDED, DueDispatch, WebhookStore

log = logging.getLogger(__name__)

#: Headers the platform always sets itself (Apify's list); a headers template cannot change them.
RESERVED_HEADERS = ("host", "content-type", "x-apify-webhook", "x-apify-webhook-dispatch-id",
                    "x-apify-request-origin")
#: How much of a receiver's answer a call keeps.
MAX_RESPONSE_BODY_BYTES = 2048
#: The longest the delivery thread sleeps without being woken (it re-reads the plan then).
MAX_IDLE_SECS = 30.0


class Delivery:
    def __init__(self, store: WebhookStore, *, timeout_secs: float, max_attempts: int, retry_base_secs: float,
                 senders: int = 4) -> None:
        self.store = store
        self.timeout_secs = timeout_secs
        self.max_attempts = max_attempts
        self.retry_base_secs = retry_base_secs
        self.senders = senders
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._clients: dict[bool, httpx.Client] = {}

    def start(self) -> None:
        """Start sending (the serving process calls this once); dispatches left ACTIVE by a previous one resume."""
        if self._thread is not None:
            return
        self._pool = ThreadPoolExecutor(self.senders, thread_name_prefix="webhook-send")
        self._thread = threading.Thread(target=self._loop, name="webhook-delivery", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Something new may be due: look now."""
        self._wake.set()

    def stop(self) -> None:
        """Stop planning; a call under way is not waited for (it is sent again at the next start if its
        outcome could not be recorded: delivery is at least once, as on Apify)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            idle = not self._in_flight
        if idle:
            for client in self._clients.values():
                client.close()

    # -- the plan ---------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                wait = self._send_due()
            except Exception:  # the registry may be closing; try again shortly
                log.exception("webhook delivery failed to read its plan")
                wait = 1.0
            self._wake.wait(wait)

    def _send_due(self) -> float:
        """Hand every due dispatch to a free sender; returns how long to sleep before looking again."""
        with self._lock:
            busy = set(self._in_flight)
        free = self.senders - len(busy)
        if free > 0:
            for dispatch in self.store.due(now_iso(), exclude=busy, limit=free):
                with self._lock:
                    self._in_flight.add(dispatch["id"])
                    busy.add(dispatch["id"])
                assert self._pool is not None
                self._pool.submit(self._send_and_release, dispatch)
        if len(busy) >= self.senders:
            return MAX_IDLE_SECS  # a sender that finishes wakes the loop
        due = self.store.next_due(exclude=busy)
        if due is None:
            return MAX_IDLE_SECS
        seconds = (parse_iso(due) - utcnow()).total_seconds()  # type: ignore[operator]
        return min(max(seconds, 0.01), MAX_IDLE_SECS)

    def _send_and_release(self, dispatch: DueDispatch) -> None:
        try:
            self.send(dispatch)
        except Exception:
            log.exception("webhook dispatch %s could not be recorded", dispatch["id"])
        finally:
            with self._lock:
                self._in_flight.discard(dispatch["id"])
            self._wake.set()

    # -- one attempt ------------------------------------------------------------------------------

    def send(self, dispatch: DueDispatch) -> None:
        """POST the dispatch's payload once, record the call, and plan the next attempt or the end."""
        call: dict[str, object] = {"startedAt": now_iso(), "errorMessage": None, "responseStatus": None,
                                   "responseBody": None}
        ok = False
        try:
            client = self._client(verify=not dispatch["ignore_ssl_errors"])
            with client.stream("POST", dispatch["request_url"], content=dispatch["payload"].encode("utf-8"),
                               headers=self.headers(dispatch)) as response:
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) >= MAX_RESPONSE_BODY_BYTES:
                        break
            call["responseStatus"] = response.status_code
            call["responseBody"] = bytes(body[:MAX_RESPONSE_BODY_BYTES]).decode("utf-8", errors="replace")
            ok = 200 <= response.status_code < 300
            if not ok:
                call["errorMessage"] = f"The receiver answered HTTP {response.status_code}, not 2xx."
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            call["errorMessage"] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        call["finishedAt"] = now_iso()
        attempts = len(json.loads(dispatch["calls"])) + 1
        next_attempt = None
        if ok:
            status = DISPATCH_SUCCEEDED
        elif dispatch["do_not_retry"] or attempts >= self.max_attempts:
            status = DISPATCH_FAILED
        else:
            status = DISPATCH_ACTIVE
            next_attempt = iso(utcnow() + dt.timedelta(seconds=self.retry_base_secs * 2 ** (attempts - 1)))
        self.store.record_call(dispatch["id"], call, status, next_attempt)

    @staticmethod
    def headers(dispatch: DueDispatch) -> dict[str, str]:
        extra = json.loads(dispatch["headers"] or "{}")
        headers = {str(name): value if isinstance(value, str) else json.dumps(value)
                   for name, value in extra.items() if str(name).lower() not in RESERVED_HEADERS}
        headers.update({
            "Content-Type": "application/json; charset=utf-8",
            "X-Apify-Webhook": dispatch["webhook_id"],
            "X-Apify-Webhook-Dispatch-Id": dispatch["id"],
            "X-Apify-Request-Origin": "WEBHOOK",
        })
        return headers

    def _client(self, *, verify: bool) -> httpx.Client:
        with self._lock:
            client = self._clients.get(verify)
            if client is None:
                client = httpx.Client(verify=verify, timeout=httpx.Timeout(self.timeout_secs),
                                      headers={"User-Agent": "jupyter-actors-webhooks"})
                self._clients[verify] = client
            return client
