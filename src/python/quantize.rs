//! PyO3 binding of the quantizers: converts arguments, releases the GIL, maps errors.

use numpy::{PyArray1, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use super::{qtype_of, to_py, RealizarError};
use crate::quantize::{encoded_len, quantize_rows_into_with, QuantizeOptions};

fn contiguous<'a, T: numpy::Element>(a: &'a PyReadonlyArrayDyn<'_, T>, what: &str) -> PyResult<&'a [T]> {
    a.as_slice().map_err(|_| PyValueError::new_err(format!("{what} must be C-contiguous")))
}

/// Quantizes the float32 C-contiguous array `x` (rows = its last axis, `n_per_row` values each) to
/// ggml type id `qtype`: a new 1-D uint8 array, or `out` (C-contiguous uint8 of the encoded size)
/// filled in place and returned. `imatrix` holds one importance weight per column.
#[pyfunction]
#[pyo3(signature = (x, qtype, n_per_row, imatrix=None, out=None, threads=0))]
pub fn quantize<'py>(
    py: Python<'py>,
    x: PyReadonlyArrayDyn<'py, f32>,
    qtype: u32,
    n_per_row: usize,
    imatrix: Option<PyReadonlyArrayDyn<'py, f32>>,
    out: Option<&Bound<'py, PyAny>>,
    threads: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let qtype = qtype_of(qtype)?;
    let xs = contiguous(&x, "x")?;
    let qw = match &imatrix {
        Some(a) => Some(contiguous(a, "imatrix")?),
        None => None,
    };
    let opts = QuantizeOptions { n_per_row: Some(n_per_row), imatrix: qw, threads };
    let nbytes = encoded_len(qtype, xs.len()).map_err(to_py)?;
    match out {
        None => {
            // NumPy's uninitialised allocation (`numpy.empty`), as for fresh dequantized outputs:
            // every encoder writes every byte and reads none (tested), and, unlike a zeroed
            // buffer (calloc: fresh pages, a page fault per 4 KiB on first write), memory that
            // malloc reuses costs nothing to hand out.
            // SAFETY: the array is filled completely below before Python can see it.
            let arr = unsafe { PyArray1::<u8>::new(py, nbytes, false) };
            {
                let mut rw = arr.readwrite();
                let dst = rw.as_slice_mut().map_err(|e| PyValueError::new_err(format!("out: {e}")))?;
                py.detach(|| quantize_rows_into_with(xs, qtype, dst, opts)).map_err(to_py)?;
            }
            Ok(arr.into_any())
        }
        Some(out_obj) => {
            let untyped = out_obj.cast::<PyUntypedArray>().map_err(|_| {
                let tyname = out_obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
                PyTypeError::new_err(format!("out must be a numpy.ndarray of dtype uint8, not {tyname}"))
            })?;
            let arr = out_obj
                .cast::<PyArrayDyn<u8>>()
                .map_err(|_| PyTypeError::new_err(format!("out must have dtype uint8, got {}", untyped.dtype())))?;
            if !arr.is_c_contiguous() {
                return Err(PyValueError::new_err("out must be C-contiguous"));
            }
            let writeable: bool = out_obj.getattr("flags")?.getattr("writeable")?.extract()?;
            if !writeable {
                return Err(PyValueError::new_err("out is read-only (flags.writeable is False)"));
            }
            if arr.len() != nbytes {
                return Err(RealizarError::new_err(format!(
                    "out has {} bytes (shape {:?}) but the input encodes to {nbytes} bytes of {qtype}",
                    arr.len(),
                    arr.shape()
                )));
            }
            let mut rw = arr.try_readwrite().map_err(|e| PyValueError::new_err(format!("out: {e}")))?;
            let dst = rw.as_slice_mut().map_err(|e| PyValueError::new_err(format!("out: {e}")))?;
            let (a0, a1) = (xs.as_ptr() as usize, xs.as_ptr() as usize + 4 * xs.len());
            let (b0, b1) = (dst.as_ptr() as usize, dst.as_ptr() as usize + dst.len());
            if a0 < b1 && b0 < a1 {
                return Err(PyValueError::new_err("out must not overlap the input x"));
            }
            py.detach(|| quantize_rows_into_with(xs, qtype, dst, opts)).map_err(to_py)?;
            drop(rw);
            Ok(out_obj.clone())
        }
    }
}
