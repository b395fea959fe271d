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
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use super::{to_py, RealizarError};
use crate::gguf::{Array, Gguf, GgufFile, Storage, Value};

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

fn value_to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
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
        Value::Array(a) => array_to_py(py, a)?,
    })
}

/// Numeric and bool arrays become 1-D NumPy arrays of the matching dtype, strings and nested
/// arrays lists (the Python wrapper turns short numeric arrays into lists).
fn array_to_py<'py>(py: Python<'py>, a: &Array) -> PyResult<Bound<'py, PyAny>> {
    Ok(match a {
        Array::U8(v) => PyArray1::from_slice(py, v).into_any(),
        Array::I8(v) => PyArray1::from_slice(py, v).into_any(),
        Array::U16(v) => PyArray1::from_slice(py, v).into_any(),
        Array::I16(v) => PyArray1::from_slice(py, v).into_any(),
        Array::U32(v) => PyArray1::from_slice(py, v).into_any(),
        Array::I32(v) => PyArray1::from_slice(py, v).into_any(),
        Array::F32(v) => PyArray1::from_slice(py, v).into_any(),
        Array::Bool(v) => PyArray1::from_slice(py, v).into_any(),
        Array::U64(v) => PyArray1::from_slice(py, v).into_any(),
        Array::I64(v) => PyArray1::from_slice(py, v).into_any(),
        Array::F64(v) => PyArray1::from_slice(py, v).into_any(),
        Array::String(v) => PyList::new(py, v.iter().map(|s| string_value(py, s)))?.into_any(),
        Array::Array(v) => {
            let items = v.iter().map(|x| array_to_py(py, x)).collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any()
        }
    })
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

    /// `[(key, type description, value)]` in file order.
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Vec<(String, String, Bound<'py, PyAny>)>> {
        self.header.metadata.iter().map(|(k, v)| Ok((k.clone(), v.type_description(), value_to_py(py, v)?))).collect()
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
