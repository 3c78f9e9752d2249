//! Unit tests for `store::fold`.
