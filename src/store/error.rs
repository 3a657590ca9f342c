//! Store errors by cause, not by layer: *unavailable* (the database cannot be reached or cannot
//! work right now — wait and try again) or *rejected* (the database refused this data — waiting
//! will not change its mind, so the job is dead-lettered with the database's reason).

/// A store failure, named by what happens next.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Failed to connect to the database at {host}: {source}")]
    Connect { host: String, source: sqlx::Error },
    /// Connection lost or refused, pool timeout, server shutting down or out of resources, a
    /// read-only server after a failover, a deadlock: the worker halts and waits.
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    /// Constraint, data, size or encoding errors: this data will never be accepted.
    #[error("the database rejected the data: {0}")]
    Rejected(sqlx::Error),
    #[error("Failed to apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// True when the database refused the data itself (retrying the same write cannot succeed).
    pub fn is_rejected(&self) -> bool {
        matches!(self, StoreError::Rejected(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match cause_of(&e) {
            Cause::Unavailable => StoreError::Unavailable(e),
            Cause::Rejected => StoreError::Rejected(e),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    Unavailable,
    Rejected,
}

fn cause_of(e: &sqlx::Error) -> Cause {
    use sqlx::Error as E;
    match e {
        E::Database(db) => match db.code() {
            Some(code) => cause_of_code(&code),
            // A database error without a code is a driver-level refusal of the statement.
            None => Cause::Rejected,
        },
        // The data could not be encoded or the answer decoded: the same row fails every time.
        E::Encode(_) | E::Decode(_) | E::ColumnDecode { .. } | E::TypeNotFound { .. } => {
            Cause::Rejected
        }
        // Io, Tls, Protocol, PoolTimedOut, PoolClosed, WorkerCrashed, Configuration, …: the
        // database (or the way to it) is the problem, not the data.
        _ => Cause::Unavailable,
    }
}

/// PostgreSQL SQLSTATEs are five characters (some all digits); SQLite codes are (extended)
/// result-code numbers of at most four digits.
fn cause_of_code(code: &str) -> Cause {
    if code.len() < 5
        && let Ok(n) = code.parse::<i64>()
    {
        return sqlite_cause(n);
    }
    match code {
        // Read-only transaction (a replica after a failover), deadlock, serialization failure.
        "25006" | "40001" | "40P01" => Cause::Unavailable,
        c if c.starts_with("08") || c.starts_with("53") || c.starts_with("57P") => {
            Cause::Unavailable
        }
        // 58: system errors (disk, files); XX: internal errors of the server.
        c if c.starts_with("58") || c.starts_with("XX") => Cause::Unavailable,
        // 22 data, 23 integrity, 54 program limits (index row size), 42 syntax/access, …
        _ => Cause::Rejected,
    }
}

/// SQLite primary result codes (the low byte of an extended code).
fn sqlite_cause(code: i64) -> Cause {
    const BUSY: i64 = 5;
    const LOCKED: i64 = 6;
    const NOMEM: i64 = 7;
    const READONLY: i64 = 8;
    const IOERR: i64 = 10;
    const CORRUPT: i64 = 11;
    const FULL: i64 = 13;
    const CANTOPEN: i64 = 14;
    const PROTOCOL: i64 = 15;
    match code & 0xff {
        BUSY | LOCKED | NOMEM | READONLY | IOERR | CORRUPT | FULL | CANTOPEN | PROTOCOL => {
            Cause::Unavailable
        }
        // CONSTRAINT (19), TOOBIG (18), MISMATCH (20), RANGE (25), …
        _ => Cause::Rejected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_codes_split_into_unavailable_and_rejected() {
        for code in [
            "08006", "08001", "53300", "57P01", "57P03", "25006", "40P01", "58030",
        ] {
            assert_eq!(cause_of_code(code), Cause::Unavailable, "{code}");
        }
        // 54000: index row size exceeds btree maximum; 23505 unique; 22021 bad encoding (NUL).
        for code in [
            "54000", "23505", "23502", "22001", "22021", "22P02", "42P01",
        ] {
            assert_eq!(cause_of_code(code), Cause::Rejected, "{code}");
        }
    }

    #[test]
    fn sqlite_codes_split_by_their_primary_code() {
        assert_eq!(cause_of_code("5"), Cause::Unavailable); // BUSY
        assert_eq!(cause_of_code("13"), Cause::Unavailable); // FULL
        assert_eq!(cause_of_code("778"), Cause::Unavailable); // IOERR_WRITE
        assert_eq!(cause_of_code("2067"), Cause::Rejected); // CONSTRAINT_UNIQUE
        assert_eq!(cause_of_code("18"), Cause::Rejected); // TOOBIG
    }

    #[test]
    fn connection_level_errors_are_unavailable_and_decode_errors_rejected() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(matches!(StoreError::from(io), StoreError::Unavailable(_)));
        assert!(matches!(
            StoreError::from(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
        let decode = sqlx::Error::Decode("bad".into());
        assert!(StoreError::from(decode).is_rejected());
    }
}
