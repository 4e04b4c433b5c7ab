"""The durable transaction journal: SQLite in ``data_dir/journal.sqlite``.

What the agent owes the central system — transactions and their queued
StartTransaction / MeterValues / StopTransaction messages — is written here
before the agent acts as if it was sent, and removed only when confirmed.

Durability is chosen per write, to be kind to SD cards:

* a transaction's start, its confirmation (the central system's id) and its
  stop are committed with ``synchronous=FULL``: fsync'd, they survive a power cut;
* sampled meter values and the running transaction's latest meter reading are
  committed with ``synchronous=NORMAL``: written to the WAL (they survive a
  crash or kill -9 of the agent) and fsync'd with the next FULL commit or
  checkpoint, so there is no fsync per sample.

The journal is bounded (``max_entries`` queued messages): when it is full the
oldest meter values go first, never a StartTransaction or StopTransaction.

A write that fails (disk full, I/O error) makes ``healthy`` False and is
logged once; the station then starts no new transaction until a later write
succeeds. A database that cannot be read at start (corrupt after a power cut)
is set aside as ``journal.sqlite.corrupt-N`` after salvaging every row that
can still be read.

CPython-only (sqlite3); the portable core sees only the methods below.
"""

import json
import logging
import os
import sqlite3

log = logging.getLogger(__name__)

DEFAULT_MAX_ENTRIES = 20000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tx (local_id INTEGER PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS msg (
    jseq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, local_id INTEGER NOT NULL,
    connector_id INTEGER NOT NULL, samples TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    backend TEXT NOT NULL DEFAULT '', info TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _put_tx(db, tx: dict) -> None:
    """Write (insert or replace) a transaction's row."""
    db.execute("INSERT OR REPLACE INTO tx VALUES (?, ?)", (tx["local_id"], json.dumps(tx)))


class JournalError(Exception):
    """The journal could not be written."""


class TransactionJournal:
    """Durable store of transactions and their queued messages."""

    def __init__(self, path: str, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.path = path
        self.max_entries = max_entries
        self.healthy = True
        self.last_error = ""
        self.commits = 0  # every commit (a write to the WAL)
        self.fsync_commits = 0  # commits with synchronous=FULL
        self.dropped_meter_entries = 0
        self._db: sqlite3.Connection | None = None
        self._sync_full: bool | None = None
        self._msg_count = 0
        # Key of the central system that rows written before messages carried one
        # belong to (agent/link/endpoint.py sets it before open()): migrated on open.
        self.default_backend = ""

    # ------------------------------------------------------------------ open / load
    @staticmethod
    def path_in(data_dir: str) -> str:
        return os.path.join(data_dir, "journal.sqlite")

    def open(self) -> tuple:
        """Open (creating or repairing) the journal; returns (transactions, messages)
        as lists of dicts, messages in the order they must be sent."""
        try:
            self._db = self._connect()
            return self._load()
        except sqlite3.DatabaseError as e:
            log.error("journal %s cannot be read (%s): salvaging what is readable", self.path, e)
            salvaged = self._salvage()
            self._set_aside()
            self._db = self._connect()
            self._rewrite(*salvaged)
            return self._load()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            os.chmod(self.path, 0o600)
        except OSError:
            pass
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(_SCHEMA)
        db.execute("PRAGMA quick_check").fetchall()
        columns = [row[1] for row in db.execute("PRAGMA table_info(msg)")]
        if "backend" not in columns:
            # A journal from before endpoint switching: its rows get the current backend in _load.
            db.execute("ALTER TABLE msg ADD COLUMN backend TEXT NOT NULL DEFAULT ''")
        if "info" not in columns:
            # A journal from before 0.2: its messages have no sequence number or offline flag.
            db.execute("ALTER TABLE msg ADD COLUMN info TEXT NOT NULL DEFAULT '{}'")
        self._sync_full = None
        return db

    def _load(self) -> tuple:
        txs = [json.loads(d) for (d,) in self._db.execute("SELECT data FROM tx ORDER BY local_id")]
        if self.default_backend:
            self._migrate_backend(txs)
        msgs = [{"jseq": j, "kind": k, "local_id": lid, "connector_id": cid,
                 "samples": json.loads(s), "attempts": a, "backend": b, "info": json.loads(i)}
                for j, k, lid, cid, s, a, b, i in self._db.execute(
                    "SELECT jseq, kind, local_id, connector_id, samples, attempts, backend, info FROM msg "
                    "ORDER BY jseq")]
        self._msg_count = len(msgs)
        return txs, msgs

    def _migrate_backend(self, txs: list) -> None:
        """Rows without a backend (written before messages carried one) belong to
        the current backend, ``default_backend``."""
        old = [t for t in txs if not t.get("backend")]
        for t in old:
            t["backend"] = self.default_backend
        if not old and self._db.execute("SELECT 1 FROM msg WHERE backend = '' LIMIT 1").fetchone() is None:
            return

        def write(db):
            db.execute("UPDATE msg SET backend = ? WHERE backend = ''", (self.default_backend,))
            for t in old:
                _put_tx(db, t)
        self._commit(write, durable=True)
        log.info("journal: rows without a central system assigned to the current one (%d transactions)", len(old))

    def _salvage(self) -> tuple:
        txs, msgs = [], []
        try:
            db = sqlite3.connect(self.path)
        except sqlite3.Error:
            return txs, msgs
        try:
            columns = [row[1] for row in db.execute("PRAGMA table_info(msg)")]
        except sqlite3.Error:
            columns = []
        for table, out in (("tx", txs), ("msg", msgs)):
            cols = "rowid, data" if table == "tx" else "jseq, kind, local_id, connector_id, samples, attempts, %s, %s" % (
                "backend" if "backend" in columns else "''", "info" if "info" in columns else "'{}'")
            seen = set()
            # Forwards until a damaged page, then backwards from the end up to it: the rows
            # on both sides of the damage are kept.
            for order in ("ASC", "DESC"):
                try:
                    for row in db.execute("SELECT %s FROM %s ORDER BY rowid %s" % (cols, table, order)):
                        if row[0] in seen:
                            break  # met the forward scan: everything readable is read
                        seen.add(row[0])
                        try:
                            if table == "tx":
                                out.append(json.loads(row[1]))
                            else:
                                out.append({"jseq": row[0], "kind": row[1], "local_id": row[2],
                                            "connector_id": row[3], "samples": json.loads(row[4]),
                                            "attempts": row[5], "backend": row[6], "info": json.loads(row[7])})
                        except (ValueError, TypeError):
                            continue
                    break  # the whole table was readable
                except sqlite3.Error as e:
                    log.error("journal: rows of %s lost to corruption (%d read %s): %s", table, len(out),
                              "forwards" if order == "ASC" else "in all", e)
        db.close()
        log.warning("journal: salvaged %d transactions and %d queued messages", len(txs), len(msgs))
        return txs, msgs

    def _set_aside(self) -> None:
        n = 1
        while os.path.exists("%s.corrupt-%d" % (self.path, n)):
            n += 1
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(self.path + suffix):
                os.replace(self.path + suffix, "%s.corrupt-%d%s" % (self.path, n, suffix))
        log.warning("journal: damaged file kept as %s.corrupt-%d", self.path, n)

    def _rewrite(self, txs: list, msgs: list) -> None:
        def write(db):
            for t in txs:
                _put_tx(db, t)
            for m in sorted(msgs, key=lambda m: m["jseq"]):
                db.execute("INSERT INTO msg (jseq, kind, local_id, connector_id, samples, attempts, backend, info) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (m["jseq"], m["kind"], m["local_id"],
                                                                m["connector_id"], json.dumps(m["samples"]),
                                                                m["attempts"], m.get("backend", ""),
                                                                json.dumps(m.get("info", {}))))
        self._commit(write, durable=True)

    def close(self) -> None:
        if self._db is not None:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
            self._db.close()
            self._db = None

    # ------------------------------------------------------------------ writes
    def _commit(self, work, durable: bool):
        """Run ``work(db)`` in one transaction; FULL sync when ``durable``."""
        db = self._db
        if db is None:
            raise JournalError("journal is closed")
        try:
            if self._sync_full != durable:
                db.execute("PRAGMA synchronous=%s" % ("FULL" if durable else "NORMAL"))
                self._sync_full = durable
            db.execute("BEGIN IMMEDIATE")
            try:
                result = work(db)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            if self.healthy:
                log.error("journal write failed (%s): no new transactions until it works again", e)
            self.healthy = False
            self.last_error = str(e)
            raise JournalError(str(e)) from e
        if not self.healthy:
            log.warning("journal writes work again")
        self.healthy = True
        self.last_error = ""
        self.commits += 1
        if durable:
            self.fsync_commits += 1
        return result

    def probe(self) -> bool:
        """Try a small write: True if the journal can be written now."""
        try:
            self._commit(lambda db: db.execute("INSERT OR REPLACE INTO meta VALUES ('probe', '1')"), durable=False)
        except JournalError:
            return False
        return True

    def save_transaction(self, tx: dict, durable: bool = True) -> None:
        self._commit(lambda db: _put_tx(db, tx), durable)

    def append(self, kind: str, local_id: int, connector_id: int, samples: list,
               tx: dict | None = None, remove: tuple = (), durable: bool = True, backend: str = "",
               info: dict | None = None) -> tuple:
        """Queue a message (optionally saving its transaction and removing confirmed
        entries in the same commit); returns (its journal sequence number, the jseqs of
        the meter values dropped because the journal was full)."""
        def work(db):
            for jseq in remove:
                db.execute("DELETE FROM msg WHERE jseq = ?", (jseq,))
            if tx is not None:
                _put_tx(db, tx)
            dropped = []
            if kind == "meter" and self._msg_count - len(remove) >= self.max_entries:
                dropped = [j for (j,) in db.execute(
                    "SELECT jseq FROM msg WHERE kind = 'meter' ORDER BY jseq LIMIT ?",
                    (self._msg_count - len(remove) - self.max_entries + 1,))]
                for j in dropped:
                    db.execute("DELETE FROM msg WHERE jseq = ?", (j,))
            cur = db.execute("INSERT INTO msg (kind, local_id, connector_id, samples, backend, info) "
                             "VALUES (?, ?, ?, ?, ?, ?)", (kind, local_id, connector_id, json.dumps(samples), backend,
                                                           json.dumps(info or {})))
            return cur.lastrowid, dropped
        jseq, dropped = self._commit(work, durable)
        self._msg_count += 1 - len(remove) - len(dropped)
        self.dropped_meter_entries += len(dropped)
        if dropped:
            log.warning("journal full (%d entries): dropped the %d oldest meter values",
                        self.max_entries, len(dropped))
        return jseq, dropped

    def remove(self, jseqs: tuple, tx: dict | None = None, delete_tx: int | None = None,
               durable: bool = True) -> None:
        """Remove confirmed entries; optionally update or delete their transaction."""
        def work(db):
            for jseq in jseqs:
                db.execute("DELETE FROM msg WHERE jseq = ?", (jseq,))
            if tx is not None:
                _put_tx(db, tx)
            if delete_tx is not None:
                db.execute("DELETE FROM tx WHERE local_id = ?", (delete_tx,))
        self._commit(work, durable)
        self._msg_count -= len(jseqs)

    def replace_all(self, txs: list, msgs: list) -> list:
        """Make the journal hold exactly ``txs`` and ``msgs`` (recovery after failed
        writes: memory is then the truth); returns the new jseq of each message."""
        def work(db):
            db.execute("DELETE FROM msg")
            db.execute("DELETE FROM tx")
            for t in txs:
                db.execute("INSERT INTO tx VALUES (?, ?)", (t["local_id"], json.dumps(t)))
            return [db.execute("INSERT INTO msg (kind, local_id, connector_id, samples, attempts, backend, info) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?)", (m["kind"], m["local_id"], m["connector_id"],
                                                                json.dumps(m["samples"]), m["attempts"],
                                                                m.get("backend", ""),
                                                                json.dumps(m.get("info", {})))).lastrowid
                    for m in msgs]
        jseqs = self._commit(work, durable=True)
        self._msg_count = len(msgs)
        return jseqs

    def set_backend(self, jseqs: tuple, txs: list, backend: str) -> None:
        """Give queued messages and their transactions to another central system (durably)."""
        def work(db):
            for jseq in jseqs:
                db.execute("UPDATE msg SET backend = ? WHERE jseq = ?", (backend, jseq))
            for t in txs:
                _put_tx(db, t)
        self._commit(work, durable=True)

    def __len__(self) -> int:
        return self._msg_count

    def statistics(self) -> dict:
        """Figures for a diagnostics archive: health, queue, writes, size on disk."""
        by_kind = {}
        if self._db is not None:
            try:
                by_kind = dict(self._db.execute("SELECT kind, COUNT(*) FROM msg GROUP BY kind").fetchall())
            except sqlite3.Error as e:
                by_kind = {"error": str(e)}
        size = 0
        for suffix in ("", "-wal", "-shm"):
            try:
                size += os.path.getsize(self.path + suffix)
            except OSError:
                pass
        return {"healthy": self.healthy, "last_error": self.last_error, "queued_messages": self._msg_count,
                "queued_by_kind": by_kind, "max_entries": self.max_entries, "commits": self.commits,
                "fsync_commits": self.fsync_commits, "dropped_meter_entries": self.dropped_meter_entries,
                "size_bytes": size}
