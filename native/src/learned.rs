//! Twins of `operators/learned_blend.py`'s `_features` and `learned_order`: the candidates of
//! the learned blend (the hand-tuned blend's, then the best entries of every fill list) with
//! their features (`sim*` from the similar lists, `simr*` from the second ones when given,
//! the age features `simh`, `simd`, `simrh`, `simrd`, `seenh`, `seend` when the config's `ages`
//! is on and `now` is given: `operators/freshness.py`), and their learned order. Same arguments, same results (`Candidate`s, each
//! feature dict filled in the same order, so the learned score sums its terms in the same
//! order), the same floating-point operations; the Python functions are the specification,
//! and their constants (`POSITIONS`, `PRIOR_FLOOR`, `_FILL_FEATURES`, the freshness half-lives
//! `HOUR_S` and `DAY_S`) are read from them.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::exceptions::PyValueError;
use pyo3::types::{PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::blend::recent;
use crate::descending;
use crate::py::{elements, get, import_class, len_of, new_slotted, nth, Seq};

static CANDIDATE: GILOnceCell<Py<PyType>> = GILOnceCell::new();
static SPEC: GILOnceCell<(usize, f64, Py<PyAny>)> = GILOnceCell::new();
static HALF_LIVES: GILOnceCell<(f64, f64)> = GILOnceCell::new();

/// `POSITIONS`, `PRIOR_FLOOR` and `_FILL_FEATURES` of `operators.learned_blend`.
fn spec(py: Python<'_>) -> PyResult<(usize, f64, Bound<'_, PyAny>)> {
    let (positions, floor, fill_features) = SPEC.get_or_try_init(py, || -> PyResult<_> {
        let m = py.import("operators.learned_blend")?;
        Ok((m.getattr("POSITIONS")?.extract::<usize>()?,
            m.getattr("PRIOR_FLOOR")?.extract::<f64>()?,
            m.getattr("_FILL_FEATURES")?.unbind()))
    })?;
    Ok((*positions, *floor, fill_features.bind(py).clone()))
}

/// `HOUR_S` and `DAY_S` of `operators.freshness`.
fn half_lives(py: Python<'_>) -> PyResult<(f64, f64)> {
    Ok(*HALF_LIVES.get_or_try_init(py, || -> PyResult<_> {
        let m = py.import("operators.freshness")?;
        Ok((m.getattr("HOUR_S")?.extract::<f64>()?, m.getattr("DAY_S")?.extract::<f64>()?))
    })?)
}

/// `int(x)` (an int as is, a float truncated, as Python's `int`).
fn int_of(x: &Bound<'_, PyAny>) -> PyResult<i64> {
    match x.extract::<i64>() {
        Ok(n) => Ok(n),
        Err(_) => x.py().get_type::<PyInt>().call1((x,))?.extract(),
    }
}

/// Twin of `operators.freshness.freshness`: for each recent item, `(0.5 ** (age / HOUR_S),
/// 0.5 ** (age / DAY_S))`, `age` the seconds from its newest event in the session to `now`
/// (never below 0).
fn freshness<'py>(session: &Bound<'py, PyAny>, history: &[Bound<'py, PyAny>], now: i64)
                  -> PyResult<Vec<(f64, f64)>> {
    let py = session.py();
    let (hour, day) = half_lives(py)?;
    let wanted: FxHashSet<&str> = history.iter()
        .map(|h| Ok(h.downcast::<PyString>()?.to_str()?))
        .collect::<PyResult<_>>()?;
    let mut newest: FxHashMap<String, i64> = FxHashMap::default();
    if let Some(events) = get(session, intern!(py, "events").as_any())? {
        for ev in elements(&events)?.iter().rev() {
            let item = nth(ev, 0)?;
            let key = item.downcast::<PyString>()?.to_str()?;
            if wanted.contains(key) && !newest.contains_key(key) {
                newest.insert(key.to_owned(), int_of(&nth(ev, 2)?)?);
                if newest.len() == wanted.len() {
                    break;
                }
            }
        }
    }
    history.iter().map(|h| {
        let key = h.downcast::<PyString>()?.to_str()?;
        let Some(&ts) = newest.get(key) else {
            return Err(PyValueError::new_err(format!(
                "operators.freshness: recent item {} has no event in the session",
                h.repr()?)));
        };
        let age = (now - ts).max(0) as f64 / 1000.0;
        // libm's pow, as Python's `0.5 ** x`: a constant base of a power of two would let
        // LLVM call exp2(-x) instead, which rounds differently by an ulp now and then
        let half = std::hint::black_box(0.5f64);
        Ok((half.powf(age / hour), half.powf(age / day)))
    }).collect()
}

fn set(d: &Bound<'_, PyDict>, name: &Bound<'_, PyString>, value: f64) -> PyResult<()> {
    d.set_item(name, PyFloat::new(d.py(), value))
}

/// `min(x, 1.0)`.
fn capped(x: f64) -> f64 {
    if 1.0 < x { 1.0 } else { x }
}

/// Twin of `_features`; `similar_recent` (keyword, `None` or empty: none) the recent items'
/// second similar-items lists, whose shares and ranks become `simr*` as `similar`'s `sim*`;
/// `now` (keyword, `None`: no age features) the request's time in ms.
#[pyfunction]
#[pyo3(signature = (prior, session, similar, fills, params, cfg, exclude, *,
                    similar_recent=None, now=None))]
#[allow(clippy::too_many_arguments)]
pub fn features<'py>(prior: Bound<'py, PyAny>, session: Option<Bound<'py, PyAny>>,
                     similar: Bound<'py, PyAny>, fills: Bound<'py, PyAny>,
                     params: Bound<'py, PyAny>, cfg: Bound<'py, PyAny>,
                     exclude: Bound<'py, PyAny>, similar_recent: Option<Bound<'py, PyAny>>,
                     now: Option<Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyTuple>> {
    let py = prior.py();
    let (positions, prior_floor, fill_features) = spec(py)?;
    let session = match session {
        Some(s) if s.is_truthy()? => Some(s),
        _ => None,
    };
    let history = match &session { Some(s) => recent(s, positions)?, None => Vec::new() };
    let fresh = match (&session, &now) {
        (Some(s), Some(now)) if !now.is_none()
            && cfg.getattr(intern!(py, "ages"))?.is_truthy()? =>
            freshness(s, &history, now.extract::<i64>()?)?,
        _ => Vec::new(),
    };
    let mut feats: FxHashMap<String, Bound<'py, PyDict>> = FxHashMap::default();
    let mut order: Vec<(String, Bound<'py, PyAny>)> = Vec::new();
    let prior = elements(&prior)?;
    let score_of = |s: &Bound<'py, PyAny>| -> PyResult<f64> {
        s.getattr(intern!(py, "score"))?.extract()
    };
    let top = match prior.first() { Some(s) => score_of(s)?, None => 1.0 };
    for (rank, s) in prior.iter().enumerate() {
        let f = PyDict::new(py);
        set(&f, intern!(py, "prior_rr"), 1.0 / (rank + 1) as f64)?;
        let score = score_of(s)?;
        if score > 0.0 && top > 0.0 {
            let x = (score / top).ln();
            let clipped = if prior_floor > x { prior_floor } else { x };
            set(&f, intern!(py, "prior"), clipped / -prior_floor + 1.0)?;
        }
        for e in elements(&s.getattr(intern!(py, "evidence"))?)? {
            let source = e.getattr(intern!(py, "source"))?;
            let name = match source.downcast::<PyString>()?.to_str()? {
                "bought_together" => intern!(py, "bought"),
                "vector" => intern!(py, "vector"),
                "recently_viewed" => intern!(py, "remind"),
                _ => continue,
            };
            set(&f, name, capped(e.getattr(intern!(py, "score"))?.extract()?))?;
        }
        let item_id = s.getattr(intern!(py, "item_id"))?;
        let key = item_id.downcast::<PyString>()?.to_str()?.to_owned();
        feats.insert(key.clone(), f);
        order.push((key, item_id));
    }
    let mut banned: FxHashSet<String> = FxHashSet::default();
    for item in elements(&exclude)? {
        banned.insert(item.downcast::<PyString>()?.to_str()?.to_owned());
    }
    if let Some(s) = &session {
        if let Some(bag) = get(s, intern!(py, "purchased").as_any())? {
            for item in elements(&bag)? {
                banned.insert(item.downcast::<PyString>()?.to_str()?.to_owned());
            }
        }
        if !params.getattr(intern!(py, "allow_repeats"))?.is_truthy()? {
            for h in &history {
                banned.insert(h.downcast::<PyString>()?.to_str()?.to_owned());
            }
        }
    }
    let fill_pool: usize = cfg.getattr(intern!(py, "fill_pool"))?.extract()?;
    let mut rr_names: Vec<(Bound<'py, PyString>, Bound<'py, PyString>)> = Vec::new();
    for fill in elements(&fills)? {
        let items = fill.getattr(intern!(py, "items"))?;
        if !items.is_truthy()? {
            continue;
        }
        let entries = Seq::of(items)?;
        let best: f64 = nth(&entries.get(0)?, 1)?.extract()?;
        let fill_source = fill.getattr(intern!(py, "source"))?;
        let mut place = 0usize; // among the list's entries not banned
        for i in 0..entries.len() {
            let entry = entries.get(i)?;
            let item_id = nth(&entry, 0)?.str()?;
            let key = item_id.to_str()?;
            if banned.contains(key) {
                continue;
            }
            place += 1;
            if !feats.contains_key(key) {
                if place > fill_pool {
                    continue;
                }
                feats.insert(key.to_owned(), PyDict::new(py));
                order.push((key.to_owned(), item_id.clone().into_any()));
            }
            let found = &feats[key];
            let source = if len_of(&entry)? > 3 { nth(&entry, 2)?.str()?.into_any() }
                         else { fill_source.clone() };
            let Some(name) = get(&fill_features, &source)? else { continue };
            let name = name.downcast_into::<PyString>()?;
            if found.contains(&name)? {
                continue;
            }
            let rr = match rr_names.iter().find(|(n, _)| n.as_any().eq(&name).unwrap_or(false)) {
                Some((_, rr)) => rr.clone(),
                None => {
                    let rr = PyString::new(py, &format!("{}_rr", name.to_str()?));
                    rr_names.push((name.clone(), rr.clone()));
                    rr
                }
            };
            set(found, &name, (nth(&entry, 1)?.extract::<f64>()? - best).exp())?;
            set(found, &rr, 1.0 / place as f64)?;
        }
    }
    // `(similar_recent or {})`: the second lists only when there are any
    let recent_lists = match similar_recent {
        Some(m) if m.is_truthy()? => Some(m),
        _ => None,
    };
    for (lists, name) in [(Some(similar), "sim"), (recent_lists, "simr")] {
        let Some(lists) = lists else { continue };
        for (r, src) in history.iter().enumerate() {
            let Some(lst) = get(&lists, src)? else { continue };
            if !lst.is_truthy()? {
                continue;
            }
            let sim = PyString::new(py, &format!("{name}{r}"));
            let sim_rr = PyString::new(py, &format!("{name}_rr{r}"));
            let aged = fresh.get(r).map(|&(fh, fd)| {
                [(PyString::new(py, &format!("{name}h")), fh),
                 (PyString::new(py, &format!("{name}d")), fd)]
            });
            for (rank, entry) in elements(&lst)?.iter().enumerate() {
                let item_id = nth(entry, 0)?;
                let Some(found) = feats.get(item_id.downcast::<PyString>()?.to_str()?) else {
                    continue;
                };
                if !found.contains(&sim)? {
                    let share = nth(entry, 1)?;
                    found.set_item(&sim, &share)?;
                    set(found, &sim_rr, 1.0 / (rank + 1) as f64)?;
                    if let Some(aged) = &aged {
                        let share: f64 = share.extract()?;
                        for (key, f) in aged {
                            let sum = match found.get_item(key)? {
                                Some(v) => v.extract::<f64>()?,
                                None => 0.0,
                            };
                            set(found, key, sum + share * f / positions as f64)?;
                        }
                    }
                }
            }
        }
    }
    if let Some(s) = &session {
        let mut counts: FxHashMap<String, i64> = FxHashMap::default();
        if let Some(events) = get(s, intern!(py, "events").as_any())? {
            for ev in elements(&events)? {
                let item = nth(&ev, 0)?;
                *counts.entry(item.downcast::<PyString>()?.to_str()?.to_owned()).or_insert(0) += 1;
            }
        }
        for (r, item_id) in history.iter().enumerate() {
            let key = item_id.downcast::<PyString>()?.to_str()?;
            if let Some(found) = feats.get(key) {
                set(found, &PyString::new(py, &format!("seen{r}")), 1.0)?;
                if let Some(&(fh, fd)) = fresh.get(r) {
                    set(found, intern!(py, "seenh"), fh)?;
                    set(found, intern!(py, "seend"), fd)?;
                }
                let n = *counts.get(key).unwrap_or(&0) as f64;
                set(found, intern!(py, "repeats"), capped(n.ln_1p() / 3.0))?;
            }
        }
    }
    let candidate = import_class(py, &CANDIDATE, "operators.learned_blend", "Candidate")?;
    let out = order.into_iter().enumerate().map(|(n, (key, item_id))| {
        new_slotted(candidate, &[(intern!(py, "item_id"), item_id),
                                 (intern!(py, "prior_rank"), n.into_pyobject(py)?.into_any()),
                                 (intern!(py, "features"), feats[&key].clone().into_any())])
    }).collect::<PyResult<Vec<_>>>()?;
    PyTuple::new(py, out)
}

/// Python's `sum()` of floats started from the int 0, as the running interpreter computes it:
/// left to right before 3.12, with Neumaier's compensation from 3.12 on (CPython's
/// `builtin_sum_impl`; the two agree with `sum` on 3.11, 3.12 and 3.13 over random lists).
fn py_sum(xs: &[f64], compensated: bool) -> f64 {
    let Some((&first, rest)) = xs.split_first() else { return 0.0 };
    let mut f = 0.0 + first;
    if !compensated {
        for &x in rest {
            f += x;
        }
        return f;
    }
    let mut c = 0.0;
    for &x in rest {
        let t = f + x;
        if f.abs() >= x.abs() {
            c += (f - t) + x;
        } else {
            c += (x - t) + f;
        }
        f = t;
    }
    if c != 0.0 && c.is_finite() {
        f += c;
    }
    f
}

/// Twin of `learned_order`: every candidate by its learned score `sum(w_k * x_k)` (the terms
/// in the order of its feature dict), best first, ties in the hand-tuned order.
#[pyfunction]
pub fn learned_order<'py>(model: Bound<'py, PyAny>, cands: Bound<'py, PyAny>)
                          -> PyResult<Bound<'py, PyList>> {
    let py = model.py();
    let compensated = py.version_info() >= (3, 12);
    let weights = model.getattr(intern!(py, "weights"))?;
    let mut keyed: Vec<(f64, i64, Bound<'py, PyAny>)> = Vec::new();
    let mut terms: Vec<f64> = Vec::with_capacity(16);
    for c in elements(&cands)? {
        terms.clear();
        let features = c.getattr(intern!(py, "features"))?;
        for (k, v) in features.downcast::<PyDict>()?.iter() {
            let w = match get(&weights, &k)? { Some(w) => w.extract::<f64>()?, None => 0.0 };
            terms.push(w * v.extract::<f64>()?);
        }
        let rank: i64 = c.getattr(intern!(py, "prior_rank"))?.extract()?;
        keyed.push((py_sum(&terms, compensated), rank, c));
    }
    keyed.sort_by(|a, b| descending(a.0, b.0).then(a.1.cmp(&b.1)));
    PyList::new(py, keyed.into_iter().map(|t| t.2))
}
