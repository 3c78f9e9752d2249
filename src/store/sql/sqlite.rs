//! The SQLite side of the connection layer: binds and reads through rusqlite.

use rusqlite::types::{ToSqlOutput, ValueRef as SqliteRef};

use super::param_list::Params;
use super::value::ValueRef;
use super::{Error, Result};

impl rusqlite::ToSql for ValueRef<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            ValueRef::Null => SqliteRef::Null,
            ValueRef::Integer(i) => SqliteRef::Integer(i),
            ValueRef::Real(f) => SqliteRef::Real(f),
            ValueRef::Text(t) => SqliteRef::Text(t),
            ValueRef::Blob(b) => SqliteRef::Blob(b),
        }))
    }
}

fn bind(stmt: &mut rusqlite::Statement<'_>, values: &[ValueRef<'_>]) -> rusqlite::Result<()> {
    let expected = stmt.parameter_count();
    if values.len() != expected {
        return Err(rusqlite::Error::InvalidParameterCount(
            values.len(),
            expected,
        ));
    }
    for (i, v) in values.iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, v)?;
    }
    Ok(())
}

/// Binds `params` and runs `stmt` to completion.
pub(super) fn execute(stmt: &mut rusqlite::Statement<'_>, params: &impl Params) -> Result<usize> {
    params.with_values(|values| {
        bind(stmt, values)?;
        Ok(stmt.raw_execute()?)
    })?
}

/// Binds `params` and starts reading `stmt`'s rows.
pub(super) fn query<'s>(
    stmt: &'s mut rusqlite::Statement<'_>,
    params: &impl Params,
) -> Result<rusqlite::Rows<'s>> {
    params.with_values(|values| bind(stmt, values).map_err(Error::from))??;
    Ok(stmt.raw_query())
}

/// Column `idx` of a SQLite row.
pub(super) fn column<'r>(row: &'r rusqlite::Row<'_>, idx: usize) -> Result<ValueRef<'r>> {
    Ok(match row.get_ref(idx)? {
        SqliteRef::Null => ValueRef::Null,
        SqliteRef::Integer(i) => ValueRef::Integer(i),
        SqliteRef::Real(f) => ValueRef::Real(f),
        SqliteRef::Text(t) => ValueRef::Text(t),
        SqliteRef::Blob(b) => ValueRef::Blob(b),
    })
}
