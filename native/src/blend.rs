//! Twin of `operators/blend.py` (`blend`, `_vote`, `_fill`): the homepage blend's votes, the
//! merge of its sources and the trending fills. Same arguments, same result (a list of
//! `operators.blend.Scored` with their `Evidence`), the same floating-point operations in the
//! same order, so the scores are bit-identical; the Python function is the specification.

use std::cmp::Ordering;

use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::intern;
use pyo3::types::{PyFloat, PyList, PyString, PyType};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::descending;
use crate::py::{elements, get, import_class, len_of, new_slotted, nth, Arena, Seq};

const FILL_SHARE: f64 = 0.5; // operators.blend.FILL_SHARE

static SCORED: GILOnceCell<Py<PyType>> = GILOnceCell::new();
static EVIDENCE: GILOnceCell<Py<PyType>> = GILOnceCell::new();

/// `operators.blend.Scored` and `Evidence`, imported once.
fn classes(py: Python<'_>) -> PyResult<(&Bound<'_, PyType>, &Bound<'_, PyType>)> {
    Ok((import_class(py, &SCORED, "operators.blend", "Scored")?,
        import_class(py, &EVIDENCE, "operators.blend", "Evidence")?))
}

/// `Evidence(source, score, because)`.
fn evidence<'py>(cls: &Bound<'py, PyType>, source: Bound<'py, PyAny>, score: f64,
                 because: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = cls.py();
    new_slotted(cls, &[(intern!(py, "source"), source),
                       (intern!(py, "score"), PyFloat::new(py, score).into_any()),
                       (intern!(py, "because"), because)])
}

/// `Scored(item_id, score, evidence)`.
fn scored<'py>(cls: &Bound<'py, PyType>, item_id: Bound<'py, PyAny>, score: f64,
               evidence: Bound<'py, PyList>) -> PyResult<Bound<'py, PyAny>> {
    let py = cls.py();
    new_slotted(cls, &[(intern!(py, "item_id"), item_id),
                       (intern!(py, "score"), PyFloat::new(py, score).into_any()),
                       (intern!(py, "evidence"), evidence.into_any())])
}

struct Params {
    recent: usize,
    decay: f64,
    session_weight: f64,
    bought_weight: f64,
    vector_weight: f64,
    vector_min_events: i64,
    remind: Vec<f64>,
    allow_repeats: bool,
    pool: usize,
}

impl Params {
    fn of(p: &Bound<'_, PyAny>) -> PyResult<Self> {
        let py = p.py();
        let remind = elements(&p.getattr(intern!(py, "remind"))?)?
            .iter().map(|w| w.extract::<f64>()).collect::<PyResult<Vec<f64>>>()?;
        Ok(Params {
            recent: p.getattr(intern!(py, "recent"))?.extract()?,
            decay: p.getattr(intern!(py, "recency_decay"))?.extract()?,
            session_weight: p.getattr(intern!(py, "session_weight"))?.extract()?,
            bought_weight: p.getattr(intern!(py, "bought_weight"))?.extract()?,
            vector_weight: p.getattr(intern!(py, "vector_weight"))?.extract()?,
            vector_min_events: p.getattr(intern!(py, "vector_min_events"))?.extract()?,
            remind,
            allow_repeats: p.getattr(intern!(py, "allow_repeats"))?.is_truthy()?,
            pool: p.getattr(intern!(py, "pool"))?.extract()?,
        })
    }
}

/// One source's votes: item -> (summed vote, the item that gave most, the item's arena index).
type Votes<'a> = FxHashMap<&'a str, (f64, u32, u32)>;

/// `(score descending, id ascending)`: the order of `heapq.nsmallest(key=(-score, id))`.
fn by_score_then_id(a: (&str, f64), b: (&str, f64)) -> Ordering {
    descending(a.1, b.1).then_with(|| a.0.cmp(b.0))
}

/// `heapq.nsmallest(n, items, key=(-score, id))`: the best `n`, in that order (ids are
/// distinct, so the order is total and an unstable selection gives the same list).
fn best<'a, T: Copy>(mut items: Vec<(&'a str, T)>, n: usize, score: impl Fn(&T) -> f64)
                     -> Vec<(&'a str, T)> {
    let order = |a: &(&str, T), b: &(&str, T)| by_score_then_id((a.0, score(&a.1)),
                                                                 (b.0, score(&b.1)));
    if n == 0 {
        items.clear();
        return items;
    }
    if items.len() > n {
        items.select_nth_unstable_by(n - 1, order);
        items.truncate(n);
    }
    items.sort_unstable_by(order);
    items
}

/// `operators.candidates.recent_items`: distinct items of the session, newest first, at most `n`.
pub(crate) fn recent<'py>(session: &Bound<'py, PyAny>, n: usize) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let py = session.py();
    let mut seen: Vec<Bound<'py, PyAny>> = Vec::new();
    let events = match get(session, &intern!(py, "events").clone().into_any())? {
        Some(e) => Seq::of(e)?,
        None => return Ok(seen),
    };
    for i in (0..events.len()).rev() {
        if seen.len() == n {
            break;
        }
        let item = nth(&events.get(i)?, 0)?;
        let mut known = false;
        for s in &seen {
            if s.eq(&item)? {
                known = true;
                break;
            }
        }
        if !known {
            seen.push(item);
        }
    }
    Ok(seen)
}

/// A neighbour list (`Shares`: `(item_id, share)` pairs) into the arena.
fn shares_into<'py>(lst: Option<Bound<'py, PyAny>>, arena: &mut Arena<'py>)
                    -> PyResult<Vec<(u32, f64)>> {
    let mut out = Vec::new();
    if let Some(lst) = lst {
        if lst.is_truthy()? {
            for entry in elements(&lst)? {
                let id = arena.push(nth(&entry, 0)?, "a list entry's item id")?;
                out.push((id, nth(&entry, 1)?.extract::<f64>()?));
            }
        }
    }
    Ok(out)
}

/// `operators.blend._vote`.
fn vote<'a>(history: &[u32], lists: &[Vec<(u32, f64)>], keys: &[&'a str],
            banned: &FxHashSet<&str>, decay: f64, weight: f64, pool: usize) -> Votes<'a> {
    let n: usize = lists.iter().map(Vec::len).sum();
    let mut votes: Votes<'a> = FxHashMap::with_capacity_and_hasher(n, Default::default());
    let mut strongest: FxHashMap<&'a str, f64> =
        FxHashMap::with_capacity_and_hasher(n, Default::default());
    for (rank, (&src, lst)) in history.iter().zip(lists).enumerate() {
        if lst.is_empty() {
            continue;
        }
        let w = weight * decay.powf(rank as f64);
        for &(id, share) in lst {
            let item = keys[id as usize];
            if banned.contains(item) {
                continue;
            }
            let v = w * share;
            let entry = votes.entry(item).or_insert((0.0, src, id));
            entry.0 += v;
            let b = strongest.entry(item).or_insert(-1.0);
            if v > *b {
                *b = v;
                entry.1 = src;
            }
        }
    }
    if votes.len() > pool {
        votes = best(votes.into_iter().collect(), pool, |v| v.0).into_iter().collect();
    }
    votes
}

#[pyfunction]
#[pyo3(signature = (session, similar, bought, fills, params, *, k, exclude=None, vector=None,
                    vector_because=None, vector_events=0))]
#[allow(clippy::too_many_arguments)]
pub fn blend<'py>(py: Python<'py>, session: Option<Bound<'py, PyAny>>,
                  similar: Bound<'py, PyAny>, bought: Bound<'py, PyAny>,
                  fills: Bound<'py, PyAny>, params: Bound<'py, PyAny>, k: i64,
                  exclude: Option<Bound<'py, PyAny>>, vector: Option<Bound<'py, PyAny>>,
                  vector_because: Option<Bound<'py, PyAny>>, vector_events: i64)
                  -> PyResult<Bound<'py, PyList>> {
    let p = Params::of(&params)?;
    let k = k.max(0) as usize;
    let session = match session {
        Some(s) if s.is_truthy()? => Some(s),
        _ => None,
    };
    // ---- gather every string into the arena (phase 1), then key on &str (phase 2)
    let mut arena = Arena::new();
    let mut history: Vec<u32> = Vec::new();
    let mut purchased: Vec<u32> = Vec::new();
    let mut similar_lists: Vec<Vec<(u32, f64)>> = Vec::new();
    let mut bought_lists: Vec<Vec<(u32, f64)>> = Vec::new();
    let hist_objs = match &session {
        Some(s) => recent(s, p.recent)?,
        None => Vec::new(),
    };
    if let Some(s) = &session {
        if let Some(bag) = get(s, &intern!(py, "purchased").clone().into_any())? {
            for item in elements(&bag)? {
                purchased.push(arena.push(item, "a purchased item id")?);
            }
        }
    }
    for h in &hist_objs {
        history.push(arena.push(h.clone(), "a session event's item id")?);
        if p.session_weight > 0.0 {
            similar_lists.push(shares_into(get(&similar, h)?, &mut arena)?);
        }
        if p.bought_weight > 0.0 {
            bought_lists.push(shares_into(get(&bought, h)?, &mut arena)?);
        }
    }
    let mut excluded: Vec<u32> = Vec::new();
    if let Some(ex) = &exclude {
        for item in elements(ex)? {
            excluded.push(arena.push(item, "an excluded item id")?);
        }
    }
    let mut vector_entries: Vec<(u32, f64)> = Vec::new();
    let because_vec = match &vector_because {
        Some(b) => arena.push(b.clone(), "vector_because")?,
        None => arena.push(PyString::new(py, "").into_any(), "vector_because")?,
    };
    let use_vector = p.vector_weight > 0.0 && vector_events >= p.vector_min_events
        && match &vector { Some(v) => v.is_truthy()?, None => false };
    if use_vector {
        let entries = elements(vector.as_ref().unwrap())?;
        for entry in entries.iter().take(p.pool) {
            let id = arena.push(nth(entry, 0)?, "a vector entry's item id")?;
            vector_entries.push((id, nth(entry, 1)?.extract::<f64>()?));
        }
    }
    let keys = arena.strs()?;
    let exclude_set: FxHashSet<&str> = excluded.iter().map(|&i| keys[i as usize]).collect();
    let mut banned = exclude_set.clone();
    banned.extend(purchased.iter().map(|&i| keys[i as usize]));
    if !p.allow_repeats {
        banned.extend(history.iter().map(|&i| keys[i as usize]));
    }
    // ---- the sources, in the Python order
    let mut sources: Vec<(Bound<'py, PyString>, Votes)> = Vec::new();
    if p.session_weight > 0.0 {
        sources.push((intern!(py, "session").clone(), vote(&history, &similar_lists, &keys,
            &banned, p.decay, p.session_weight, p.pool)));
    }
    if p.bought_weight > 0.0 {
        sources.push((intern!(py, "bought_together").clone(), vote(&history, &bought_lists,
            &keys, &banned, p.decay, p.bought_weight, p.pool)));
    }
    if use_vector {
        let mut votes: Votes = FxHashMap::default();
        for &(id, share) in &vector_entries {
            let item = keys[id as usize];
            if !banned.contains(item) {
                votes.insert(item, (p.vector_weight * share, because_vec, id));
            }
        }
        sources.push((intern!(py, "vector").clone(), votes));
    }
    let mut remind: Votes = FxHashMap::default();
    for (&id, &w) in history.iter().zip(&p.remind) {
        let item = keys[id as usize];
        if w > 0.0 && !exclude_set.contains(item) {
            remind.insert(item, (w, id, id));
        }
    }
    sources.push((intern!(py, "recently_viewed").clone(), remind));
    // ---- merge: the summed votes, the best k, each with its evidence strongest first
    let n: usize = sources.iter().map(|s| s.1.len()).sum();
    let mut total: FxHashMap<&str, (f64, u32)> =
        FxHashMap::with_capacity_and_hasher(n, Default::default());
    for (_, votes) in &sources {
        for (&item, &(v, _, id)) in votes {
            total.entry(item).or_insert((0.0, id)).0 += v;
        }
    }
    let top = best(total.into_iter().collect(), k, |t| t.0);
    let (scored_cls, evidence_cls) = classes(py)?;
    let ranked = PyList::empty(py);
    let mut found: Vec<(&Bound<'py, PyString>, f64, u32)> = Vec::with_capacity(4);
    for &(item, (score, id)) in &top {
        found.clear();
        for (name, votes) in &sources {
            if let Some(&(v, because, _)) = votes.get(item) {
                found.push((name, v, because));
            }
        }
        found.sort_by(|a, b| descending(a.1, b.1));
        let ev = PyList::empty(py);
        for &(name, v, because) in &found {
            ev.append(evidence(evidence_cls, name.clone().into_any(), v,
                               arena.obj(because).clone().into_any())?)?;
        }
        ranked.append(scored(scored_cls, arena.obj(id).clone().into_any(), score, ev)?)?;
    }
    if top.len() < k {
        let last = top.last().map(|t| t.1 .0);
        let taken: FxHashSet<&str> = top.iter().map(|t| t.0).collect();
        fill(&ranked, last, &fills, k, &banned, taken)?;
    }
    Ok(ranked)
}

/// `operators.blend._fill`: trending items after the blended ones, scored strictly below them.
fn fill<'py>(ranked: &Bound<'py, PyList>, mut last: Option<f64>, fills: &Bound<'py, PyAny>,
             k: usize, banned: &FxHashSet<&str>, taken: FxHashSet<&str>) -> PyResult<()> {
    let py = ranked.py();
    let (scored_cls, evidence_cls) = classes(py)?;
    let mut added: FxHashSet<String> = FxHashSet::default();
    let mut floor = last.map_or(1.0, |s| s * FILL_SHARE);
    for f in elements(fills)? {
        let items = f.getattr(intern!(py, "items"))?;
        if !items.is_truthy()? {
            continue;
        }
        let entries = Seq::of(items)?;
        let top: f64 = nth(&entries.get(0)?, 1)?.extract()?;
        let (fill_source, fill_scope) = (f.getattr(intern!(py, "source"))?,
                                         f.getattr(intern!(py, "scope"))?);
        for i in 0..entries.len() {
            let entry = entries.get(i)?;
            let item = nth(&entry, 0)?;
            {
                let id = item.downcast::<PyString>()?.to_str()?;
                if banned.contains(id) || taken.contains(id) || added.contains(id) {
                    continue;
                }
                added.insert(id.to_owned());
            }
            let share = (nth(&entry, 1)?.extract::<f64>()? - top).exp();
            let score = floor * share;
            let (source, scope) = if len_of(&entry)? > 3 {
                (nth(&entry, 2)?, nth(&entry, 3)?)
            } else {
                (fill_source.clone(), fill_scope.clone())
            };
            let ev = PyList::new(py, [evidence(evidence_cls, source, score, scope)?])?;
            ranked.append(scored(scored_cls, item, score, ev)?)?;
            last = Some(score);
            if ranked.len() == k {
                return Ok(());
            }
        }
        floor = last.map_or(floor, |s| s * FILL_SHARE);
    }
    Ok(())
}
