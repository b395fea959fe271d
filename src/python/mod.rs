//! The PyO3 module `realizar._realizar`. It only converts arguments, maps errors to exceptions and
//! releases the GIL around the work, which is all done by the core crate.

mod buffer;
mod gguf;
mod quantize;

use numpy::ndarray::IxDyn;
use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::{kernels, Error, Kernel, Options, QuantType};
use buffer::ReadBuffer;

create_exception!(
    _realizar,
    RealizarError,
    PyValueError,
    "Base class of realizar's errors (a ValueError): bad sizes, unknown types, malformed input."
);

/// The one mapping from the core's errors to Python exceptions.
fn to_py(e: Error) -> PyErr {
    match e {
        Error::Gguf { .. } => gguf::GGUFError::new_err(e.to_string()),
        Error::Io { kind, message } => PyErr::from(std::io::Error::new(kind, message)),
        _ => RealizarError::new_err(e.to_string()),
    }
}

fn qtype_of(id: u32) -> PyResult<QuantType> {
    QuantType::from_ggml_id(id).map_err(to_py)
}

/// The table of formats: (name, ggml id, block size, type size) for every type.
#[pyfunction]
fn _type_table() -> Vec<(&'static str, u32, usize, usize)> {
    QuantType::ALL.iter().map(|t| (t.name(), t.ggml_id(), t.block_size(), t.type_size())).collect()
}

/// The ggml id of a type name (any case).
#[pyfunction]
fn _type_id_from_name(name: &str) -> PyResult<u32> {
    QuantType::from_name(name).map(QuantType::ggml_id).map_err(to_py)
}

/// Checks a ggml id and returns it.
#[pyfunction]
fn _check_type_id(id: u32) -> PyResult<u32> {
    qtype_of(id).map(QuantType::ggml_id)
}

/// Number of weights that `nbytes` bytes of type `qtype` hold (errors if not whole blocks).
#[pyfunction]
fn _weights_in(qtype: u32, nbytes: usize) -> PyResult<usize> {
    qtype_of(qtype)?.weights_in(nbytes).map_err(to_py)
}

/// Decodes `data` (any C-contiguous buffer) of ggml type id `qtype` into float32: a new 1-D array,
/// or `out` filled in place and returned.
#[pyfunction]
#[pyo3(signature = (data, qtype, out=None, threads=0))]
fn dequantize<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    qtype: u32,
    out: Option<&Bound<'py, PyAny>>,
    threads: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let qtype = qtype_of(qtype)?;
    let buf = ReadBuffer::get(data, "data")?;
    let n = qtype.weights_in(buf.as_slice().len()).map_err(to_py)?;
    let opts = Options { threads, kernel: None };
    let arr = match out {
        // NumPy's own allocation carries NumPy's huge-page hint for large arrays, so first-touching
        // the output costs far fewer page faults than a Vec's 4 KiB pages; uninitialised (as
        // `np.empty`), because the decode below writes every element before anyone can read one
        // (the lengths were checked above), and zeroing a reused heap chunk first would cost as
        // much as decoding a small output (measured: benches/bench_python.py).
        // SAFETY: a new C-contiguous float32 array of n elements, fully written before it is returned.
        None => unsafe { PyArrayDyn::<f32>::new(py, IxDyn(&[n]), false) },
        Some(out) => writable_f32(out, n)?.clone(),
    };
    {
        let mut rw = arr.try_readwrite().map_err(|e| PyValueError::new_err(format!("out: {e}")))?;
        let dst = rw.as_slice_mut().map_err(|e| PyValueError::new_err(format!("out: {e}")))?;
        let (a0, a1) = buf.range();
        let (b0, b1) = (dst.as_ptr() as usize, dst.as_ptr() as usize + 4 * dst.len());
        if a0 < b1 && b0 < a1 {
            return Err(PyValueError::new_err("out must not overlap the input data"));
        }
        py.detach(|| crate::dequantize_into_with(buf.as_slice(), qtype, dst, opts)).map_err(to_py)?;
    }
    Ok(arr.into_any())
}

/// Decodes many `(data, qtype, out)` jobs in one call with the GIL released once: all the jobs'
/// blocks are shared among the threads (see `realizar::dequantize_many_into`). Every job is checked
/// first; the outputs must not overlap each other or any input.
#[pyfunction]
#[pyo3(signature = (jobs, threads=0))]
fn _dequantize_many(
    py: Python<'_>,
    jobs: Vec<(Bound<'_, PyAny>, u32, Bound<'_, PyAny>)>,
    threads: usize,
) -> PyResult<()> {
    let mut bufs = Vec::with_capacity(jobs.len());
    for (i, (data, qtype, out)) in jobs.iter().enumerate() {
        let qtype = qtype_of(*qtype)?;
        let buf = ReadBuffer::get(data, &format!("jobs[{i}] data"))?;
        let n =
            qtype.weights_in(buf.as_slice().len()).map_err(|e| RealizarError::new_err(format!("jobs[{i}]: {e}")))?;
        let arr = writable_f32(out, n).map_err(|e| prefixed(py, e, i))?;
        bufs.push((buf, qtype, arr));
    }
    // rust-numpy's borrow tracking refuses two outputs that share memory.
    let mut rws = Vec::with_capacity(bufs.len());
    for (i, (_, _, arr)) in bufs.iter().enumerate() {
        let rw =
            arr.try_readwrite().map_err(|e| PyValueError::new_err(format!("jobs[{i}] out: {e} (outputs overlap?)")))?;
        rws.push(rw);
    }
    let mut inputs: Vec<(usize, usize, usize)> =
        bufs.iter().enumerate().map(|(i, (b, _, _))| (b.range().0, b.range().1, i)).collect();
    inputs.sort_unstable();
    let mut jobs = Vec::with_capacity(bufs.len());
    for (i, ((buf, qtype, _), rw)) in bufs.iter().zip(rws.iter_mut()).enumerate() {
        let dst = rw.as_slice_mut().map_err(|e| PyValueError::new_err(format!("jobs[{i}] out: {e}")))?;
        let (b0, b1) = (dst.as_ptr() as usize, dst.as_ptr() as usize + 4 * dst.len());
        // Inputs starting before the output's end; any of them ending after its start overlaps.
        let before = inputs.partition_point(|&(a0, _, _)| a0 < b1);
        if let Some(&(_, _, j)) = inputs[..before].iter().find(|&&(a0, a1, _)| a0 < a1 && a1 > b0 && b0 < b1) {
            return Err(PyValueError::new_err(format!("jobs[{i}] out overlaps the input data of jobs[{j}]")));
        }
        jobs.push((buf.as_slice(), *qtype, dst));
    }
    let opts = Options { threads, kernel: None };
    py.detach(|| crate::dequantize_many_into(&mut jobs, opts)).map_err(to_py)
}

/// The same exception with "jobs[i] " before its message.
fn prefixed(py: Python<'_>, e: PyErr, i: usize) -> PyErr {
    let msg = format!("jobs[{i}] {}", e.value(py));
    if e.is_instance_of::<PyTypeError>(py) {
        PyTypeError::new_err(msg)
    } else if e.is_instance_of::<RealizarError>(py) {
        RealizarError::new_err(msg)
    } else {
        PyValueError::new_err(msg)
    }
}

/// `out` as a writable C-contiguous float32 array of `n` elements, or a clear error.
fn writable_f32<'a, 'py>(out: &'a Bound<'py, PyAny>, n: usize) -> PyResult<&'a Bound<'py, PyArrayDyn<f32>>> {
    let untyped = out.cast::<PyUntypedArray>().map_err(|_| {
        let tyname = out.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
        PyTypeError::new_err(format!("out must be a numpy.ndarray of dtype float32, not {tyname}"))
    })?;
    let arr = out
        .cast::<PyArrayDyn<f32>>()
        .map_err(|_| PyTypeError::new_err(format!("out must have dtype float32, got {}", untyped.dtype())))?;
    if !arr.is_c_contiguous() {
        return Err(PyValueError::new_err(format!(
            "out must be C-contiguous; got an array with shape {:?} and strides {:?}",
            arr.shape(),
            arr.strides()
        )));
    }
    let writeable: bool = out.getattr("flags")?.getattr("writeable")?.extract()?;
    if !writeable {
        return Err(PyValueError::new_err("out is read-only (flags.writeable is False)"));
    }
    if arr.len() != n {
        return Err(RealizarError::new_err(format!(
            "out has {} elements (shape {:?}) but the input decodes to {n} weights",
            arr.len(),
            arr.shape()
        )));
    }
    Ok(arr)
}

/// The kernel in use: "scalar", "avx2", "avx512" or "neon".
#[pyfunction]
fn kernel() -> &'static str {
    kernels::active().name()
}

/// Forces a kernel ("auto" for the best this CPU has); returns the one now active.
#[pyfunction]
fn set_kernel(name: &str) -> PyResult<&'static str> {
    let k = if name.trim().eq_ignore_ascii_case("auto") { None } else { Some(Kernel::from_name(name).map_err(to_py)?) };
    kernels::set_kernel(k).map(Kernel::name).map_err(to_py)
}

/// Kernels this CPU supports.
#[pyfunction]
fn available_kernels() -> Vec<&'static str> {
    kernels::available().into_iter().map(Kernel::name).collect()
}

/// Threads in realizar's pool (the default for large inputs).
#[pyfunction]
fn _num_threads() -> usize {
    rayon::current_num_threads()
}

#[pymodule]
fn _realizar(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("RealizarError", m.py().get_type::<RealizarError>())?;
    m.add_function(wrap_pyfunction!(dequantize, m)?)?;
    m.add_function(wrap_pyfunction!(_dequantize_many, m)?)?;
    m.add_function(wrap_pyfunction!(kernel, m)?)?;
    m.add_function(wrap_pyfunction!(set_kernel, m)?)?;
    m.add_function(wrap_pyfunction!(available_kernels, m)?)?;
    m.add_function(wrap_pyfunction!(_type_table, m)?)?;
    m.add_function(wrap_pyfunction!(_type_id_from_name, m)?)?;
    m.add_function(wrap_pyfunction!(_check_type_id, m)?)?;
    m.add_function(wrap_pyfunction!(_weights_in, m)?)?;
    m.add_function(wrap_pyfunction!(_num_threads, m)?)?;
    m.add("GGUFError", m.py().get_type::<gguf::GGUFError>())?;
    m.add_class::<gguf::_GGUFFile>()?;
    m.add_class::<gguf::_MappedBytes>()?;
    m.add_function(wrap_pyfunction!(gguf::_gguf_parse_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(quantize::quantize, m)?)?;
    Ok(())
}
