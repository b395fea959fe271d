//! The one validation layer: turns untrusted bytes into a [`Gguf`] whose every offset, size and
//! count has been checked against the bytes actually there. Nothing downstream re-checks.
//!
//! Rules: every read goes through [`Reader`], which fails with `Truncated` instead of reading past
//! the end; no count from the file is used before that count times the smallest possible encoding
//! of one element has been checked (with checked arithmetic) against the bytes left; vectors of
//! structs reserve at most [`MAX_PREALLOC`] entries up front (memory follows the entries actually
//! parsed, not the claimed count); arrays are validated in place and kept as one copy of their
//! bytes (nothing allocated per element); all sizes are computed with checked `u64` arithmetic.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use super::types::ggml_type;
use super::value::{Array, Value, ValueType};
use super::{Gguf, TensorInfo};
use crate::error::{Error, GgufErrorKind, Result};

/// `GGML_MAX_DIMS`: ggml tensors have at most four dimensions.
pub const MAX_DIMS: u32 = 4;
/// Arrays of arrays deeper than this are refused (keeps recursion bounded; ggml itself accepts no
/// nesting at all, gguf-py any).
pub const MAX_NESTING: usize = 16;
/// `GGUF_DEFAULT_ALIGNMENT`.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// The largest `general.alignment` accepted (1 GiB; ggml's only rule is "a power of two").
pub const MAX_ALIGNMENT: u64 = 1 << 30;
/// The smallest possible encoding of a metadata key/value pair: key length (8), type (4), a 1-byte value.
const MIN_KV_SIZE: u64 = 13;
/// The smallest possible encoding of a tensor info: name length (8), n_dims (4), type (4), offset (8).
const MIN_TENSOR_INFO_SIZE: u64 = 24;

/// Most elements reserved up front for a count read from the file. A count is first checked against
/// the bytes left, but one small entry in the file (13 bytes for a key/value) becomes a much larger
/// struct in memory, so a multi-GB file claiming millions of entries must not reserve memory for
/// all of them before they are read: vectors grow as entries are actually parsed, which bounds
/// memory by a small multiple of the bytes really consumed.
const MAX_PREALLOC: u64 = 1 << 12;

fn prealloc(count: u64) -> usize {
    count.min(MAX_PREALLOC) as usize
}

fn err(offset: usize, kind: GgufErrorKind) -> Error {
    Error::Gguf { offset: offset as u64, kind }
}

/// A bounds-checked little-endian cursor over the file's bytes.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    /// The next `n` bytes, or `Truncated` (reported at the current position).
    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(err(
                self.pos,
                GgufErrorKind::Truncated { what: what(), needed: n, available: self.remaining() },
            ));
        }
        let s = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N]> {
        let s = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32> {
        self.array::<4>(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        self.array::<8>(what).map(u64::from_le_bytes)
    }

    /// Checks that `count` items of at least `min_size` bytes each can fit in what is left.
    fn check_count(&self, count: u64, min_size: u64, at: usize, what: &dyn Fn() -> String) -> Result<()> {
        let fits = count.checked_mul(min_size).is_some_and(|n| n <= self.remaining());
        if !fits {
            return Err(err(
                at,
                GgufErrorKind::CountTooLarge { what: what(), count, min_size, available: self.remaining() },
            ));
        }
        Ok(())
    }

    /// A GGUF string: u64 length, then that many bytes.
    fn string(&mut self, what: &dyn Fn() -> String) -> Result<&'a [u8]> {
        let len = self.u64(&|| format!("length of {}", what()))?;
        if len > self.remaining() {
            return Err(err(
                self.pos - 8,
                GgufErrorKind::Truncated {
                    what: format!("{} (string length {len})", what()),
                    needed: len,
                    available: self.remaining(),
                },
            ));
        }
        self.take(len, what)
    }

    /// A string that must be UTF-8 (keys, tensor names).
    fn utf8(&mut self, what: &dyn Fn() -> String) -> Result<&'a str> {
        let at = self.pos;
        let bytes = self.string(what)?;
        std::str::from_utf8(bytes).map_err(|_| err(at, GgufErrorKind::InvalidUtf8 { what: what() }))
    }

    fn value_type(&mut self, what: &dyn Fn() -> String) -> Result<ValueType> {
        let at = self.pos;
        let id = self.u32(&|| format!("value type of {}", what()))?;
        ValueType::from_id(id).ok_or_else(|| err(at, GgufErrorKind::UnknownValueType { what: what(), type_id: id }))
    }

    fn value(&mut self, vt: ValueType, what: &dyn Fn() -> String) -> Result<Value> {
        Ok(match vt {
            ValueType::U8 => Value::U8(self.array::<1>(what)?[0]),
            ValueType::I8 => Value::I8(i8::from_le_bytes(self.array(what)?)),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(what)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(what)?)),
            ValueType::U32 => Value::U32(u32::from_le_bytes(self.array(what)?)),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(what)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(what)?)),
            ValueType::U64 => Value::U64(u64::from_le_bytes(self.array(what)?)),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array(what)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(what)?)),
            ValueType::Bool => {
                let at = self.pos;
                let b = self.array::<1>(what)?[0];
                Value::Bool(to_bool(b).ok_or_else(|| err(at, GgufErrorKind::BadBool { what: what(), byte: b }))?)
            }
            ValueType::String => Value::String(self.string(what)?.to_vec()),
            ValueType::Array => {
                // Validated in place, then kept as one copy of its bytes: nothing is allocated per
                // element, so opening a file costs no more for a 50,000-token vocabulary (or
                // millions of empty nested arrays) than one copy of their bytes.
                let start = self.pos;
                self.array_value(1, what)?;
                Value::Array(Array::validated(self.buf[start..self.pos].into()))
            }
        })
    }

    /// Checks an array: element type (u32), count (u64), then the elements; allocates nothing.
    fn array_value(&mut self, depth: usize, what: &dyn Fn() -> String) -> Result<()> {
        let at = self.pos;
        if depth > MAX_NESTING {
            return Err(err(at, GgufErrorKind::NestingTooDeep { what: what(), max: MAX_NESTING }));
        }
        let et = self.value_type(&|| format!("array elements of {}", what()))?;
        let count_at = self.pos;
        let n = self.u64(&|| format!("array length of {}", what()))?;
        let elems = || format!("{} ({} array)", what(), et.name());
        self.check_count(n, et.min_size(), count_at, &elems)?;
        match et {
            ValueType::Bool => {
                let start = self.pos;
                let bytes = self.take(n, &elems)?;
                if let Some(i) = bytes.iter().position(|&b| to_bool(b).is_none()) {
                    let what = || format!("element {i} of {}", what());
                    return Err(err(start + i, GgufErrorKind::BadBool { what: what(), byte: bytes[i] }));
                }
            }
            ValueType::String => {
                for i in 0..n {
                    self.string(&|| format!("string {i} of {}", what()))?;
                }
            }
            ValueType::Array => {
                for i in 0..n {
                    self.array_value(depth + 1, &|| format!("element {i} of {}", what()))?;
                }
            }
            // check_count has shown that n elements of this size fit: no overflow.
            fixed => {
                self.take(n * fixed.min_size(), &elems)?;
            }
        }
        Ok(())
    }
}

fn to_bool(b: u8) -> Option<bool> {
    match b {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// Parses and validates a whole GGUF file held in `buf`.
pub fn parse(buf: &[u8]) -> Result<Gguf> {
    if buf.is_empty() {
        return Err(err(0, GgufErrorKind::Empty));
    }
    let mut r = Reader { buf, pos: 0 };

    // Header.
    let magic: [u8; 4] = r.array(&|| "magic".into())?;
    if &magic != b"GGUF" {
        if &magic == b"FUGG" {
            // The magic written as a big-endian u32 by a writer that did not special-case it.
            let raw = u32::from_le_bytes(r.array(&|| "version".into())?);
            return Err(err(4, GgufErrorKind::BigEndian { raw_version: raw, version: raw.swap_bytes() }));
        }
        return Err(err(0, GgufErrorKind::BadMagic { found: magic }));
    }
    let version = r.u32(&|| "version".into())?;
    if version & 0xFFFF == 0 && version != 0 {
        return Err(err(4, GgufErrorKind::BigEndian { raw_version: version, version: version.swap_bytes() }));
    }
    if !(2..=3).contains(&version) {
        return Err(err(4, GgufErrorKind::UnsupportedVersion(version)));
    }
    let n_tensors_at = r.pos;
    let n_tensors = r.u64(&|| "tensor count".into())?;
    let n_kv_at = r.pos;
    let n_kv = r.u64(&|| "metadata key/value count".into())?;
    // Both counts must fit in what is left, even before reading anything else.
    r.check_count(n_kv, MIN_KV_SIZE, n_kv_at, &|| "metadata key/value".into())?;
    r.check_count(n_tensors, MIN_TENSOR_INFO_SIZE, n_tensors_at, &|| "tensor info".into())?;
    let need = (n_kv * MIN_KV_SIZE).checked_add(n_tensors * MIN_TENSOR_INFO_SIZE);
    if need.is_none_or(|n| n > r.remaining()) {
        return Err(err(
            n_tensors_at,
            GgufErrorKind::Truncated {
                what: format!("{n_kv} metadata key/values and {n_tensors} tensor infos"),
                needed: need.unwrap_or(u64::MAX),
                available: r.remaining(),
            },
        ));
    }

    // Metadata.
    let mut metadata: Vec<(String, Value)> = Vec::with_capacity(prealloc(n_kv));
    let mut keys: HashMap<String, usize> = HashMap::with_capacity(prealloc(n_kv));
    let mut alignment = DEFAULT_ALIGNMENT;
    for i in 0..n_kv {
        let key_at = r.pos;
        let key = r.utf8(&|| format!("key of metadata entry {i}"))?.to_owned();
        let what = || format!("metadata {key:?}");
        let type_at = r.pos;
        let vt = r.value_type(&what)?;
        let value = r.value(vt, &what)?;
        match keys.entry(key.clone()) {
            Entry::Occupied(_) => return Err(err(key_at, GgufErrorKind::DuplicateKey(key))),
            Entry::Vacant(v) => {
                v.insert(metadata.len());
            }
        }
        if key == "general.alignment" {
            let a = match value {
                Value::U32(a) => u64::from(a),
                ref v => {
                    return Err(err(
                        type_at,
                        GgufErrorKind::BadAlignment(format!("type is {}, must be UINT32", v.type_description())),
                    ))
                }
            };
            if a == 0 || !a.is_power_of_two() || a > MAX_ALIGNMENT {
                return Err(err(
                    type_at + 4,
                    GgufErrorKind::BadAlignment(format!("{a} is not a power of two between 1 and {MAX_ALIGNMENT}")),
                ));
            }
            alignment = a;
        }
        metadata.push((key, value));
    }

    // Tensor infos.
    let mut tensors: Vec<TensorInfo> = Vec::with_capacity(prealloc(n_tensors));
    let mut names: HashMap<String, usize> = HashMap::with_capacity(prealloc(n_tensors));
    for i in 0..n_tensors {
        let info_offset = r.pos;
        let name = r.utf8(&|| format!("name of tensor {i}"))?.to_owned();
        let what = || format!("tensor {name:?}");
        let n_dims_at = r.pos;
        let n_dims = r.u32(&|| format!("number of dimensions of {}", what()))?;
        if n_dims > MAX_DIMS {
            return Err(err(n_dims_at, GgufErrorKind::TooManyDims { name, n_dims, max: MAX_DIMS }));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        let mut n_elements: u64 = 1;
        for d in 0..n_dims {
            let at = r.pos;
            let dim = r.u64(&|| format!("dimension {d} of {}", what()))?;
            let bad = |msg: String| err(at, GgufErrorKind::BadShape { name: name.clone(), msg });
            if dim > i64::MAX as u64 {
                return Err(bad(format!("dimension {d} is {dim}, more than 2^63-1")));
            }
            n_elements = n_elements
                .checked_mul(dim)
                .filter(|&n| n <= i64::MAX as u64)
                .ok_or_else(|| bad(format!("the product of the dimensions {dims:?} x {dim} overflows 2^63-1")))?;
            dims.push(dim);
        }
        let type_at = r.pos;
        let type_id = r.u32(&|| format!("type of {}", what()))?;
        let offset_at = r.pos;
        let offset = r.u64(&|| format!("data offset of {}", what()))?;
        let nbytes = match ggml_type(type_id) {
            None => None,
            Some(t) => {
                let ne0 = dims.first().copied().unwrap_or(1);
                if ne0 % t.block_size != 0 {
                    return Err(err(
                        type_at,
                        GgufErrorKind::BadShape {
                            name,
                            msg: format!(
                                "first dimension {ne0} is not a multiple of the {} block size {}",
                                t.name, t.block_size
                            ),
                        },
                    ));
                }
                let nb = (n_elements / t.block_size).checked_mul(t.type_size).ok_or_else(|| {
                    err(
                        type_at,
                        GgufErrorKind::BadShape {
                            name: name.clone(),
                            msg: format!("{n_elements} {} weights take more than 2^64 bytes", t.name),
                        },
                    )
                })?;
                Some(nb)
            }
        };
        if offset % alignment != 0 {
            return Err(err(offset_at, GgufErrorKind::Misaligned { name, offset, alignment }));
        }
        match names.entry(name.clone()) {
            Entry::Occupied(_) => return Err(err(info_offset, GgufErrorKind::DuplicateTensor(name))),
            Entry::Vacant(v) => {
                v.insert(tensors.len());
            }
        }
        tensors.push(TensorInfo {
            name,
            dims,
            type_id,
            offset,
            n_elements,
            nbytes,
            info_offset: info_offset as u64,
            data_start: 0,
        });
    }

    // Data section: starts at the next multiple of the alignment (it may be absent if no tensor
    // has any bytes).
    let header_end = r.pos as u64;
    let data_offset = header_end.div_ceil(alignment) * alignment; // header_end <= buf.len(): no overflow
    let file_len = buf.len() as u64;
    let data_len = file_len.saturating_sub(data_offset);
    for t in &mut tensors {
        let nbytes = t.nbytes.unwrap_or(0);
        // Checked in absolute terms, so that even an empty tensor cannot start past the end of the
        // file (the aligned data section may start beyond a file that ends early).
        let fits =
            t.offset.checked_add(nbytes).and_then(|e| e.checked_add(data_offset)).is_some_and(|end| end <= file_len);
        if !fits {
            return Err(Error::Gguf {
                offset: t.info_offset,
                kind: GgufErrorKind::OutOfBounds { name: t.name.clone(), start: t.offset, nbytes, data_len },
            });
        }
        t.data_start = data_offset + t.offset;
    }
    // No two tensors may share bytes.
    let mut order: Vec<usize> = (0..tensors.len()).filter(|&i| tensors[i].nbytes.is_some_and(|n| n > 0)).collect();
    order.sort_by_key(|&i| tensors[i].offset);
    for w in order.windows(2) {
        let (a, b) = (&tensors[w[0]], &tensors[w[1]]);
        let a_end = a.offset + a.nbytes.unwrap_or(0);
        if b.offset < a_end {
            return Err(Error::Gguf {
                offset: b.data_start,
                kind: GgufErrorKind::Overlap { name: b.name.clone(), other: a.name.clone(), other_end: a_end },
            });
        }
    }

    Ok(Gguf { version, alignment, metadata, tensors, data_offset, file_len, metadata_index: keys, tensor_index: names })
}
