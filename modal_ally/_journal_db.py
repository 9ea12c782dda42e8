"""The journal's SQLite file: opening it safely, its schema, appending, reading back.

Standard library only (``sqlite3``). The file is append-only: three tables, only ever
inserted into.

- ``batches``: one row per group of answers written together (one transaction).
- ``answers``: one row per answer: the row's key in the user's pool and the answer (both
  JSON, so that ints, floats and strings come back exactly as given), the annotator
  (JSON or NULL), the time, the round, the model version that asked, and an optional
  ``source`` (unique where given: an answer from elsewhere, such as a Label Studio
  annotation, is written once however often it is read).
- ``teaches``: one row per attempt to teach a learner some batches: whether it
  succeeded, and the labels it gave the learner's labeled set (new rows in the order they
  were appended, then rows whose consensus label changed), so that the labeled set can
  be rebuilt exactly.

Durability: WAL mode with ``synchronous=FULL``. In WAL mode ``NORMAL`` already survives a
crash of the process (a SIGKILL), but a power cut or an OS crash can roll back the last
transactions; ``FULL`` syncs the log at every commit, so an answer acknowledged to a
person survives the machine too. That costs one fsync per batch (see
``docs/results/journal_cost``), milliseconds against the seconds a person spends on an
answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time

__all__ = ["JournalError", "JournalFileError", "JournalWriteError", "SCHEMA_VERSION",
           "open_journal", "append_batch", "append_teach", "read_since"]

#: Version of the schema below, kept in ``PRAGMA user_version``.
SCHEMA_VERSION = 1
#: ``PRAGMA application_id`` of a modal_ally journal ("mAlJ"): another SQLite file is refused.
APPLICATION_ID = 0x6D416C4A
#: Seconds a writer waits for another process's transaction before giving up.
BUSY_TIMEOUT_S = 60.0
_HEADER = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE batches (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
                      time REAL NOT NULL);
CREATE TABLE answers (id INTEGER PRIMARY KEY AUTOINCREMENT,
                      batch INTEGER NOT NULL REFERENCES batches(id),
                      key TEXT NOT NULL, label TEXT NOT NULL, annotator TEXT,
                      time REAL NOT NULL, round INTEGER NOT NULL, model_version TEXT,
                      source TEXT UNIQUE);
CREATE INDEX answers_batch ON answers(batch);
CREATE TABLE teaches (id INTEGER PRIMARY KEY AUTOINCREMENT, batches TEXT NOT NULL,
                      taught INTEGER NOT NULL, labels TEXT NOT NULL, error TEXT,
                      time REAL NOT NULL);
"""


class JournalError(Exception):
    """A problem with a journal of answers."""


class JournalFileError(JournalError, ValueError):
    """The file is not a journal this release can use (corrupt, truncated, another
    database, another schema version, another pool). Nothing was written to it."""


class JournalWriteError(JournalError, OSError):
    """Answers could not be written (disk full, read-only file, locked too long): they
    were NOT saved, and nothing was taught."""


def encode(value) -> str:
    """JSON text of a key, label or annotator (numpy scalars as Python ones)."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    elif hasattr(value, "tolist"):
        value = value.tolist()
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{value!r} cannot be journaled: keys, labels and annotators must "
                        f"be ints, finite floats, strings or lists of them ({exc})") from exc


def _refuse(path, why):
    raise JournalFileError(f"{path} cannot be used as a journal of answers: {why}. "
                           "The file was left as it is.")


def _check_file(path):
    """Refuse, before SQLite touches it, a file that is not an SQLite database."""
    if not os.path.exists(path):
        return False
    if os.path.isdir(path):
        _refuse(path, "it is a folder")
    with open(path, "rb") as handle:
        head = handle.read(len(_HEADER))
    if not head:
        _refuse(path, "it is empty (a journal that was truncated? delete it to start anew)")
    if head != _HEADER:
        _refuse(path, "it is not an SQLite database")
    return True


def _check_contents(conn, path):
    """SQLite's own check of the pages, then the application id and schema version."""
    try:
        problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
        application, version = (conn.execute("PRAGMA application_id").fetchone()[0],
                                conn.execute("PRAGMA user_version").fetchone()[0])
        tables = {row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        _refuse(path, f"SQLite cannot read it ({exc}): it is corrupt or truncated")
    if problems != ["ok"]:
        _refuse(path, f"SQLite's integrity check failed ({'; '.join(problems[:3])}): it is "
                      "corrupt or truncated")
    if application != APPLICATION_ID or not tables:
        _refuse(path, "it is an SQLite database but not a modal_ally journal")
    if version != SCHEMA_VERSION:
        newer = "a newer" if version > SCHEMA_VERSION else "an older"
        _refuse(path, f"it was written by {newer} release of modal_ally (schema version "
                      f"{version}; this release reads version {SCHEMA_VERSION} and knows "
                      "no migration from it)")


def _create(path):
    """Create the journal whole or not at all: built under a temporary name beside it,
    then linked into place (a crash leaves no half-made journal; of two processes
    creating it at once, one wins and the other opens it)."""
    temp = f"{path}.creating-{os.getpid()}-{time.time_ns()}"
    try:
        conn = sqlite3.connect(temp)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(f"BEGIN; {_SCHEMA} PRAGMA application_id = {APPLICATION_ID};"
                               f"PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        finally:
            conn.close()
        try:
            os.link(temp, path)
        except FileExistsError:
            pass  # another process created it first: open theirs
        except OSError:  # no hard links here: a rename, unless it appeared meanwhile
            if not os.path.exists(path):
                os.replace(temp, path)
    except (OSError, sqlite3.Error) as exc:
        raise JournalWriteError(f"cannot create the journal {path}: {exc}") from exc
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def open_journal(path):
    """An open connection to the journal at ``path`` (created if missing), checked.

    Raises :class:`JournalFileError` for a file that is not a usable journal; such a
    file is never written to.
    """
    path = os.fspath(path)
    if not _check_file(path):
        _create(path)
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level="IMMEDIATE")
    except sqlite3.Error as exc:
        raise JournalWriteError(f"cannot open the journal {path}: {exc}") from exc
    try:
        _check_contents(conn, path)
        conn.execute("PRAGMA synchronous = FULL")
    except BaseException:
        conn.close()
        raise
    return conn


@contextlib.contextmanager
def _writing(conn, path, what):
    """One transaction (``with conn:``); SQLite's write errors (disk full, read-only
    file, locked past the timeout) become :class:`JournalWriteError`: nothing was saved."""
    try:
        with conn:
            yield conn
    except sqlite3.IntegrityError:
        raise
    except sqlite3.Error as error:
        if conn.in_transaction:
            conn.rollback()
        why = "the disk (or the database's size limit) is full" if "full" in str(error) \
            else str(error)
        raise JournalWriteError(f"the journal {path} could not be written while {what}: "
                                f"{why}. Nothing was saved and nothing was taught: these "
                                f"answers are not in the journal ({error})") from error


def append_batch(conn, path, kind, rows):
    """Write ``rows`` (dicts of key, label, annotator, round, model_version, source;
    JSON text already) as one batch in one transaction. Returns the batch id and how many
    answers were written (an answer whose ``source`` is already journaled is skipped)."""
    now = time.time()
    with _writing(conn, path, f"writing {len(rows)} answers"):
        batch = conn.execute("INSERT INTO batches (kind, time) VALUES (?, ?)",
                             (kind, now)).lastrowid
        before = conn.total_changes
        conn.executemany(
            "INSERT OR IGNORE INTO answers (batch, key, label, annotator, time, round, "
            "model_version, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(batch, r["key"], r["label"], r["annotator"], r.get("time", now), r["round"],
              r["model_version"], r.get("source")) for r in rows])
        written = conn.total_changes - before
    return batch, written


def append_teach(conn, path, batches, taught, labels, error=None):
    """Record one attempt to teach ``batches``: ``labels`` is a list of (key, label)
    JSON text pairs the learner's labeled set was given."""
    with _writing(conn, path, "recording what was taught"):
        conn.execute("INSERT INTO teaches (batches, taught, labels, error, time) "
                     "VALUES (?, ?, ?, ?, ?)",
                     (json.dumps(list(batches)), int(bool(taught)),
                      json.dumps([list(pair) for pair in labels]), error, time.time()))


def read_since(conn, last_answer, last_teach):
    """Answers and teach records written after the given ids (by any process)."""
    answers = conn.execute(
        "SELECT id, batch, key, label, annotator, time, round, model_version, source "
        "FROM answers WHERE id > ? ORDER BY id", (last_answer,)).fetchall()
    teaches = conn.execute(
        "SELECT id, batches, taught, labels, error FROM teaches WHERE id > ? ORDER BY id",
        (last_teach,)).fetchall()
    return answers, teaches
