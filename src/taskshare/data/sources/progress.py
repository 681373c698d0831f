"""A log line with rate and ETA for long passes (decoding, scanning, feature caching), at most one
every few seconds, so a 100,000-image pass shows where it is without flooding the log."""
from __future__ import annotations

import logging
import time

log = logging.getLogger("taskshare")


class RateLog:
    def __init__(self, what: str, total: int, every: float = 5.0, unit: str = "images"):
        self.what, self.total, self.every, self.unit = what, total, every, unit
        self.done = 0
        self.started = self.last = time.perf_counter()

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last >= self.every and self.done < self.total:
            self.last = now
            log.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        elapsed = max((now or time.perf_counter()) - self.started, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        return (f"{self.what}: {self.done:,}/{self.total:,} {self.unit} ({rate:,.0f}/s, "
                f"{elapsed:.0f}s elapsed, ETA {eta:.0f}s)")

    def finish(self) -> None:
        if time.perf_counter() - self.started >= self.every:
            log.info("%s", self.line())
