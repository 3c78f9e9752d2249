//! Parameter lists, shaped like rusqlite's so the store's call sites read the same:
//! `params![a, b]`, `[id]`, `[]`, `()` and `params_from_iter(values.iter())`.

use super::Result;
use super::value::{ToValue, Value, ValueRef};

/// Something that binds a statement's parameters, in order (`?1` is the first).
pub trait Params {
    /// Calls `bind` with the values to bind, in order.
    fn with_values<R>(&self, bind: impl FnOnce(&[ValueRef<'_>]) -> R) -> Result<R>;
}

impl Params for () {
    fn with_values<R>(&self, bind: impl FnOnce(&[ValueRef<'_>]) -> R) -> Result<R> {
        Ok(bind(&[]))
    }
}

impl Params for &[&dyn ToValue] {
    fn with_values<R>(&self, bind: impl FnOnce(&[ValueRef<'_>]) -> R) -> Result<R> {
        let values = self
            .iter()
            .map(|v| v.to_value())
            .collect::<Result<Vec<_>>>()?;
        Ok(bind(&values))
    }
}

/// `[]`: no parameters (a literal empty array needs one concrete element type).
impl Params for [&dyn ToValue; 0] {
    fn with_values<R>(&self, bind: impl FnOnce(&[ValueRef<'_>]) -> R) -> Result<R> {
        Ok(bind(&[]))
    }
}

macro_rules! arrays {
    ($($n:literal)*) => {$(
        impl<T: ToValue> Params for [T; $n] {
            fn with_values<R>(&self, bind: impl FnOnce(&[ValueRef<'_>]) -> R) -> Result<R> {
                let values = self.iter().map(ToValue::to_value).collect::<Result<Vec<_>>>()?;
                Ok(bind(&values))
            }
        }
        impl<T: ToValue + ?Sized> Params for &[&T; $n] {
            fn with_values<R>(&self, bind: impl FnOnce(&[ValueRef<'_>]) -> R) -> Result<R> {
                let values = self.iter().map(|v| v.to_value()).collect::<Result<Vec<_>>>()?;
                Ok(bind(&values))
            }
        }
    )*};
}
arrays!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);

/// Parameters from an iterator (lists built at run time).
pub struct ParamsFromIter<I>(I);

/// Binds every item of `iter`, in order.
pub fn params_from_iter<I>(iter: I) -> ParamsFromIter<I>
where
    I: IntoIterator + Clone,
    I::Item: ToValue,
{
    ParamsFromIter(iter)
}

impl<I> Params for ParamsFromIter<I>
where
    I: IntoIterator + Clone,
    I::Item: ToValue,
{
    fn with_values<R>(&self, bind: impl FnOnce(&[ValueRef<'_>]) -> R) -> Result<R> {
        // An item may be yielded by value (a `usize`) or by a short-lived reference, so
        // each is copied out before binding: these are run-time filter lists, not the
        // insert path.
        let owned = self
            .0
            .clone()
            .into_iter()
            .map(|item| item.to_value().map(Value::from_ref))
            .collect::<Result<Vec<_>>>()?;
        let values: Vec<ValueRef<'_>> = owned.iter().map(Value::as_ref).collect();
        Ok(bind(&values))
    }
}
