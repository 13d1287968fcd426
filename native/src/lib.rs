//! The compiled core: Rust twins of pure steps of the serving path, one file per twin, each
//! opened by a comment naming its Python original (`blend.rs` <-> `operators/blend.py`,
//! `rules.rs` <-> `serving/rules.py`, `learned.rs` <-> `operators/learned_blend.py`'s
//! `_features` and `learned_order`).
//! The Python functions are the specification; `serving/native.py` loads this module when it
//! was built and `tests/serving/test_native_parity.py` runs both sides on the same inputs.

use std::cmp::Ordering;

use pyo3::prelude::*;

mod blend;
mod learned;
mod py;
mod rules;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(blend::blend, m)?)?;
    m.add_function(wrap_pyfunction!(rules::rerank, m)?)?;
    m.add_function(wrap_pyfunction!(learned::features, m)?)?;
    m.add_function(wrap_pyfunction!(learned::learned_order, m)?)?;
    m.add("VERSION", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

/// Python's order of `sort(key=lambda x: -x)` for scores, as a total order: larger first, `-0.0`
/// equal to `0.0` (Python compares them equal). A NaN (which JSON cannot carry, so no stored
/// value holds one) sorts consistently instead of making Rust's sorts panic.
pub(crate) fn descending(a: f64, b: f64) -> Ordering {
    (b + 0.0).total_cmp(&(a + 0.0))
}
