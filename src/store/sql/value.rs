//! The values that cross the connection layer, in both directions, and the conversions
//! the store's queries use (`row.get::<_, String>(0)`, `params![id, limit as i64]`).
//!
//! They mirror SQLite's five storage classes, because the store's queries were written
//! against them; the PostgreSQL engine maps each class onto the column's declared type.

use std::borrow::Cow;
use std::sync::Arc;

use super::{Error, Result};

/// A borrowed value: a bound parameter, or a column of the current row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    Null,
    Integer(i64),
    Real(f64),
    /// UTF-8 is checked when read as a string (SQLite does not check what it stores).
    Text(&'a [u8]),
    Blob(&'a [u8]),
}

/// An owned value, for parameter lists built at run time (dynamic filters).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    /// This value, borrowed.
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }
    }
}

impl Value {
    /// A copy of a borrowed value.
    pub fn from_ref(value: ValueRef<'_>) -> Value {
        match value {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Integer(i),
            ValueRef::Real(f) => Value::Real(f),
            ValueRef::Text(b) => Value::Text(String::from_utf8_lossy(b).into_owned()),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        }
    }
}

impl ValueRef<'_> {
    /// The storage class's name, for conversion errors.
    fn kind(&self) -> &'static str {
        match self {
            ValueRef::Null => "NULL",
            ValueRef::Integer(_) => "INTEGER",
            ValueRef::Real(_) => "REAL",
            ValueRef::Text(_) => "TEXT",
            ValueRef::Blob(_) => "BLOB",
        }
    }
}

/// A Rust value that can be bound as a parameter. `Sync`, so a parameter list can be
/// handed to another thread (a blocking client's).
pub trait ToValue: Sync {
    fn to_value(&self) -> Result<ValueRef<'_>>;
}

/// A Rust value that can be read from a column.
pub trait FromValue: Sized {
    fn from_value(value: ValueRef<'_>) -> std::result::Result<Self, String>;
}

fn mismatch<T>(value: ValueRef<'_>, wanted: &str) -> std::result::Result<T, String> {
    Err(format!("a {} column read as {wanted}", value.kind()))
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Result<ValueRef<'_>> {
        (**self).to_value()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Result<ValueRef<'_>> {
        match self {
            Some(v) => v.to_value(),
            None => Ok(ValueRef::Null),
        }
    }
}

impl ToValue for Value {
    fn to_value(&self) -> Result<ValueRef<'_>> {
        Ok(self.as_ref())
    }
}

impl ToValue for ValueRef<'_> {
    fn to_value(&self) -> Result<ValueRef<'_>> {
        Ok(*self)
    }
}

impl ToValue for str {
    fn to_value(&self) -> Result<ValueRef<'_>> {
        Ok(ValueRef::Text(self.as_bytes()))
    }
}

macro_rules! text_like {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Result<ValueRef<'_>> {
                Ok(ValueRef::Text(AsRef::<str>::as_ref(self).as_bytes()))
            }
        }
    )*};
}
text_like!(String, Box<str>, Arc<str>, Cow<'_, str>);

impl ToValue for [u8] {
    fn to_value(&self) -> Result<ValueRef<'_>> {
        Ok(ValueRef::Blob(self))
    }
}

impl ToValue for Vec<u8> {
    fn to_value(&self) -> Result<ValueRef<'_>> {
        Ok(ValueRef::Blob(self))
    }
}

macro_rules! small_integer {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Result<ValueRef<'_>> {
                Ok(ValueRef::Integer(i64::from(*self)))
            }
        }
        impl FromValue for $t {
            fn from_value(value: ValueRef<'_>) -> std::result::Result<Self, String> {
                match value {
                    ValueRef::Integer(i) => <$t>::try_from(i)
                        .map_err(|_| format!("{i} is out of range for {}", stringify!($t))),
                    other => mismatch(other, stringify!($t)),
                }
            }
        }
    )*};
}
small_integer!(i8, i16, i32, u8, u16, u32);

macro_rules! wide_integer {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Result<ValueRef<'_>> {
                i64::try_from(*self).map(ValueRef::Integer).map_err(|_| {
                    Error::Param(format!("{} does not fit a 64-bit signed integer", self))
                })
            }
        }
        impl FromValue for $t {
            fn from_value(value: ValueRef<'_>) -> std::result::Result<Self, String> {
                match value {
                    ValueRef::Integer(i) => <$t>::try_from(i)
                        .map_err(|_| format!("{i} is out of range for {}", stringify!($t))),
                    other => mismatch(other, stringify!($t)),
                }
            }
        }
    )*};
}
wide_integer!(u64, usize, isize);

impl ToValue for i64 {
    fn to_value(&self) -> Result<ValueRef<'_>> {
        Ok(ValueRef::Integer(*self))
    }
}

impl FromValue for i64 {
    fn from_value(value: ValueRef<'_>) -> std::result::Result<Self, String> {
        match value {
            ValueRef::Integer(i) => Ok(i),
            other => mismatch(other, "i64"),
        }
    }
}

impl ToValue for bool {
    fn to_value(&self) -> Result<ValueRef<'_>> {
        Ok(ValueRef::Integer(i64::from(*self)))
    }
}

impl FromValue for bool {
    fn from_value(value: ValueRef<'_>) -> std::result::Result<Self, String> {
        match value {
            ValueRef::Integer(i) => Ok(i != 0),
            other => mismatch(other, "bool"),
        }
    }
}

impl ToValue for f64 {
    fn to_value(&self) -> Result<ValueRef<'_>> {
        Ok(ValueRef::Real(*self))
    }
}

impl FromValue for f64 {
    fn from_value(value: ValueRef<'_>) -> std::result::Result<Self, String> {
        match value {
            ValueRef::Real(f) => Ok(f),
            ValueRef::Integer(i) => Ok(i as f64),
            other => mismatch(other, "f64"),
        }
    }
}

impl FromValue for String {
    fn from_value(value: ValueRef<'_>) -> std::result::Result<Self, String> {
        match value {
            ValueRef::Text(bytes) => std::str::from_utf8(bytes)
                .map(str::to_owned)
                .map_err(|e| format!("stored text is not UTF-8: {e}")),
            other => mismatch(other, "text"),
        }
    }
}

impl FromValue for Box<str> {
    fn from_value(value: ValueRef<'_>) -> std::result::Result<Self, String> {
        String::from_value(value).map(String::into_boxed_str)
    }
}

impl FromValue for Arc<str> {
    fn from_value(value: ValueRef<'_>) -> std::result::Result<Self, String> {
        String::from_value(value).map(Arc::from)
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: ValueRef<'_>) -> std::result::Result<Self, String> {
        match value {
            ValueRef::Blob(b) | ValueRef::Text(b) => Ok(b.to_vec()),
            other => mismatch(other, "bytes"),
        }
    }
}

impl FromValue for Value {
    fn from_value(value: ValueRef<'_>) -> std::result::Result<Self, String> {
        Ok(match value {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Integer(i),
            ValueRef::Real(f) => Value::Real(f),
            ValueRef::Text(b) => Value::Text(String::from_value(ValueRef::Text(b))?),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        })
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: ValueRef<'_>) -> std::result::Result<Self, String> {
        match value {
            ValueRef::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_as_strict_as_sqlites_own() {
        assert_eq!(i64::from_value(ValueRef::Integer(7)), Ok(7));
        assert!(String::from_value(ValueRef::Integer(7)).is_err());
        assert!(i64::from_value(ValueRef::Text(b"7")).is_err());
        assert!(i64::from_value(ValueRef::Null).is_err());
        assert_eq!(Option::<i64>::from_value(ValueRef::Null), Ok(None));
        assert!(u8::from_value(ValueRef::Integer(300)).is_err());
        assert!(String::from_value(ValueRef::Text(&[0xff])).is_err());
    }

    #[test]
    fn an_unsigned_value_too_wide_for_sqlite_is_refused_not_wrapped() {
        assert!(u64::MAX.to_value().is_err());
        assert_eq!(5u64.to_value().ok(), Some(ValueRef::Integer(5)));
    }
}
