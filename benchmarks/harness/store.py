"""The run store: the resumable state of a benchmark in its output folder.

A benchmark's ``--out`` folder holds

``state.json``
    The settings, torch's thread count and version, and per (arm, seed) curve the labeled
    pool indices and the rows of every finished round.
``rounds.csv``
    The same rows as a table (rewritten after every round, then by the final report).
``run.lock``
    Who runs in the folder (pid, host, start time). The lock itself is an exclusive
    ``flock`` held while the run lasts: the system drops it when the process ends, so a
    crashed run never blocks the folder; a later run finds its details in the file, warns
    and takes over.

:class:`RunStore` has two methods, :meth:`~RunStore.read_runs` and
:meth:`~RunStore.write_run` (the shape of Optuna's journal storage), and is a context
manager that holds the lock. Every file is written through a unique temporary file and
``os.replace``. A ``state.json`` that cannot be read is renamed aside (named in a warning)
and the finished rounds are recovered from ``rounds.csv``.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import socket
import time
import warnings
from pathlib import Path

import torch

from benchmarks.harness.reporting import (
    ROW_FIELDS,
    row_fields,
    sorted_rows,
    write_atomic,
    write_csv,
)

__all__ = ["LOCK_FILE", "ROUNDS_FILE", "STATE_FILE", "OutputLockedError", "RunStore",
           "SettingsError", "run_key", "runtime_info"]

STATE_FILE = "state.json"
ROUNDS_FILE = "rounds.csv"
LOCK_FILE = "run.lock"
STATE_VERSION = 2
_READABLE_VERSIONS = (1, 2)  # version 1 did not record the thread count


class SettingsError(ValueError):
    """Settings that cannot run: a state file written with other settings (or another
    torch thread count), an initial set as large as the pool. Scripts turn it into a
    command-line error."""


class OutputLockedError(SettingsError):
    """The output folder is in use by another run."""


def run_key(arm_name: str, seed: int) -> str:
    """The key of an (arm, seed) curve in the state."""
    return f"{arm_name}|seed={int(seed)}"


def runtime_info() -> dict:
    """What changes results besides the settings: torch's thread count and version."""
    return {"torch_threads": int(torch.get_num_threads()), "torch_version": torch.__version__}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class RunStore:
    """The state of one output folder, locked while the run lasts.

    Parameters
    ----------
    out_dir : str or Path
        The benchmark's output folder (created if missing).
    config : dict
        The settings a resumed run must share with the run that wrote the state.
    allow_thread_change : bool, default False
        Resume (with a warning) a state written with another torch thread count, instead
        of refusing.

    Raises
    ------
    OutputLockedError
        On entering, when another process holds the folder (the message names its pid,
        host and start time).
    SettingsError
        On entering, when the state was written with other settings or another thread
        count.
    """

    def __init__(self, out_dir, config: dict, *, allow_thread_change: bool = False):
        self.out_dir = Path(out_dir)
        self.config = dict(config)
        self.allow_thread_change = bool(allow_thread_change)
        self.state_path = self.out_dir / STATE_FILE
        self.lock_path = self.out_dir / LOCK_FILE
        self._lock_fd = None
        self._state = None

    # ------------------------------------------------------------------ the two methods
    def read_runs(self) -> dict:
        """``{run_key: run}``: every curve saved so far (a copy)."""
        self._check_open()
        return json.loads(json.dumps(self._state["runs"]))

    def write_run(self, key: str, run: dict) -> None:
        """Save one curve: ``state.json``, then ``rounds.csv``, each replaced atomically."""
        self._check_open()
        self._state["runs"][key] = json.loads(json.dumps(run))
        self._write()

    def discard_runs(self, arm_names) -> list[str]:
        """Forget every saved curve of these arms (to run them again after a code change).

        Returns the discarded run keys, sorted; ``state.json`` and ``rounds.csv`` are
        rewritten once.
        """
        self._check_open()
        names = set(arm_names)
        keys = sorted(k for k in self._state["runs"] if k.split("|", 1)[0] in names)
        for key in keys:
            del self._state["runs"][key]
        if keys:
            self._write()
        return keys

    def _write(self):
        write_atomic(self.state_path, json.dumps(self._state))
        rows = [row for saved in self._state["runs"].values() for row in saved["rows"]]
        write_csv(self.out_dir / ROUNDS_FILE, row_fields(rows), sorted_rows(rows))

    # ------------------------------------------------------------------ lock
    def __enter__(self):
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            self._state = self._load()
        except BaseException:
            self._unlock()
            raise
        return self

    def __exit__(self, *exc_info):
        self._unlock()
        self._state = None
        return False

    def _check_open(self):
        if self._state is None:
            raise RuntimeError("use the RunStore inside a `with` block")

    def _lock(self):
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            raise OutputLockedError(
                f"{self.out_dir} is in use by another run: pid {holder.get('pid', '?')} "
                f"on host {holder.get('host', '?')}, started {holder.get('started', '?')} "
                f"(lock file {self.lock_path}); wait for it to end or use another --out"
            ) from None
        previous = _read_holder(fd)
        if previous:
            warnings.warn(
                f"taking over the stale lock {self.lock_path} of pid "
                f"{previous.get('pid', '?')} on host {previous.get('host', '?')} (started "
                f"{previous.get('started', '?')}): that run ended without releasing it",
                RuntimeWarning, stacklevel=3)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": _now()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        self._lock_fd = fd

    def _unlock(self):
        if self._lock_fd is not None:
            os.ftruncate(self._lock_fd, 0)  # a clean release: no holder left in the file
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None

    # ------------------------------------------------------------------ state
    def _load(self) -> dict:
        fresh = {"version": STATE_VERSION, "config": self.config, "runtime": runtime_info(),
                 "runs": {}}
        if not self.state_path.exists():
            return fresh
        try:
            state = json.loads(self.state_path.read_text())
            if not isinstance(state, dict) or not isinstance(state.get("runs"), dict):
                raise ValueError("no 'runs' object")
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError included
            fresh["runs"] = self._recover(exc)
            self._state = fresh
            self._write()  # a readable state again, with what was recovered
            return fresh
        if state.get("version") not in _READABLE_VERSIONS:
            raise SettingsError(f"{self.state_path} was written by another version of the "
                                "benchmarks; use another --out")
        self._check_config(state.get("config", {}))
        state["runtime"] = self._check_runtime(state.get("runtime"))
        state["version"] = STATE_VERSION
        return state

    def _check_config(self, old: dict):
        differ = {key: (old.get(key), value) for key, value in self.config.items()
                  if old.get(key) != value}
        if differ:
            detail = ", ".join(f"{key}: {a!r} there, {b!r} now"
                               for key, (a, b) in differ.items())
            raise SettingsError(f"cannot resume from {self.state_path}: its settings differ "
                                f"({detail}); use the same settings or another --out")

    def _check_runtime(self, recorded) -> dict:
        now = runtime_info()
        if not recorded:
            warnings.warn(f"{self.state_path} does not record torch's thread count: a "
                          "resumed run matches an uninterrupted one only with the same "
                          f"count; recording {now['torch_threads']} now", RuntimeWarning,
                          stacklevel=4)
            return now
        threads = recorded.get("torch_threads")
        if threads != now["torch_threads"]:
            message = (
                f"{self.state_path} was written with {threads} torch thread(s) but this run "
                f"has {now['torch_threads']}: the results of a resumed run would differ "
                "from an uninterrupted one (torch's reductions depend on the thread count). "
                f"Resume with --threads {threads}, or pass --allow-thread-change to mix them")
            if not self.allow_thread_change:
                raise SettingsError(message)
            warnings.warn(message, RuntimeWarning, stacklevel=4)
        if recorded.get("torch_version") != now["torch_version"]:
            warnings.warn(f"{self.state_path} was written with torch "
                          f"{recorded.get('torch_version')}, this run has torch "
                          f"{now['torch_version']}: results may differ", RuntimeWarning,
                          stacklevel=4)
        return recorded

    def _recover(self, error) -> dict:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        aside = self.state_path.with_name(f"{STATE_FILE}.corrupt-{stamp}")
        os.replace(self.state_path, aside)
        rounds = self.out_dir / ROUNDS_FILE
        runs = _runs_from_rows(read_rounds(rounds)) if rounds.exists() else {}
        n_rows = sum(len(run["rows"]) for run in runs.values())
        warnings.warn(
            f"{self.state_path} cannot be read ({error}); kept it as {aside}. Recovered "
            f"{n_rows} finished round(s) of {len(runs)} curve(s) from {rounds} (their "
            "settings cannot be checked; their labeled sets are lost: a curve that needs "
            "more rounds is recomputed from its initial set)", RuntimeWarning, stacklevel=4)
        return runs


def _read_holder(fd) -> dict:
    try:
        text = os.pread(fd, 4096, 0).decode()
        return json.loads(text) if text.strip() else {}
    except (OSError, ValueError):
        return {"pid": "unknown (unreadable lock file)"}


def _number(text, kind):
    return kind(text) if text not in ("", None) else None


def _cell(text):
    if text in ("", None):
        return None
    try:
        return float(text)
    except ValueError:
        return text


def read_rounds(path) -> list[dict]:
    """The rows of a ``rounds.csv`` (numbers parsed, empty cells as None; the observers'
    columns as numbers where they parse, else text)."""
    with open(path, newline="") as handle:
        return [{"strategy": row["strategy"], "seed": int(row["seed"]),
                 "round": int(row["round"]), "n_labels": int(row["n_labels"]),
                 "metric": float(row["metric"]), "fit_s": _number(row["fit_s"], float),
                 "query_s": _number(row["query_s"], float),
                 **{key: _cell(value) for key, value in row.items()
                    if key not in ROW_FIELDS}}
                for row in csv.DictReader(handle)]


def _runs_from_rows(rows) -> dict:
    """Curves rebuilt from table rows: rows and rounds done, no labeled set (None)."""
    runs = {}
    for row in sorted(rows, key=lambda r: (r["strategy"], r["seed"], r["round"])):
        run = runs.setdefault(run_key(row["strategy"], row["seed"]), {
            "arm": None, "seed": row["seed"], "labeled": None, "rounds_done": -1,
            "exhausted": False, "rows": []})
        if row["round"] == run["rounds_done"] + 1:  # keep an unbroken run of rounds
            run["rows"].append(row)
            run["rounds_done"] = row["round"]
    return {key: run for key, run in runs.items() if run["rows"]}
