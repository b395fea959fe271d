//! GGUF metadata values: the 13 value types of the spec, and arrays of them (arrays may nest).
//!
//! Scalars and strings are read when the file is opened. An array is validated then, but its
//! elements stay as the file's bytes (one shared copy per top-level array) until they are asked
//! for: opening a file allocates nothing per element, however many tokens its vocabulary has or
//! however many (empty) arrays a hostile file nests.

use std::fmt;
use std::sync::Arc;

/// A GGUF metadata value type (`enum gguf_type` in ggml).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    /// The type with this id, or `None` for an id the spec does not define.
    pub const fn from_id(id: u32) -> Option<Self> {
        Some(match id {
            0 => ValueType::U8,
            1 => ValueType::I8,
            2 => ValueType::U16,
            3 => ValueType::I16,
            4 => ValueType::U32,
            5 => ValueType::I32,
            6 => ValueType::F32,
            7 => ValueType::Bool,
            8 => ValueType::String,
            9 => ValueType::Array,
            10 => ValueType::U64,
            11 => ValueType::I64,
            12 => ValueType::F64,
            _ => return None,
        })
    }

    /// The name gguf-py uses (`GGUFValueType.UINT32.name`).
    pub const fn name(self) -> &'static str {
        match self {
            ValueType::U8 => "UINT8",
            ValueType::I8 => "INT8",
            ValueType::U16 => "UINT16",
            ValueType::I16 => "INT16",
            ValueType::U32 => "UINT32",
            ValueType::I32 => "INT32",
            ValueType::F32 => "FLOAT32",
            ValueType::Bool => "BOOL",
            ValueType::String => "STRING",
            ValueType::Array => "ARRAY",
            ValueType::U64 => "UINT64",
            ValueType::I64 => "INT64",
            ValueType::F64 => "FLOAT64",
        }
    }

    /// Bytes of one value in the file, for the fixed-size types (`None` for strings and arrays).
    pub const fn fixed_size(self) -> Option<u64> {
        match self {
            ValueType::U8 | ValueType::I8 | ValueType::Bool => Some(1),
            ValueType::U16 | ValueType::I16 => Some(2),
            ValueType::U32 | ValueType::I32 | ValueType::F32 => Some(4),
            ValueType::U64 | ValueType::I64 | ValueType::F64 => Some(8),
            ValueType::String | ValueType::Array => None,
        }
    }

    /// The fewest bytes one value of this type can take in the file (a string is at least its
    /// 8-byte length, an array its 4-byte type and 8-byte length).
    pub const fn min_size(self) -> u64 {
        match self {
            ValueType::String => 8,
            ValueType::Array => 12,
            _ => match self.fixed_size() {
                Some(n) => n,
                None => 1,
            },
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One metadata value. Strings are kept as bytes (the spec says UTF-8, but a value that is not
/// stays readable); [`Value::as_str`] gives the text.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(Vec<u8>),
    Array(Array),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    /// The value's type.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// The text of a string value (`None` if not a string or not UTF-8).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => std::str::from_utf8(s).ok(),
            _ => None,
        }
    }

    /// The array, if this is an array value.
    pub fn as_array(&self) -> Option<&Array> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// An integer value of any integer type, widened (`None` for other types or negative values).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// A type description such as `UINT32` or `ARRAY[STRING]` (nested: `ARRAY[ARRAY[INT8]]`, as far
    /// as the first element shows).
    pub fn type_description(&self) -> String {
        match self {
            Value::Array(a) => a.type_description(),
            v => v.value_type().name().to_owned(),
        }
    }
}

/// An array value, validated when the file was opened (element type, count, every string length,
/// every bool, the nesting), with its elements kept as the file's little-endian bytes. Read them
/// with [`Array::values`] (all at once), [`Array::strings`] or [`Array::arrays`] (one at a time), or
/// [`Array::raw`] (the bytes of fixed-size elements). Cloning shares the bytes.
#[derive(Clone)]
pub struct Array {
    element_type: ValueType,
    len: usize,
    /// The bytes of the top-level array this one belongs to (shared by its nested arrays).
    bytes: Arc<[u8]>,
    /// Where this array's elements are in `bytes` (after its element type and count).
    start: usize,
    end: usize,
}

/// An array's elements, read: one vector per element type.
#[derive(Debug, Clone, PartialEq)]
pub enum ArrayValues {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    String(Vec<Vec<u8>>),
    Array(Vec<ArrayValues>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}

/// Little-endian fields of already validated bytes. A read past the end (impossible for bytes the
/// parser accepted) gives zeros rather than a panic; iterators stop at the array's end anyway.
fn le_u32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4).map_or(0, |s| u32::from_le_bytes(s.try_into().unwrap_or([0; 4])))
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8).map_or(0, |s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8])))
}

/// The end of the encoded array (element type, count, elements) starting at `at` in validated bytes.
fn array_end(b: &[u8], at: usize) -> usize {
    let et = ValueType::from_id(le_u32(b, at));
    let n = le_u64(b, at + 4);
    let mut pos = at + 12;
    match et {
        Some(ValueType::String) => {
            for _ in 0..n {
                pos = pos.saturating_add(8).saturating_add(le_u64(b, pos) as usize);
            }
        }
        Some(ValueType::Array) => {
            for _ in 0..n {
                pos = array_end(b, pos);
            }
        }
        Some(t) => pos = pos.saturating_add((n as usize).saturating_mul(t.fixed_size().unwrap_or(0) as usize)),
        None => {}
    }
    pos.min(b.len())
}

impl Array {
    /// The array encoded at the start of `bytes`, which the parser has validated (all of them
    /// belong to this array).
    pub(crate) fn validated(bytes: Arc<[u8]>) -> Array {
        let end = bytes.len();
        Array::at(bytes, 0, end)
    }

    /// The array encoded at `at` in validated `bytes`, ending at `end`.
    fn at(bytes: Arc<[u8]>, at: usize, end: usize) -> Array {
        let element_type = ValueType::from_id(le_u32(&bytes, at)).unwrap_or(ValueType::U8);
        let len = le_u64(&bytes, at + 4) as usize;
        Array { element_type, len, bytes, start: (at + 12).min(end), end }
    }

    /// The element type.
    pub fn element_type(&self) -> ValueType {
        self.element_type
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The elements' bytes as stored in the file (for fixed-size types: `len` little-endian values).
    pub fn raw(&self) -> &[u8] {
        &self.bytes[self.start..self.end]
    }

    /// The elements of an array of strings, one at a time (`None` for other element types).
    pub fn strings(&self) -> Option<impl Iterator<Item = &[u8]> + '_> {
        (self.element_type == ValueType::String).then(|| {
            let b = self.raw();
            let mut pos = 0usize;
            (0..self.len).map_while(move |_| {
                let n = le_u64(b, pos) as usize;
                let s = b.get(pos + 8..(pos + 8).checked_add(n)?)?;
                pos += 8 + n;
                Some(s)
            })
        })
    }

    /// The elements of an array of arrays, one at a time (`None` for other element types).
    pub fn arrays(&self) -> Option<impl Iterator<Item = Array> + '_> {
        (self.element_type == ValueType::Array).then(|| {
            let mut pos = self.start;
            (0..self.len).map_while(move |_| {
                if pos >= self.end {
                    return None;
                }
                let a = Array::at(Arc::clone(&self.bytes), pos, array_end(&self.bytes, pos));
                pos = a.end;
                Some(a)
            })
        })
    }

    /// All the elements, read (nested arrays too).
    pub fn values(&self) -> ArrayValues {
        fn fixed<T, const N: usize>(raw: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
            raw.chunks_exact(N).map(|c| f(c.try_into().unwrap_or([0; N]))).collect()
        }
        let raw = self.raw();
        match self.element_type {
            ValueType::U8 => ArrayValues::U8(raw.to_vec()),
            ValueType::I8 => ArrayValues::I8(fixed(raw, i8::from_le_bytes)),
            ValueType::U16 => ArrayValues::U16(fixed(raw, u16::from_le_bytes)),
            ValueType::I16 => ArrayValues::I16(fixed(raw, i16::from_le_bytes)),
            ValueType::U32 => ArrayValues::U32(fixed(raw, u32::from_le_bytes)),
            ValueType::I32 => ArrayValues::I32(fixed(raw, i32::from_le_bytes)),
            ValueType::F32 => ArrayValues::F32(fixed(raw, f32::from_le_bytes)),
            ValueType::U64 => ArrayValues::U64(fixed(raw, u64::from_le_bytes)),
            ValueType::I64 => ArrayValues::I64(fixed(raw, i64::from_le_bytes)),
            ValueType::F64 => ArrayValues::F64(fixed(raw, f64::from_le_bytes)),
            ValueType::Bool => ArrayValues::Bool(raw.iter().map(|&b| b != 0).collect()),
            ValueType::String => {
                ArrayValues::String(self.strings().into_iter().flatten().map(<[u8]>::to_vec).collect())
            }
            ValueType::Array => ArrayValues::Array(self.arrays().into_iter().flatten().map(|a| a.values()).collect()),
        }
    }

    /// `ARRAY[<element type>]`; nested arrays as far as their first element shows.
    pub fn type_description(&self) -> String {
        match self.arrays().and_then(|mut it| it.next()) {
            Some(inner) => format!("ARRAY[{}]", inner.type_description()),
            None => format!("ARRAY[{}]", self.element_type.name()),
        }
    }
}

impl ArrayValues {
    /// The element type.
    pub fn element_type(&self) -> ValueType {
        match self {
            ArrayValues::U8(_) => ValueType::U8,
            ArrayValues::I8(_) => ValueType::I8,
            ArrayValues::U16(_) => ValueType::U16,
            ArrayValues::I16(_) => ValueType::I16,
            ArrayValues::U32(_) => ValueType::U32,
            ArrayValues::I32(_) => ValueType::I32,
            ArrayValues::F32(_) => ValueType::F32,
            ArrayValues::Bool(_) => ValueType::Bool,
            ArrayValues::String(_) => ValueType::String,
            ArrayValues::Array(_) => ValueType::Array,
            ArrayValues::U64(_) => ValueType::U64,
            ArrayValues::I64(_) => ValueType::I64,
            ArrayValues::F64(_) => ValueType::F64,
        }
    }

    /// The GGUF encoding: element type (u32), count (u64), then the elements, little-endian.
    fn encode(&self, out: &mut Vec<u8>) {
        macro_rules! each {
            ($v:expr) => {{
                out.extend(($v.len() as u64).to_le_bytes());
                for x in $v {
                    out.extend(x.to_le_bytes());
                }
            }};
        }
        out.extend((self.element_type() as u32).to_le_bytes());
        match self {
            ArrayValues::U8(v) => each!(v),
            ArrayValues::I8(v) => each!(v),
            ArrayValues::U16(v) => each!(v),
            ArrayValues::I16(v) => each!(v),
            ArrayValues::U32(v) => each!(v),
            ArrayValues::I32(v) => each!(v),
            ArrayValues::F32(v) => each!(v),
            ArrayValues::U64(v) => each!(v),
            ArrayValues::I64(v) => each!(v),
            ArrayValues::F64(v) => each!(v),
            ArrayValues::Bool(v) => {
                out.extend((v.len() as u64).to_le_bytes());
                out.extend(v.iter().map(|&b| u8::from(b)));
            }
            ArrayValues::String(v) => {
                out.extend((v.len() as u64).to_le_bytes());
                for s in v {
                    out.extend((s.len() as u64).to_le_bytes());
                    out.extend(s);
                }
            }
            ArrayValues::Array(v) => {
                out.extend((v.len() as u64).to_le_bytes());
                for a in v {
                    a.encode(out);
                }
            }
        }
    }
}

/// An array made from values (to build metadata in code): encoded once, as a file would hold it.
impl From<ArrayValues> for Array {
    fn from(values: ArrayValues) -> Array {
        let mut bytes = Vec::new();
        values.encode(&mut bytes);
        Array::validated(bytes.into())
    }
}

impl PartialEq for Array {
    fn eq(&self, other: &Self) -> bool {
        (self.element_type, self.len) == (other.element_type, other.len) && self.raw() == other.raw()
    }
}

impl fmt::Debug for Array {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Array({}, {} elements, {} bytes)", self.type_description(), self.len, self.end - self.start)
    }
}
