//! Budgets for one render: Liquid has none, and a template loops over trigger data, so a
//! body such as `{% for i in (1..data.n) %}{% endfor %}` with `n = 1e9`, or a string
//! doubled with `append` in a loop, would take the process's memory and time.
//!
//! Each field render (one `render_to` of one Liquid field) gets a fresh [`Budget`] in the
//! runtime's registers (liquid builds a runtime per render; its stack frames share the
//! root's registers). The budgeted `for`/`tablerow`/`capture` blocks (`loops.rs`, `capture.rs`) and
//! every filter (wrapped by [`Budgeted`]) charge it:
//! - loop iterations, all loops of the render together (nested loops count each inner
//!   iteration), and a range's length is checked *before* it is materialized;
//! - bytes that filters and captures add: a value's weight after a filter minus its
//!   weight before (a `sort` or `map` of large data costs nothing; `append`, `replace`,
//!   `concat`, `split` into characters cost what they add);
//! - wall time since the budget's first use, checked at every iteration, filter and
//!   capture (everything else a template does is linear in its source).
//!
//! Over budget, the charging plugin returns a Liquid error whose message starts with
//! [`OVER_BUDGET`]; the render fails with it as its `RenderError` (the recipient's step
//! fails with that reason, other recipients go on).

use std::time::{Duration, Instant};

use liquid_core::model::{Value, ValueView};
use liquid_core::parser::{FilterArguments, ParameterReflection};
use liquid_core::{Error, Filter, FilterReflection, ParseFilter, Result, Runtime};

/// Loop iterations one field render may run, all loops together; also the longest range.
pub const MAX_LOOP_ITERATIONS: u64 = 10_000;
/// Bytes filters and captures may add to values during one field render.
pub const MAX_ADDED_BYTES: u64 = 1024 * 1024;
/// Wall time one field render may take.
pub const MAX_RENDER_TIME: Duration = Duration::from_millis(250);
/// How every budget error's message starts (the run record's reason).
pub const OVER_BUDGET: &str = "over the render budget";

/// What one field render has spent (a runtime register: `Default` when first charged).
pub struct Budget {
    started: Instant,
    iterations: u64,
    added_bytes: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            started: Instant::now(),
            iterations: 0,
            added_bytes: 0,
        }
    }
}

impl Budget {
    fn check_time(&self) -> Result<()> {
        if self.started.elapsed() > MAX_RENDER_TIME {
            return Err(over(format!(
                "rendering took more than {} ms",
                MAX_RENDER_TIME.as_millis()
            )));
        }
        Ok(())
    }
}

fn over(what: String) -> Error {
    Error::with_msg(format!("{OVER_BUDGET}: {what}"))
}

/// Charges `n` loop iterations (and checks the time).
pub fn charge_iterations(runtime: &dyn Runtime, n: u64) -> Result<()> {
    let mut budget = runtime.registers().get_mut::<Budget>();
    budget.iterations = budget.iterations.saturating_add(n);
    if budget.iterations > MAX_LOOP_ITERATIONS {
        return Err(over(format!(
            "more than {MAX_LOOP_ITERATIONS} loop iterations"
        )));
    }
    budget.check_time()
}

/// Fails when a loop over `len` items could not fit in the iterations left, before the
/// items are materialized.
pub fn check_range(runtime: &dyn Runtime, len: u64) -> Result<()> {
    let budget = runtime.registers().get_mut::<Budget>();
    if budget.iterations.saturating_add(len) > MAX_LOOP_ITERATIONS {
        return Err(over(format!(
            "a range of {len} items, more than the {MAX_LOOP_ITERATIONS} loop iterations left"
        )));
    }
    Ok(())
}

/// Charges the bytes a value grew by, from `before` to `after` bytes (and checks the time).
pub fn charge_growth(runtime: &dyn Runtime, before: u64, after: u64) -> Result<()> {
    let mut budget = runtime.registers().get_mut::<Budget>();
    budget.added_bytes = budget
        .added_bytes
        .saturating_add(after.saturating_sub(before));
    if budget.added_bytes > MAX_ADDED_BYTES {
        return Err(over(format!(
            "filters and captures added more than {MAX_ADDED_BYTES} bytes"
        )));
    }
    budget.check_time()
}

/// Checks the time alone.
pub fn check_time(runtime: &dyn Runtime) -> Result<()> {
    runtime.registers().get_mut::<Budget>().check_time()
}

/// A value's weight: its strings' bytes, plus 8 per scalar, item and key; counting stops
/// once past `limit` (then some weight over `limit` is returned), so weighing a large
/// input against a small output costs what the output does.
pub fn weight(value: &dyn ValueView, limit: u64) -> u64 {
    let mut total = 0u64;
    if let Some(array) = value.as_array() {
        for v in array.values() {
            total += 8 + weight(v, limit.saturating_sub(total));
            if total > limit {
                break;
            }
        }
        return total;
    }
    if let Some(object) = value.as_object() {
        for (k, v) in object.iter() {
            total += 8 + k.len() as u64 + weight(v, limit.saturating_sub(total));
            if total > limit {
                break;
            }
        }
        return total;
    }
    match value.as_scalar() {
        Some(s) => 8 + s.to_kstr().len() as u64,
        None => 8,
    }
}

/// A filter that charges the render's budget with what it adds: liquid's own filter,
/// registered under its own name.
#[derive(Clone)]
pub struct Budgeted<F>(pub F);

impl<F: FilterReflection> FilterReflection for Budgeted<F> {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn description(&self) -> &str {
        self.0.description()
    }
    fn positional_parameters(&self) -> &'static [ParameterReflection] {
        self.0.positional_parameters()
    }
    fn keyword_parameters(&self) -> &'static [ParameterReflection] {
        self.0.keyword_parameters()
    }
}

impl<F: ParseFilter + FilterReflection + Clone + 'static> ParseFilter for Budgeted<F> {
    fn parse(&self, arguments: FilterArguments<'_>) -> Result<Box<dyn Filter>> {
        Ok(Box::new(BudgetedFilter(self.0.parse(arguments)?)))
    }

    fn reflection(&self) -> &dyn FilterReflection {
        self
    }
}

/// A parsed filter whose evaluation is charged.
#[derive(Debug)]
struct BudgetedFilter(Box<dyn Filter>);

impl std::fmt::Display for BudgetedFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Filter for BudgetedFilter {
    fn evaluate(&self, input: &dyn ValueView, runtime: &dyn Runtime) -> Result<Value> {
        check_time(runtime)?;
        let out = self.0.evaluate(input, runtime)?;
        let after = weight(&out, u64::MAX);
        charge_growth(runtime, weight(input, after), after)?;
        Ok(out)
    }
}
