//! The connection layer's error, whichever engine raised it.

/// A failed statement, bind or read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}", sqlite_message(.0))]
    Sqlite(rusqlite::Error),
    #[error("{}", postgres_message(.0))]
    Postgres(#[from] postgres::Error),
    /// `query_row` found no row (callers turn it into `None` with [`OptionalExtension`]).
    #[error("the query returned no rows")]
    NoRows,
    /// A stored value did not fit the Rust type it was read as.
    #[error("column {column}: {message}")]
    Conversion { column: usize, message: String },
    /// A parameter could not be bound (e.g. an unsigned integer beyond 2^63).
    #[error("parameter: {0}")]
    Param(String),
    /// TLS to PostgreSQL could not be set up (no usable CA certificate).
    #[error("TLS: {0}")]
    Tls(String),
}

/// The layer's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::QueryReturnedNoRows => Error::NoRows,
            other => Error::Sqlite(other),
        }
    }
}

impl Error {
    /// A value read from column `column` could not be decoded (e.g. stored JSON).
    pub fn conversion(column: usize, cause: impl std::fmt::Display) -> Error {
        Error::Conversion {
            column,
            message: cause.to_string(),
        }
    }

    /// Whether this is a `lock_timeout` giving up (PostgreSQL SQLSTATE 55P03): the
    /// statement waited its allowance for a lock other work held; try again later.
    pub fn is_lock_timeout(&self) -> bool {
        matches!(self, Error::Postgres(e) if e.code().is_some_and(|c| c.code() == "55P03"))
    }

    /// Whether the database failed rather than the statement: unreachable, full, busy,
    /// shutting down. Nothing was stored and the same request may succeed later, so the
    /// API answers 503 with `Retry-After`.
    pub fn is_storage_failure(&self) -> bool {
        match self {
            Error::Sqlite(e) => {
                use rusqlite::ErrorCode as C;
                matches!(
                    e.sqlite_error_code(),
                    Some(
                        C::DiskFull
                            | C::SystemIoFailure
                            | C::DatabaseBusy
                            | C::DatabaseLocked
                            | C::CannotOpen
                            | C::ReadOnly
                            | C::OutOfMemory
                    )
                )
            }
            Error::Postgres(e) => {
                if e.is_closed() || e.as_db_error().is_none() {
                    // The connection broke (server down, network): not the statement.
                    return true;
                }
                e.code().is_some_and(|code| {
                    let class = &code.code()[..2];
                    // 08 connection, 53 resources (disk full, out of memory), 57 operator
                    // intervention (shutdown), 58 system I/O; 40001/40P01 retryable.
                    matches!(class, "08" | "53" | "57" | "58")
                        || matches!(code.code(), "40001" | "40P01" | "25006")
                })
            }
            _ => false,
        }
    }

    /// Whether a UNIQUE or PRIMARY KEY constraint refused the row.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            Error::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::ConstraintViolation)
            ),
            Error::Postgres(e) => e.code().is_some_and(|c| c.code() == "23505"),
            _ => false,
        }
    }
}

/// `.optional()`: a missing row as `None` instead of [`Error::NoRows`].
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(Error::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A rusqlite error's message without the statement it came from: a statement can be
/// ~100 KB, and logs must not carry whole statements (or the request data bound in them).
fn sqlite_message(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqlInputError { msg, offset, .. } => {
            format!("{msg} (at offset {offset} of the statement)")
        }
        other => other.to_string(),
    }
}

/// A PostgreSQL error's message and SQLSTATE, without the statement.
fn postgres_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        // A connection failure's cause (refused, TLS certificate, timeout) is in the
        // source chain; the operator needs it, not just "error connecting to server".
        None => {
            let mut message = e.to_string();
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                let text = c.to_string();
                if !message.contains(&text) {
                    message.push_str(": ");
                    message.push_str(&text);
                }
                cause = c.source();
            }
            message
        }
    }
}
