//! The compiled core: Rust twins of pure steps of the serving path, one file per twin, each
//! opened by a comment naming its Python original (`blend.rs` <-> `operators/blend.py`, `rules.rs` <-> `serving/rules.py`).
//! The Python functions are the specification; `serving/native.py` loads this module when it
//! was built and `tests/serving/test_native_parity.py` runs both sides on the same inputs.

use pyo3::prelude::*;

mod blend;
mod py;
mod rules;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(blend::blend, m)?)?;
    m.add_function(wrap_pyfunction!(rules::rerank, m)?)?;
    m.add("VERSION", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
