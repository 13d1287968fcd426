//! Reading Python values the way the Python operators read them: sequences (tuples and lists
//! on the fast path, any iterable otherwise), mapping look-ups with `.get`, and an arena that
//! keeps the Python strings of one call alive so the Rust side can key on borrowed `&str`.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::ffi;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyDict, PyList, PyString, PyTuple, PyType};

/// The elements of a Python sequence or iterable, in order.
pub fn elements<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyAny>>> {
    if let Ok(t) = obj.downcast::<PyTuple>() {
        return Ok(t.iter().collect());
    }
    if let Ok(l) = obj.downcast::<PyList>() {
        return Ok(l.iter().collect());
    }
    obj.try_iter()?.collect()
}

/// A tuple or list read lazily by index (`len(seq)`, `seq[i]`), any other sequence through
/// the sequence protocol.
pub struct Seq<'py> {
    obj: Bound<'py, PyAny>,
    len: usize,
}

impl<'py> Seq<'py> {
    pub fn of(obj: Bound<'py, PyAny>) -> PyResult<Self> {
        let len = len_of(&obj)?;
        Ok(Seq { obj, len })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn get(&self, i: usize) -> PyResult<Bound<'py, PyAny>> {
        nth(&self.obj, i)
    }
}

/// Element `i` of a tuple or list entry (`entry[i]`).
pub fn nth<'py>(entry: &Bound<'py, PyAny>, i: usize) -> PyResult<Bound<'py, PyAny>> {
    if let Ok(t) = entry.downcast::<PyTuple>() {
        return t.get_item(i);
    }
    if let Ok(l) = entry.downcast::<PyList>() {
        return l.get_item(i);
    }
    entry.get_item(i)
}

/// `len(entry)` of a tuple or list entry.
pub fn len_of(entry: &Bound<'_, PyAny>) -> PyResult<usize> {
    if let Ok(t) = entry.downcast::<PyTuple>() {
        return Ok(t.len());
    }
    if let Ok(l) = entry.downcast::<PyList>() {
        return Ok(l.len());
    }
    entry.len()
}

/// `mapping.get(key)`, `None` when absent.
pub fn get<'py>(mapping: &Bound<'py, PyAny>, key: &Bound<'py, PyAny>)
                -> PyResult<Option<Bound<'py, PyAny>>> {
    if let Ok(d) = mapping.downcast::<PyDict>() {
        return d.get_item(key);
    }
    let found = mapping.call_method1(pyo3::intern!(mapping.py(), "get"), (key,))?;
    Ok(if found.is_none() { None } else { Some(found) })
}

/// Python strings of one call, kept alive (and readable as `&str`) until the call returns.
pub struct Arena<'py> {
    objs: Vec<Bound<'py, PyString>>,
}

impl<'py> Arena<'py> {
    pub fn new() -> Self {
        Arena { objs: Vec::with_capacity(512) }
    }

    /// Keep a string (an item id, a source name); its index in the arena.
    pub fn push(&mut self, obj: Bound<'py, PyAny>, what: &str) -> PyResult<u32> {
        let s = obj.downcast_into::<PyString>().map_err(|e| {
            PyTypeError::new_err(format!("native: {what} must be a str, got {}",
                                         e.into_inner()))
        })?;
        self.objs.push(s);
        Ok((self.objs.len() - 1) as u32)
    }

    pub fn obj(&self, idx: u32) -> &Bound<'py, PyString> {
        &self.objs[idx as usize]
    }

    /// Every kept string as `&str`, by index (call once all are pushed).
    pub fn strs(&self) -> PyResult<Vec<&str>> {
        self.objs.iter().map(|s| s.to_str()).collect()
    }
}

/// A new instance of a slotted dataclass with its fields set, without calling `__init__`:
/// allocated as `object.__new__` allocates it and each field stored through its slot, as
/// `object.__setattr__` stores it (a frozen dataclass's `__init__` does exactly that, slower).
/// Only for the plain dataclasses of `operators.blend` (no `__post_init__`, no validation).
pub fn new_slotted<'py>(cls: &Bound<'py, PyType>, fields: &[(&Bound<'py, PyString>, Bound<'py, PyAny>)])
                        -> PyResult<Bound<'py, PyAny>> {
    let py = cls.py();
    // SAFETY: tp_alloc of a heap type returns a new reference (or NULL with an exception set);
    // the slots start as NULL and are set below before the object is handed out.
    let obj = unsafe {
        let tp = cls.as_type_ptr();
        let alloc = (*tp).tp_alloc.unwrap_or(ffi::PyType_GenericAlloc);
        Bound::from_owned_ptr_or_err(py, alloc(tp, 0))?
    };
    for (name, value) in fields {
        // SAFETY: all three are valid objects; the generic setattr finds the slot's member
        // descriptor on the type (it bypasses a frozen dataclass's __setattr__ override).
        let rc = unsafe { ffi::PyObject_GenericSetAttr(obj.as_ptr(), name.as_ptr(),
                                                       value.as_ptr()) };
        if rc != 0 {
            return Err(PyErr::fetch(py));
        }
    }
    Ok(obj)
}

/// A class of a Python module, imported once per process into `cell`.
pub fn import_class<'a, 'py>(py: Python<'py>, cell: &'a GILOnceCell<Py<PyType>>, module: &str,
                             name: &str) -> PyResult<&'a Bound<'py, PyType>> {
    let cls = cell.get_or_try_init(py, || -> PyResult<Py<PyType>> {
        Ok(py.import(module)?.getattr(name)?.downcast_into::<PyType>()?.unbind())
    })?;
    Ok(cls.bind(py))
}
