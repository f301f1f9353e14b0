//! The journal's schema and its migrations, versioned with SQLite's
//! `user_version`: migration N brings the schema from version N to N+1.

use crate::JournalError;
use rusqlite::Connection;
use std::path::Path;

/// The migrations, in order. Never edit a released one: append.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the first schema.
    "
    CREATE TABLE runs (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        command_line TEXT    NOT NULL,  -- JSON array (argv)
        user         TEXT    NOT NULL,
        pid          INTEGER NOT NULL,
        hostname     TEXT    NOT NULL,
        started_at   TEXT    NOT NULL,
        ended_at     TEXT,
        status       TEXT    NOT NULL,
        mode         TEXT    NOT NULL,
        parameters   TEXT    NOT NULL DEFAULT '{}'  -- JSON
    );
    CREATE TABLE steps (
        run_id     INTEGER NOT NULL REFERENCES runs (id),
        idx        INTEGER NOT NULL,
        name       TEXT    NOT NULL,
        kind       TEXT    NOT NULL,
        batch      INTEGER,
        hosts      TEXT    NOT NULL,  -- folded node set
        started_at TEXT    NOT NULL,
        ended_at   TEXT,
        status     TEXT    NOT NULL,
        PRIMARY KEY (run_id, idx)
    );
    CREATE TABLE host_results (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id      INTEGER NOT NULL,
        step_idx    INTEGER NOT NULL,
        host        TEXT    NOT NULL,
        rc          INTEGER,
        stdout      BLOB    NOT NULL,
        stderr      BLOB    NOT NULL,
        duration_ms INTEGER NOT NULL,
        outcome     TEXT    NOT NULL,
        recorded_at TEXT    NOT NULL,
        FOREIGN KEY (run_id, step_idx) REFERENCES steps (run_id, idx)
    );
    CREATE INDEX host_results_by_step ON host_results (run_id, step_idx, host);
    CREATE TABLE compensations (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id      INTEGER NOT NULL REFERENCES runs (id),
        host        TEXT    NOT NULL,
        action      TEXT    NOT NULL,
        recorded_at TEXT    NOT NULL,
        done_at     TEXT
    );
    CREATE INDEX compensations_pending ON compensations (done_at, run_id, host);
    CREATE TABLE locks (
        host     TEXT    PRIMARY KEY,
        run_id   INTEGER NOT NULL REFERENCES runs (id),
        user     TEXT    NOT NULL,
        pid      INTEGER NOT NULL,
        hostname TEXT    NOT NULL,
        since    TEXT    NOT NULL
    );
    CREATE INDEX locks_by_run ON locks (run_id);
    ",
    // 1 -> 2: the process behind a pid (its start time, in clock ticks
    // after boot, field 22 of /proc/PID/stat, and the boot id), so that a
    // reused pid or a reboot is not taken for a live run; and the events
    // of a run (resume decisions, forced take-overs, migration starts).
    "
    ALTER TABLE runs ADD COLUMN pid_start INTEGER;
    ALTER TABLE runs ADD COLUMN boot_id TEXT;
    ALTER TABLE locks ADD COLUMN pid_start INTEGER;
    ALTER TABLE locks ADD COLUMN boot_id TEXT;
    CREATE TABLE run_events (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id       INTEGER NOT NULL REFERENCES runs (id),
        kind         TEXT    NOT NULL,
        at           TEXT    NOT NULL,
        user         TEXT    NOT NULL,
        hostname     TEXT    NOT NULL,
        pid          INTEGER NOT NULL,
        command_line TEXT    NOT NULL,  -- JSON array (argv)
        detail       TEXT    NOT NULL DEFAULT '{}'  -- JSON
    );
    CREATE INDEX run_events_by_run ON run_events (run_id, id);
    ",
];

/// The schema version this build writes.
pub(crate) const VERSION: i64 = MIGRATIONS.len() as i64;

/// Applies the missing migrations, each in its own immediate transaction
/// (two processes opening a fresh journal at once do not both migrate).
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), JournalError> {
    let sql = |source| JournalError::Sqlite {
        path: path.to_owned(),
        source,
    };
    loop {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql)?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql)?;
        if version > VERSION {
            return Err(JournalError::TooNew {
                path: path.to_owned(),
                found: version,
                known: VERSION,
            });
        }
        if version == VERSION {
            return Ok(());
        }
        tx.execute_batch(MIGRATIONS[version as usize])
            .map_err(sql)?;
        tx.pragma_update(None, "user_version", version + 1)
            .map_err(sql)?;
        tx.commit().map_err(sql)?;
    }
}
