//! Twin of `serving/rules.py` (`rerank` and its steps `_filter`, `_boost`, `_rotate`, `_mmr`,
//! `_caps`, `_sponsor`): the business rules over the ranked candidates. Same arguments, same
//! result (a list of `serving.rules.Ranked`, notes worded alike), the same floating-point
//! operations in the same order; the Python function is the specification. Item ids, the
//! request's sets and the metadata stay Python objects: membership and look-ups are Python's.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyBool, PyFloat, PyInt, PyList, PyString, PyType};

use crate::descending;
use crate::py::{elements, get, import_class, new_slotted};

const DAY_MS: f64 = 86_400_000.0; // serving.rules.DAY_MS
const SAME_CATEGORY: f64 = 1.0;
const SAME_BRAND: f64 = 0.5;
const MMR_POOL: usize = 2;

static RANKED: GILOnceCell<Py<PyType>> = GILOnceCell::new();
static SCORED: GILOnceCell<Py<PyType>> = GILOnceCell::new();

/// The rules (`serving.rules.Rules`) and the request (`RerankInput`) as the steps read them.
struct Config<'py> {
    out_of_stock: bool,
    already_purchased: bool,
    diversity: String,
    mmr_lambda: f64,
    max_per_category: i64,
    max_per_brand: i64,
    diversify: bool,
    promoted: Bound<'py, PyAny>,
    promoted_factor: f64,
    promoted_note: String,
    new_arrival_days: f64,
    new_arrival_factor: f64,
    new_arrival_note: String,
    rotation_after: i64,
    rotation_penalty: f64,
    sponsored: Bound<'py, PyAny>,
    sponsor_here: bool,
    sponsored_slots: Vec<i64>,
    k: usize,
    now_ms: i64,
    exclude: Bound<'py, PyAny>,
    purchased: Bound<'py, PyAny>,
    shown: Bound<'py, PyAny>,
    interacted: Bound<'py, PyAny>,
}

impl<'py> Config<'py> {
    fn of(rules: &Bound<'py, PyAny>, req: &Bound<'py, PyAny>) -> PyResult<Self> {
        let py = rules.py();
        let r = |name: &Bound<'py, PyString>| rules.getattr(name);
        let q = |name: &Bound<'py, PyString>| req.getattr(name);
        let placement = q(intern!(py, "placement"))?;
        let sponsored = r(intern!(py, "sponsored"))?;
        let promoted_factor: f64 = r(intern!(py, "promoted_factor"))?.extract()?;
        let new_arrival_factor: f64 = r(intern!(py, "new_arrival_factor"))?.extract()?;
        Ok(Config {
            out_of_stock: r(intern!(py, "out_of_stock"))?.is_truthy()?,
            already_purchased: r(intern!(py, "already_purchased"))?.is_truthy()?,
            diversity: r(intern!(py, "diversity"))?.extract()?,
            mmr_lambda: r(intern!(py, "mmr_lambda"))?.extract()?,
            max_per_category: r(intern!(py, "max_per_category"))?.extract()?,
            max_per_brand: r(intern!(py, "max_per_brand"))?.extract()?,
            diversify: r(intern!(py, "diversity_placements"))?.contains(&placement)?,
            promoted: r(intern!(py, "promoted"))?,
            promoted_factor,
            promoted_note: format!("promoted ×{}", format_g(promoted_factor, 6)),
            new_arrival_days: r(intern!(py, "new_arrival_days"))?.extract()?,
            new_arrival_factor,
            new_arrival_note: format!("new arrival ×{}", format_g(new_arrival_factor, 6)),
            rotation_after: r(intern!(py, "rotation_after"))?.extract()?,
            rotation_penalty: r(intern!(py, "rotation_penalty"))?.extract()?,
            sponsor_here: r(intern!(py, "sponsored_placements"))?.contains(&placement)?,
            sponsored_slots: elements(&r(intern!(py, "sponsored_slots"))?)?
                .iter().map(|s| s.extract()).collect::<PyResult<_>>()?,
            sponsored,
            k: q(intern!(py, "k"))?.extract::<i64>()?.max(0) as usize,
            now_ms: q(intern!(py, "now_ms"))?.extract()?,
            exclude: q(intern!(py, "exclude"))?,
            purchased: q(intern!(py, "purchased"))?,
            shown: q(intern!(py, "shown"))?,
            interacted: q(intern!(py, "interacted"))?,
        })
    }

    /// Bought by the user, when the rules filter that.
    fn bought(&self, item: &Bound<'py, PyAny>) -> PyResult<bool> {
        Ok(self.already_purchased && self.purchased.contains(item)?)
    }
}

/// One candidate going through the rules (`serving.rules.Ranked` before it is built).
struct Item<'py> {
    item_id: Bound<'py, PyAny>,
    score: f64,
    candidate: Bound<'py, PyAny>,
    rank_before: usize,
    notes: Vec<String>,
    sponsored: bool,
    meta: Option<Bound<'py, PyAny>>,
    attrs: Option<(Option<String>, Option<String>)>,  // read once, by MMR or the caps
}

impl Item<'_> {
    /// `_attrs(meta)`, read on first use.
    fn attrs(&mut self) -> PyResult<(Option<String>, Option<String>)> {
        if self.attrs.is_none() {
            self.attrs = Some(attrs(&self.meta)?);
        }
        Ok(self.attrs.clone().unwrap_or_default())
    }
}

/// `meta.get(item_id)` when it is a non-empty value: every rule reads an empty or absent
/// value as "nothing known" (`if not m`), so only these are kept.
fn meta_of<'py>(meta: &Bound<'py, PyAny>, item_id: &Bound<'py, PyAny>)
                -> PyResult<Option<Bound<'py, PyAny>>> {
    match get(meta, item_id)? {
        Some(m) if m.is_truthy()? => Ok(Some(m)),
        _ => Ok(None),
    }
}

/// `m.get(name)` of a metadata value from [`meta_of`] (`None` when absent or None).
fn field<'py>(m: &Option<Bound<'py, PyAny>>, name: &Bound<'py, PyString>)
              -> PyResult<Option<Bound<'py, PyAny>>> {
    match m {
        Some(m) => Ok(get(m, name.as_any())?.filter(|v| !v.is_none())),
        None => Ok(None),
    }
}

/// `_retired`: flagged deleted.
fn retired(m: &Option<Bound<'_, PyAny>>) -> PyResult<bool> {
    let py = match m { Some(m) => m.py(), None => return Ok(false) };
    match field(m, intern!(py, "deleted"))? { Some(v) => v.is_truthy(), None => Ok(false) }
}

/// `_sold_out`: an integer (not a bool) stock of 0 or less.
fn sold_out(m: &Option<Bound<'_, PyAny>>) -> PyResult<bool> {
    let py = match m { Some(m) => m.py(), None => return Ok(false) };
    match field(m, intern!(py, "stock"))? {
        Some(v) if v.is_instance_of::<PyInt>() && !v.is_instance_of::<PyBool>() => v.le(0),
        _ => Ok(false),
    }
}

/// `_attrs`: the category and brand when they are strings.
fn attrs(m: &Option<Bound<'_, PyAny>>) -> PyResult<(Option<String>, Option<String>)> {
    let py = match m { Some(m) => m.py(), None => return Ok((None, None)) };
    let text = |v: Option<Bound<'_, PyAny>>| -> PyResult<Option<String>> {
        match v {
            Some(v) if v.is_instance_of::<PyString>() => Ok(Some(v.extract()?)),
            _ => Ok(None),
        }
    };
    Ok((text(field(m, intern!(py, "category"))?)?, text(field(m, intern!(py, "brand"))?)?))
}

/// Python's `format(x, ".{precision}g")` (`precision` >= 1) for the notes' factors.
pub fn format_g(x: f64, precision: usize) -> String {
    if x == 0.0 {
        return if x.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    if !x.is_finite() {
        return if x.is_nan() { "nan".into() } else if x > 0.0 { "inf".into() } else {
            "-inf".into() };
    }
    let sci = format!("{:.*e}", precision - 1, x);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let strip = |s: String| -> String {
        if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
    };
    if exp < -4 || exp >= precision as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{}{:02}", strip(mantissa.to_string()), sign, exp.abs())
    } else {
        let decimals = (precision as i32 - 1 - exp).max(0) as usize;
        strip(format!("{:.*}", decimals, x))
    }
}

#[pyfunction]
pub fn rerank<'py>(cands: Bound<'py, PyAny>, meta: Bound<'py, PyAny>, rules: Bound<'py, PyAny>,
                   req: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
    let py = cands.py();
    let cfg = Config::of(&rules, &req)?;
    let cands = elements(&cands)?;
    let mut kept = filter(&cands, &meta, &cfg)?;
    let mut changed = false;
    for r in kept.iter_mut() {
        boost(r, &cfg)?;
        rotate(r, &cfg)?;
        changed = changed || !r.notes.is_empty();
    }
    if changed {
        kept.sort_by(|a, b| descending(a.score, b.score));
    }
    if cfg.diversify && cfg.diversity == "mmr" {
        kept = mmr(kept, cfg.mmr_lambda, cfg.k)?;
    }
    if cfg.diversify && cfg.diversity != "none" {
        kept = caps(kept, cfg.max_per_category, cfg.max_per_brand, cfg.k)?;
    }
    kept.truncate(cfg.k);
    if cfg.sponsored.is_truthy()? && cfg.sponsor_here {
        kept = sponsor(kept, &cands, &meta, &cfg)?;
    }
    let ranked_cls = import_class(py, &RANKED, "serving.rules", "Ranked")?;
    let out = PyList::empty(py);
    for r in kept {
        let notes = PyList::new(py, r.notes.iter().map(|n| PyString::new(py, n)))?;
        out.append(new_slotted(ranked_cls, &[
            (intern!(py, "item_id"), r.item_id),
            (intern!(py, "score"), PyFloat::new(py, r.score).into_any()),
            (intern!(py, "candidate"), r.candidate),
            (intern!(py, "rank_before"), r.rank_before.into_pyobject(py)?.into_any()),
            (intern!(py, "notes"), notes.into_any()),
            (intern!(py, "sponsored"), PyBool::new(py, r.sponsored).to_owned().into_any()),
        ])?)?;
    }
    Ok(out)
}

/// `_filter`: drop excluded, bought, retired, sold-out and (here) sponsored items.
fn filter<'py>(cands: &[Bound<'py, PyAny>], meta: &Bound<'py, PyAny>, cfg: &Config<'py>)
               -> PyResult<Vec<Item<'py>>> {
    let py = meta.py();
    let mut out = Vec::with_capacity(cands.len());
    for (n, c) in cands.iter().enumerate() {
        let item_id = c.getattr(intern!(py, "item_id"))?;
        let m = meta_of(meta, &item_id)?;
        let sponsored_here = cfg.sponsored.contains(&item_id)? && cfg.sponsor_here;
        if cfg.exclude.contains(&item_id)? || cfg.bought(&item_id)? || retired(&m)?
            || (cfg.out_of_stock && sold_out(&m)?) || sponsored_here {
            continue;
        }
        let score: f64 = c.getattr(intern!(py, "score"))?.extract()?;
        out.push(Item { item_id, score, candidate: c.clone(), rank_before: n + 1,
                        notes: Vec::new(), sponsored: false, meta: m, attrs: None });
    }
    Ok(out)
}

/// `_boost`: promoted items and new arrivals.
fn boost(r: &mut Item<'_>, cfg: &Config<'_>) -> PyResult<()> {
    let py = r.item_id.py();
    if cfg.promoted_factor != 1.0 && cfg.promoted.contains(&r.item_id)? {
        r.score *= cfg.promoted_factor;
        r.notes.push(cfg.promoted_note.clone());
    }
    if cfg.new_arrival_factor != 1.0 {
        // is_new_arrival: an int first_seen_ms within new_arrival_days of now
        let first = field(&r.meta, intern!(py, "first_seen_ms"))?;
        let new = match first {
            Some(f) if f.is_instance_of::<PyInt>() => {
                let age = cfg.now_ms as i128 - f.extract::<i64>()? as i128;
                0 <= age && (age as f64) <= cfg.new_arrival_days * DAY_MS
            }
            _ => false,
        };
        if new {
            r.score *= cfg.new_arrival_factor;
            r.notes.push(cfg.new_arrival_note.clone());
        }
    }
    Ok(())
}

/// `_rotate`: demote what was shown `rotation_after` times or more without an interaction.
fn rotate(r: &mut Item<'_>, cfg: &Config<'_>) -> PyResult<()> {
    let times: i64 = match get(&cfg.shown, &r.item_id)? { Some(t) => t.extract()?, None => 0 };
    if times >= cfg.rotation_after && !cfg.interacted.contains(&r.item_id)? {
        let factor = cfg.rotation_penalty.powf((times - cfg.rotation_after + 1) as f64);
        r.score *= factor;
        r.notes.push(format!("shown {times} times: ×{}", format_g(factor, 2)));
    }
    Ok(())
}

/// `_mmr`: greedy maximal marginal relevance over the best `MMR_POOL * k`.
fn mmr(mut ranked: Vec<Item<'_>>, lam: f64, k: usize) -> PyResult<Vec<Item<'_>>> {
    if lam >= 1.0 || ranked.len() < 2 {
        return Ok(ranked);
    }
    let rest = ranked.split_off((MMR_POOL * k).min(ranked.len()));
    let mut pool = ranked;
    let top = pool.iter().map(|r| r.score).fold(f64::NEG_INFINITY, |a, b| if b > a { b } else { a });
    let top = if top == 0.0 { 1.0 } else { top };
    let attrs = pool.iter_mut().map(Item::attrs).collect::<PyResult<Vec<_>>>()?;
    let mut penalty = vec![0.0_f64; pool.len()];
    let mut left: Vec<usize> = (0..pool.len()).collect();
    let mut picked: Vec<usize> = Vec::new();
    let mut moved: Vec<usize> = Vec::new();
    while !left.is_empty() && picked.len() < k {
        let value = |i: usize| lam * pool[i].score / top - (1.0 - lam) * penalty[i];
        let mut best_at = 0;
        for (at, &i) in left.iter().enumerate().skip(1) {
            // max by (value, -i): a strictly greater value wins, a tie keeps the lower index
            if value(i) > value(left[best_at]) {
                best_at = at;
            }
        }
        let best = left.remove(best_at);
        picked.push(best);
        let (cat, brand) = &attrs[best];
        for &i in &left {
            let (c2, b2) = &attrs[i];
            let sim = if cat.is_some() && c2 == cat { SAME_CATEGORY }
                      else if brand.is_some() && b2 == brand { SAME_BRAND } else { 0.0 };
            if sim > penalty[i] {
                penalty[i] = sim;
            }
        }
        if best != picked.len() - 1 {
            moved.push(best);
        }
    }
    let order: Vec<usize> = picked.into_iter().chain(left).collect();
    let mut slots: Vec<Option<Item<'_>>> = pool.into_iter().map(Some).collect();
    for i in moved {
        if let Some(r) = slots[i].as_mut() {
            r.notes.push("moved by diversity (MMR)".into());
        }
    }
    let mut out: Vec<Item<'_>> = order.into_iter().filter_map(|i| slots[i].take()).collect();
    out.extend(rest);
    Ok(out)
}

/// `_caps`: at most `max_cat` per category and `max_brand` per brand among the first `k`.
fn caps(ranked: Vec<Item<'_>>, max_cat: i64, max_brand: i64, k: usize)
        -> PyResult<Vec<Item<'_>>> {
    let mut cats: Vec<(String, i64)> = Vec::new();
    let mut brands: Vec<(String, i64)> = Vec::new();
    let count = |seen: &Vec<(String, i64)>, key: &Option<String>| -> i64 {
        key.as_ref().map_or(0, |k| seen.iter().find(|(s, _)| s == k).map_or(0, |(_, n)| *n))
    };
    let bump = |seen: &mut Vec<(String, i64)>, key: &Option<String>| {
        if let Some(k) = key {
            match seen.iter_mut().find(|(s, _)| s == k) {
                Some(e) => e.1 += 1,
                None => seen.push((k.clone(), 1)),
            }
        }
    };
    let mut head = Vec::with_capacity(ranked.len());
    let mut tail = Vec::new();
    for mut r in ranked {
        let (cat, brand) = r.attrs()?;
        let cat_full = cat.is_some() && count(&cats, &cat) >= max_cat;
        let over = cat_full || (brand.is_some() && count(&brands, &brand) >= max_brand);
        if over && head.len() < k {
            let capped = if cat_full { format!("category {}", cat.unwrap_or_default()) }
                         else { format!("brand {}", brand.unwrap_or_default()) };
            r.notes.push(format!("moved down: {capped} cap"));
            tail.push(r);
            continue;
        }
        bump(&mut cats, &cat);
        bump(&mut brands, &brand);
        head.push(r);
    }
    head.extend(tail);
    Ok(head)
}

/// `_sponsor`: eligible sponsored items into their slots.
fn sponsor<'py>(mut out: Vec<Item<'py>>, cands: &[Bound<'py, PyAny>], meta: &Bound<'py, PyAny>,
                cfg: &Config<'py>) -> PyResult<Vec<Item<'py>>> {
    let py = meta.py();
    let mut eligible = Vec::new();
    for s in elements(&cfg.sponsored)? {
        if cfg.exclude.contains(&s)? || cfg.bought(&s)? || !meta.contains(&s)? {
            continue;
        }
        let m = meta_of(meta, &s)?;
        if retired(&m)? || (cfg.out_of_stock && sold_out(&m)?) {
            continue;
        }
        eligible.push(s);
    }
    let mut slots = cfg.sponsored_slots.clone();
    slots.sort();
    for (slot, item_id) in slots.into_iter().zip(eligible) {
        let place = (slot.max(0) as usize).min(out.len() + 1);
        let mut cand = None;
        for c in cands {  // {c.item_id: c for c in cands}: the last one of an id
            if c.getattr(intern!(py, "item_id"))?.eq(&item_id)? {
                cand = Some(c.clone());
            }
        }
        let cand = match cand {
            Some(c) => c,
            None => {
                let scored = import_class(py, &SCORED, "operators.blend", "Scored")?;
                new_slotted(scored, &[(intern!(py, "item_id"), item_id.clone()),
                                      (intern!(py, "score"), PyFloat::new(py, 0.0).into_any()),
                                      (intern!(py, "evidence"), PyList::empty(py).into_any())])?
            }
        };
        let score = if place > 1 { out[place - 2].score } else {
            cand.getattr(intern!(py, "score"))?.extract()? };
        out.insert(place - 1, Item { item_id, score, candidate: cand, rank_before: place,
                                     notes: vec![format!("sponsored slot {slot}")],
                                     sponsored: true, meta: None, attrs: None });
    }
    out.truncate(cfg.k);
    Ok(out)
}
