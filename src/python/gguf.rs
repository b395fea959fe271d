//! PyO3 side of GGUF files: `_GGUFFile` (a validated, memory-mapped file) and `_MappedBytes` (a
//! read-only buffer onto part of the mapping that keeps the mapping alive on its own).

use std::ffi::c_int;
use std::path::PathBuf;
use std::sync::Arc;

use numpy::PyArray1;
use pyo3::create_exception;
use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{IntoPyDict, PyBytes, PyList, PyString, PyTuple};

use super::{to_py, RealizarError};
use crate::gguf::{Array, Gguf, GgufFile, Storage, Value, ValueType};

create_exception!(
    _realizar,
    GGUFError,
    RealizarError,
    "A malformed GGUF file: the message says what is wrong and at which byte offset."
);

/// Read-only bytes of a mapped file. Holding one keeps the whole mapping alive, so NumPy arrays made
/// from it stay valid after the file is closed.
#[pyclass(frozen, module = "realizar._realizar")]
pub struct _MappedBytes {
    storage: Arc<Storage>,
    start: usize,
    len: usize,
}

#[pymethods]
impl _MappedBytes {
    fn __len__(&self) -> usize {
        self.len
    }

    unsafe fn __getbuffer__(slf: Bound<'_, Self>, view: *mut ffi::Py_buffer, flags: c_int) -> PyResult<()> {
        let me = slf.get();
        // In range: `start..start+len` was checked against the storage when this object was made.
        let ptr = unsafe { me.storage.as_ptr().add(me.start) } as *mut std::ffi::c_void;
        // PyBuffer_FillInfo refuses PyBUF_WRITABLE requests (readonly = 1) with a BufferError.
        let rc = unsafe { ffi::PyBuffer_FillInfo(view, slf.as_ptr(), ptr, me.len as ffi::Py_ssize_t, 1, flags) };
        if rc != 0 {
            return Err(PyErr::fetch(slf.py()));
        }
        Ok(())
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {}
}

/// An open GGUF file (validated once, on open).
#[pyclass(module = "realizar._realizar")]
pub struct _GGUFFile {
    /// The mapping; `None` once closed. The header stays readable after close.
    storage: Option<Arc<Storage>>,
    header: Gguf,
}

fn string_value<'py>(py: Python<'py>, s: &[u8]) -> Bound<'py, PyAny> {
    match std::str::from_utf8(s) {
        Ok(t) => PyString::new(py, t).into_any(),
        Err(_) => PyBytes::new(py, s).into_any(),
    }
}

/// A metadata value as Python: ints, floats, bools, str (bytes if not UTF-8), and for arrays a list,
/// except numeric and bool arrays longer than `long_array`, which become read-only 1-D NumPy arrays
/// of the matching dtype. Built directly from the file's bytes, once, in its final form.
fn value_to_py<'py>(py: Python<'py>, v: &Value, long_array: usize) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::U8(x) => x.into_pyobject(py)?.into_any(),
        Value::I8(x) => x.into_pyobject(py)?.into_any(),
        Value::U16(x) => x.into_pyobject(py)?.into_any(),
        Value::I16(x) => x.into_pyobject(py)?.into_any(),
        Value::U32(x) => x.into_pyobject(py)?.into_any(),
        Value::I32(x) => x.into_pyobject(py)?.into_any(),
        Value::U64(x) => x.into_pyobject(py)?.into_any(),
        Value::I64(x) => x.into_pyobject(py)?.into_any(),
        Value::F32(x) => f64::from(*x).into_pyobject(py)?.into_any(),
        Value::F64(x) => x.into_pyobject(py)?.into_any(),
        Value::Bool(x) => x.into_pyobject(py)?.to_owned().into_any(),
        Value::String(s) => string_value(py, s),
        Value::Array(a) => array_to_py(py, a, long_array, usize::MAX)?,
    })
}

/// The first `limit` elements of `a` (all of them for `usize::MAX`), see [`value_to_py`].
fn array_to_py<'py>(py: Python<'py>, a: &Array, long_array: usize, limit: usize) -> PyResult<Bound<'py, PyAny>> {
    let n = a.len().min(limit);
    let as_numpy = n > long_array;
    /// A NumPy array (read-only) or a list of the first `n` numbers of the array's bytes.
    fn numbers<'py, T, const N: usize>(
        py: Python<'py>,
        raw: &[u8],
        n: usize,
        as_numpy: bool,
        read: fn([u8; N]) -> T,
    ) -> PyResult<Bound<'py, PyAny>>
    where
        T: numpy::Element + IntoPyObject<'py>,
        [u8; N]: Default,
    {
        let v: Vec<T> = raw.chunks_exact(N).take(n).map(|c| read(c.try_into().unwrap_or_default())).collect();
        if as_numpy {
            readonly(PyArray1::from_vec(py, v).into_any())
        } else {
            Ok(PyList::new(py, v)?.into_any())
        }
    }
    let raw = a.raw();
    match a.element_type() {
        ValueType::U8 => numbers(py, raw, n, as_numpy, u8::from_le_bytes),
        ValueType::I8 => numbers(py, raw, n, as_numpy, i8::from_le_bytes),
        ValueType::U16 => numbers(py, raw, n, as_numpy, u16::from_le_bytes),
        ValueType::I16 => numbers(py, raw, n, as_numpy, i16::from_le_bytes),
        ValueType::U32 => numbers(py, raw, n, as_numpy, u32::from_le_bytes),
        ValueType::I32 => numbers(py, raw, n, as_numpy, i32::from_le_bytes),
        ValueType::U64 => numbers(py, raw, n, as_numpy, u64::from_le_bytes),
        ValueType::I64 => numbers(py, raw, n, as_numpy, i64::from_le_bytes),
        ValueType::F32 => numbers(py, raw, n, as_numpy, f32::from_le_bytes),
        ValueType::F64 => numbers(py, raw, n, as_numpy, f64::from_le_bytes),
        ValueType::Bool => numbers(py, raw, n, as_numpy, |[b]: [u8; 1]| b != 0),
        ValueType::String => {
            let strings = a.strings().into_iter().flatten().take(n);
            Ok(PyList::new(py, strings.map(|s| string_value(py, s)))?.into_any())
        }
        ValueType::Array => {
            let arrays = a.arrays().into_iter().flatten().take(n);
            let items = arrays.map(|x| array_to_py(py, &x, long_array, usize::MAX)).collect::<PyResult<Vec<_>>>()?;
            Ok(PyList::new(py, items)?.into_any())
        }
    }
}

/// Marks a NumPy array read-only (metadata values are shared by every reader of the mapping).
fn readonly(a: Bound<'_, PyAny>) -> PyResult<Bound<'_, PyAny>> {
    let kwargs = [("write", false)].into_py_dict(a.py())?;
    a.call_method("setflags", (), Some(&kwargs))?;
    Ok(a)
}

#[pymethods]
impl _GGUFFile {
    #[new]
    fn new(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let (storage, header) = py.detach(|| GgufFile::open(&path)).map_err(to_py)?.into_parts();
        Ok(_GGUFFile { storage: Some(storage), header })
    }

    /// Drops this object's reference to the mapping (views made by `raw` keep their own).
    fn close(&mut self) {
        self.storage = None;
    }

    #[getter]
    fn closed(&self) -> bool {
        self.storage.is_none()
    }

    #[getter]
    fn version(&self) -> u32 {
        self.header.version
    }

    #[getter]
    fn alignment(&self) -> u64 {
        self.header.alignment
    }

    #[getter]
    fn data_offset(&self) -> u64 {
        self.header.data_offset
    }

    #[getter]
    fn file_size(&self) -> u64 {
        self.header.file_len
    }

    /// `[(key, type description)]` in file order (no value is converted).
    fn metadata_keys(&self) -> Vec<(String, String)> {
        self.header.metadata.iter().map(|(k, v)| (k.clone(), v.type_description())).collect()
    }

    /// The value of metadata `key` as Python (numeric arrays longer than `long_array` as read-only
    /// NumPy arrays), converted now; the file's bytes are not needed (the header keeps them).
    fn metadata_value<'py>(&self, py: Python<'py>, key: &str, long_array: usize) -> PyResult<Bound<'py, PyAny>> {
        let v = self.header.get(key).ok_or_else(|| PyKeyError::new_err(key.to_owned()))?;
        value_to_py(py, v, long_array)
    }

    /// For a summary: `(None, value)` for a scalar, `(length, first n elements)` for an array (only
    /// those are converted, so a huge array costs nothing here).
    fn metadata_head<'py>(&self, py: Python<'py>, key: &str, n: usize) -> PyResult<(Option<usize>, Bound<'py, PyAny>)> {
        let v = self.header.get(key).ok_or_else(|| PyKeyError::new_err(key.to_owned()))?;
        match v {
            Value::Array(a) => Ok((Some(a.len()), array_to_py(py, a, usize::MAX, n)?)),
            v => Ok((None, value_to_py(py, v, usize::MAX)?)),
        }
    }

    /// `[(name, shape (NumPy order), type id, type name or None, nbytes or None, absolute offset)]`.
    #[allow(clippy::type_complexity)]
    fn tensors<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Vec<(String, Bound<'py, PyTuple>, u32, Option<&'static str>, Option<u64>, u64)>> {
        self.header
            .tensors
            .iter()
            .map(|t| {
                Ok((
                    t.name.clone(),
                    PyTuple::new(py, t.shape())?,
                    t.type_id,
                    t.ggml_type().map(|g| g.name),
                    t.nbytes,
                    t.data_start,
                ))
            })
            .collect()
    }

    /// A read-only buffer onto the bytes of tensor `name` (zero-copy).
    fn raw(&self, name: &str) -> PyResult<_MappedBytes> {
        let storage =
            self.storage.as_ref().ok_or_else(|| PyValueError::new_err("I/O operation on a closed GGUF file"))?;
        let t = self.header.tensor(name).ok_or_else(|| PyKeyError::new_err(format!("no tensor named {name:?}")))?;
        let data = self.header.tensor_bytes(storage, t).ok_or_else(|| to_py(crate::gguf::undecodable_size(t)))?;
        let start = data.as_ptr() as usize - storage.as_ptr() as usize;
        Ok(_MappedBytes { storage: Arc::clone(storage), start, len: data.len() })
    }
}

/// Parses GGUF bytes held in memory and returns the number of tensors (used by the fuzz tests to
/// exercise the parser without touching the disk).
#[pyfunction]
pub fn _gguf_parse_bytes(py: Python<'_>, data: &[u8]) -> PyResult<usize> {
    py.detach(|| crate::gguf::parse(data).map(|g| g.tensors.len())).map_err(to_py)
}
