"""A process's memory from ``/proc/self/status`` (Linux): the resident peak (``VmHWM``,
resettable), the anonymous peak sampled in a thread (:class:`AnonPeak`: a memmap's file
pages excluded), and the load average recorded beside every timing (``scale``,
``sparse_pool``, ``memmap_query``)."""

from __future__ import annotations

import os
import re
import threading

__all__ = ["AnonPeak", "load_average", "mib", "read_peak", "reset_peak", "status_kib"]


def status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        match = re.search(rf"^{field}:\s+(\d+)\s+kB", handle.read(), re.MULTILINE)
    return int(match.group(1)) if match else 0


def reset_peak() -> int:
    """Reset VmHWM to the current RSS; the current RSS in KiB."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    return status_kib("VmRSS")


def read_peak() -> int:
    return status_kib("VmHWM")


class AnonPeak:
    """Peak ``RssAnon`` of this process, sampled in a thread (file pages excluded)."""

    def __init__(self, every_s: float = 0.02):
        self.every_s, self.peak, self._stop = every_s, 0, threading.Event()

    def __enter__(self):
        self.base = status_kib("RssAnon")
        self.peak = self.base
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(self.every_s):
            self.peak = max(self.peak, status_kib("RssAnon"))

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, status_kib("RssAnon"))
        return False


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def mib(kib) -> float:
    return round(kib / 1024.0, 1)
