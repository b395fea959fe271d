//! Borrowing a Python object's memory through the buffer protocol, read-only, without a copy.

use std::ffi::c_void;

use pyo3::exceptions::{PyBufferError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::{ffi, PyErr};

/// A C-contiguous read-only view of an object exporting the buffer protocol (bytes, bytearray,
/// memoryview, NumPy arrays of any dtype, mmap, ...). Released when dropped.
pub struct ReadBuffer {
    view: Box<ffi::Py_buffer>,
}

// The exporter keeps the memory alive and in place until `PyBuffer_Release`, which `Drop` calls
// with the GIL held; the bytes themselves may be read from any thread.
unsafe impl Send for ReadBuffer {}
unsafe impl Sync for ReadBuffer {}

impl ReadBuffer {
    /// Borrows `obj`'s memory; a clear `TypeError` if it has none, `ValueError` if it is not
    /// C-contiguous.
    pub fn get(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Self> {
        let mut view: Box<ffi::Py_buffer> = Box::new(unsafe { std::mem::zeroed() });
        // PyBUF_C_CONTIGUOUS asks the exporter for C-contiguous memory (it refuses otherwise).
        let rc = unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), &mut *view, ffi::PyBUF_C_CONTIGUOUS) };
        if rc != 0 {
            let err = PyErr::fetch(obj.py());
            let tyname = obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
            if err.is_instance_of::<PyTypeError>(obj.py()) && unsafe { ffi::PyObject_CheckBuffer(obj.as_ptr()) } == 0 {
                return Err(PyTypeError::new_err(format!(
                    "{what} must be a bytes-like object (bytes, bytearray, memoryview, numpy array, mmap), \
                     not {tyname}"
                )));
            }
            if err.is_instance_of::<PyValueError>(obj.py()) || err.is_instance_of::<PyBufferError>(obj.py()) {
                let e = PyValueError::new_err(format!(
                    "{what} must be a C-contiguous buffer, but this {tyname} is not contiguous \
                     (use numpy.ascontiguousarray or bytes() to make a contiguous copy)"
                ));
                e.set_cause(obj.py(), Some(err));
                return Err(e);
            }
            return Err(err);
        }
        Ok(ReadBuffer { view })
    }

    /// The borrowed bytes.
    pub fn as_slice(&self) -> &[u8] {
        let len = self.view.len as usize;
        if len == 0 {
            return &[];
        }
        unsafe { std::slice::from_raw_parts(self.view.buf as *const u8, len) }
    }

    /// Address range, for the overlap check with an output array.
    pub fn range(&self) -> (usize, usize) {
        let start = self.view.buf as *const c_void as usize;
        (start, start + self.view.len as usize)
    }
}

impl Drop for ReadBuffer {
    fn drop(&mut self) {
        Python::attach(|_| unsafe { ffi::PyBuffer_Release(&mut *self.view) });
    }
}
