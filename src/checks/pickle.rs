//! An opcode-level pickle scanner (protocols 0–5) that never executes
//! anything. It walks the opcode stream, tracks just enough of the stack and
//! memo to resolve `STACK_GLOBAL`'s module and name strings, and collects
//! every import a loader would perform (`GLOBAL`, `STACK_GLOBAL`, `INST`, and
//! the extension-registry opcodes). Each import is checked against an
//! allowlist: what `torch.save` of a state dict emits (the set
//! `torch.load(weights_only=True)` accepts by default) plus a short list of
//! pure data constructors ([`SAFE_GLOBALS`], each with its reason); anything
//! else, such as `posix.system` or `builtins.eval`, is unsafe.
//!
//! A file is scanned to its end, the way a loader that reads several
//! pickles from one file would see it:
//!
//! - every pickle in it, one after the other (a benign pickle first hides
//!   nothing); a legacy `torch.save` file is recognised by the *value* of its
//!   first pickle (the magic number, however it is encoded) and its five
//!   pickles are scanned, the raw storage bytes after them are not pickle;
//! - `FRAME`s are followed as CPython's file unpickler reads them: a frame
//!   that ends inside an opcode, a frame that starts before the previous one
//!   ended, or one that runs past `STOP` makes the file unscannable (the C
//!   unpickler drops the rest of such a frame, so a flat reader and
//!   `pickle.load(file)` would disagree about what follows);
//! - joblib's `NumpyArrayWrapper` arrays, whose bytes joblib reads straight
//!   from the file in the middle of the pickle, are skipped by their dtype
//!   and shape (an object array's nested pickle is scanned).
//!
//! What a failure means:
//!
//! - a parse that fails *before* any import or call took effect (random data
//!   that happens to start with `PROTO`, compressed images, GGML) is data:
//!   every loader raises on it before running anything ([`Malformed::acted`]
//!   is false);
//! - a parse that fails after an import or call, or a pickle that cannot be
//!   followed to its end (a scan limit, a split frame, an array whose dtype
//!   airlock cannot size), is refused ([`Malformed::unscannable`]).
//!
//! Bounds: argument bytes are streamed, never buffered (strings of up to
//! [`MAX_KEPT_STRING`] bytes are kept, for `STACK_GLOBAL`; module and name
//! lines up to [`MAX_NAME`]); the stack holds at most [`MAX_STACK`] entries
//! and the memo [`MAX_ITEMS`]; a pickle that needs more is unscannable.

use std::collections::{BTreeSet, HashMap};
use std::io::{self, Read};
use std::rc::Rc;

/// Longest string kept as a possible `STACK_GLOBAL` operand.
pub const MAX_KEPT_STRING: usize = 1024;
/// Longest module or name line of `GLOBAL`/`INST`: no importable module
/// has a longer name, so a loader fails on it before importing anything.
pub const MAX_NAME: usize = 64 << 10;
/// Most entries on the stack.
pub const MAX_STACK: usize = 1 << 20;
/// Most entries in the memo.
pub const MAX_ITEMS: usize = 1 << 22;
/// Most items of a tuple or dict whose values are tracked (shapes, dtype
/// arguments, joblib array records); larger ones are plain data.
const MAX_SMALL: usize = 64;
/// The legacy `torch.save` magic number, the first pickle's value.
const TORCH_MAGIC: i128 = 0x1950a86a20f9469cfc6c;

/// The legacy (pre-zip) `torch.save` file starts with this pickle: the
/// protocol-2 encoding of its magic number, 0x1950a86a20f9469cfc6c.
pub const TORCH_LEGACY_MAGIC: &[u8] = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.";

/// Pure data constructors a pickle may import besides what a state dict
/// needs, each with why it is safe: it builds a value from plain data and
/// neither imports, executes, opens files nor reaches attributes.
pub const SAFE_GLOBALS: &[(&str, &str)] = &[
    ("datetime.datetime", "a timestamp rebuilt from its packed bytes and tzinfo"),
    ("datetime.date", "a date rebuilt from its packed bytes"),
    ("datetime.time", "a time of day rebuilt from its packed bytes and tzinfo"),
    ("datetime.timedelta", "a duration from days, seconds, microseconds"),
    ("datetime.timezone", "a fixed UTC offset (a timedelta) and a name"),
    ("decimal.Decimal", "a decimal number parsed from its string"),
    ("fractions.Fraction", "a rational number parsed from its string"),
    ("uuid.UUID", "a UUID from its integer (state set by __setstate__ of an int)"),
    ("builtins.range", "a range from three integers"),
    ("numpy.core.multiarray._reconstruct", "numpy 1: an empty ndarray of a dtype, filled by BUILD from bytes"),
    ("numpy._core.multiarray._reconstruct", "numpy 2: the same under numpy 2's module name"),
    ("numpy.core.multiarray.scalar", "numpy 1: a numpy scalar from a dtype and its bytes"),
    ("numpy._core.multiarray.scalar", "numpy 2: the same under numpy 2's module name"),
    ("numpy.core.numeric._frombuffer", "numpy 1: an ndarray from a bytes buffer, dtype, shape and order"),
    ("numpy._core.numeric._frombuffer", "numpy 2: the same under numpy 2's module name"),
    ("numpy.dtype", "a dtype from its type code (\"f8\", \"O8\"); its state is flags and byte order"),
    ("numpy.ndarray", "the ndarray class, named as the subclass of an array"),
    ("joblib.numpy_pickle.NumpyArrayWrapper", "joblib's record of an array's dtype, shape and order; joblib reads the array bytes that follow (airlock skips or scans them)"),
    ("sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper", "the same, vendored in old scikit-learn"),
];

/// Imports `torch.save` of a state dict needs, beyond the generated families
/// checked in [`is_allowed`].
const ALLOWED: &[&str] = &[
    "collections.OrderedDict",
    "collections.Counter",
    "torch.nn.parameter.Parameter",
    "torch.serialization._get_layout",
    "torch.Size",
    "torch.Tensor",
    "torch.device",
    "_codecs.encode",
    "builtins.bytearray",
    "builtins.set",
    "builtins.frozenset",
    "builtins.complex",
    "builtins.slice",
    "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state",
    "torch._utils._rebuild_qtensor",
    "torch._utils._rebuild_tensor",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_tensor_v3",
    "torch._utils._rebuild_sparse_tensor",
    "torch._utils._rebuild_meta_tensor_no_storage",
    "torch._utils._rebuild_wrapper_subclass",
    "torch._utils._rebuild_device_tensor_from_numpy",
    "torch._utils._rebuild_device_tensor_from_cpu_tensor",
    "torch._tensor._rebuild_from_type_v2",
    "torch.storage.TypedStorage",
    "torch.storage.UntypedStorage",
    "torch.TypedStorage",
    "torch.UntypedStorage",
    "torch.per_tensor_affine",
    "torch.per_tensor_symmetric",
    "torch.per_channel_affine",
    "torch.per_channel_symmetric",
    "torch.per_channel_affine_float_qparams",
];

/// Element types with legacy `torch.<T>Storage` / `torch.<T>Tensor` classes.
const STORAGE_TYPES: &[&str] = &[
    "Double",
    "Float",
    "Half",
    "BFloat16",
    "Long",
    "Int",
    "Short",
    "Char",
    "Byte",
    "Bool",
    "ComplexDouble",
    "ComplexFloat",
    "QUInt8",
    "QInt8",
    "QInt32",
    "QUInt4x2",
    "QUInt2x4",
];

/// `torch.<dtype>` objects (pickled by name).
const DTYPES: &[&str] = &[
    "float32",
    "float",
    "float64",
    "double",
    "float16",
    "half",
    "bfloat16",
    "complex32",
    "chalf",
    "complex64",
    "cfloat",
    "complex128",
    "cdouble",
    "uint8",
    "int8",
    "int16",
    "short",
    "int32",
    "int",
    "int64",
    "long",
    "bool",
    "uint16",
    "uint32",
    "uint64",
    "uint1",
    "uint2",
    "uint3",
    "uint4",
    "uint5",
    "uint6",
    "uint7",
    "int1",
    "int2",
    "int3",
    "int4",
    "int5",
    "int6",
    "int7",
    "quint8",
    "qint8",
    "qint32",
    "quint4x2",
    "quint2x4",
    "float8_e4m3fn",
    "float8_e5m2",
    "float8_e4m3fnuz",
    "float8_e5m2fnuz",
    "float8_e8m0fnu",
    "float4_e2m1fn_x2",
    "bits8",
    "bits16",
    "bits1x8",
    "bits2x4",
    "bits4x2",
];

/// True when `import` (`module.name`) is on the built-in allowlist: what a
/// PyTorch state dict needs, or a pure data constructor of [`SAFE_GLOBALS`].
pub fn is_allowed(import: &str) -> bool {
    if ALLOWED.contains(&import) || SAFE_GLOBALS.iter().any(|(g, _)| *g == import) {
        return true;
    }
    let Some((module, name)) = import.rsplit_once('.') else {
        return false;
    };
    let typed = |suffix: &str| {
        name.strip_suffix(suffix)
            .is_some_and(|t| STORAGE_TYPES.contains(&t))
    };
    match module {
        "torch" => DTYPES.contains(&name) || typed("Storage") || typed("Tensor"),
        "torch.cuda" => typed("Storage") || typed("Tensor"),
        _ => false,
    }
}

/// True when `import` matches one of `extra` (a trust policy's additions):
/// `module.name` exactly, or `module.*` for every name in `module` and its
/// submodules. Placeholders such as `<copyreg extension code 7>` match nothing.
pub fn matches_extra(import: &str, extra: &[String]) -> bool {
    if import.starts_with('<') {
        return false;
    }
    extra.iter().any(|e| match e.strip_suffix(".*") {
        Some(prefix) => import
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.') && rest.len() > 1),
        None => e == import,
    })
}

/// Bytes per element of a `torch.<T>Storage`, for the legacy tar format.
pub fn storage_element_size(import: &str) -> Option<u64> {
    let name = import
        .strip_prefix("torch.cuda.")
        .or_else(|| import.strip_prefix("torch."))?;
    Some(match name.strip_suffix("Storage")? {
        "Double" | "Long" | "ComplexFloat" => 8,
        "Float" | "Int" | "QInt32" => 4,
        "Half" | "BFloat16" | "Short" => 2,
        "Char" | "Byte" | "Bool" | "QUInt8" | "QInt8" | "QUInt4x2" | "QUInt2x4" => 1,
        "ComplexDouble" => 16,
        _ => return None,
    })
}

/// What a scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// Every import, `module.name`, sorted and unique.
    pub imports: BTreeSet<String>,
    /// Pickles read (a legacy `torch.save` file holds five).
    pub pickles: usize,
    /// Highest protocol announced by a `PROTO` opcode.
    pub protocol: Option<u8>,
    /// An imported callable or class was invoked (REDUCE, NEWOBJ, OBJ, INST).
    pub called: bool,
    /// An import or call took effect (a loader would have run something).
    pub acted: bool,
    /// The first pickle's value is the legacy `torch.save` magic number.
    pub legacy_torch: bool,
    /// joblib arrays whose bytes were skipped (or whose nested pickle was scanned).
    pub arrays: u64,
    /// Where bytes that no loader unpickles begin: a last "pickle" that fails
    /// before any import or call (trailing data).
    pub trailing: Option<u64>,
}

impl Scan {
    /// The imports not on the built-in allowlist.
    pub fn unsafe_imports(&self) -> Vec<String> {
        self.imports
            .iter()
            .filter(|i| !is_allowed(i))
            .cloned()
            .collect()
    }

    fn absorb(&mut self, other: &Scan) {
        self.imports.extend(other.imports.iter().cloned());
        self.pickles += other.pickles;
        self.protocol = self.protocol.max(other.protocol);
        self.called |= other.called;
        self.acted |= other.acted;
        self.arrays += other.arrays;
    }
}

/// A stream that is not a well-formed pickle, with what was seen before the fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub offset: u64,
    pub message: String,
    pub partial: Scan,
    /// The stream ended (truncation) rather than holding a bad opcode.
    pub eof: bool,
    /// The failing pickle had already imported or called something.
    pub acted: bool,
    /// The pickle cannot be followed to its end (a scan limit, a split
    /// frame, an array airlock cannot size): refused whatever came before.
    pub unscannable: bool,
}

impl Malformed {
    /// Whether a loader could have run something before the failure, or
    /// airlock cannot tell: such a file is refused, never carried as data.
    pub fn is_threat(&self) -> bool {
        self.acted || self.unscannable
    }
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.unscannable {
            write!(
                f,
                "unscannable pickle at byte {}: {}",
                self.offset, self.message
            )
        } else {
            write!(
                f,
                "malformed pickle at byte {}: {}",
                self.offset, self.message
            )
        }
    }
}

/// A call's result: the class or function called and its first string argument.
#[derive(Debug)]
struct Made {
    class: Rc<str>,
    arg: Option<Rc<str>>,
}

#[derive(Debug, Clone)]
enum Val {
    Mark,
    /// A str short enough to keep.
    Str(Rc<str>),
    /// A str not kept (long, or with escapes).
    AnyStr,
    Int(i64),
    None,
    /// The legacy `torch.save` magic number.
    TorchMagic,
    Tuple(Rc<[Val]>),
    Dict(Rc<Vec<(Val, Val)>>),
    /// An imported callable or class.
    Import(Rc<str>),
    /// What an extension code (`EXT1/2/4`) names: CPython raises on it
    /// unless the loading program registered the code.
    Ext(u32),
    /// What a call returned (or a loader's persistent object): anything,
    /// a str or a callable included.
    Made(Rc<Made>),
    /// Plain data: not a str, not callable (numbers, bytes, containers).
    Data,
}

impl Val {
    /// A loader could call it (it came from an import or a call).
    fn callable(&self) -> bool {
        matches!(self, Val::Import(_) | Val::Made(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Not a pickle here: a loader raises.
    Bad,
    /// The stream ended.
    Eof,
    /// Cannot be followed to its end: refused.
    Unscannable,
}

type Step<T> = Result<T, (String, Fault)>;

fn bad<T>(msg: impl Into<String>) -> Step<T> {
    Err((msg.into(), Fault::Bad))
}

fn unscannable<T>(msg: impl Into<String>) -> Step<T> {
    Err((msg.into(), Fault::Unscannable))
}

fn eof<T>() -> Step<T> {
    Err((
        "truncated: the stream ends before its STOP opcode".into(),
        Fault::Eof,
    ))
}

/// A protocol-0 text argument.
struct Line {
    /// Its first bytes (up to what the caller keeps).
    kept: Vec<u8>,
    len: u64,
    last: Option<u8>,
    backslash: bool,
}

/// The bytes under the scanner, read through a buffer, with `FRAME` bounds.
struct Input<'r> {
    r: &'r mut dyn Read,
    buf: Box<[u8]>,
    at: usize,
    end: usize,
    /// Offset of the next byte.
    pos: u64,
    /// End of the current frame (`u64::MAX`: none).
    frame_end: u64,
    /// Offset of the opcode being read.
    op_start: u64,
}

const BUF: usize = 64 << 10;

impl<'r> Input<'r> {
    fn new(r: &'r mut dyn Read) -> Self {
        Self::with_buffer(r, 512)
    }

    fn with_buffer(r: &'r mut dyn Read, size: usize) -> Self {
        Input {
            r,
            buf: vec![0u8; size].into_boxed_slice(),
            at: 0,
            end: 0,
            pos: 0,
            frame_end: u64::MAX,
            op_start: 0,
        }
    }

    /// Refills the buffer; false at the end of the stream.
    fn fill(&mut self) -> Step<bool> {
        // Small files need a small buffer; long streams grow it to BUF.
        if self.end == self.buf.len() && self.buf.len() < BUF && self.buf.len() > 1 {
            self.buf = vec![0u8; (self.buf.len() * 4).min(BUF)].into_boxed_slice();
        }
        loop {
            match self.r.read(&mut self.buf) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.at = 0;
                    self.end = n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // The file cannot be read to its end (an I/O error, or a
                // compressed stream past its bound): never waved through.
                Err(e) => return Err((format!("cannot read on: {e}"), Fault::Unscannable)),
            }
        }
    }

    fn split_frame<T>(&mut self) -> Step<T> {
        let msg = format!(
            "the FRAME ending at byte {} splits the opcode at byte {}; CPython's file unpickler drops the rest of such a frame and reads on elsewhere, so what it runs cannot be told",
            self.frame_end, self.op_start
        );
        self.frame_fault(msg)
    }

    /// A frame read in a way CPython's file unpickler and a flat reader
    /// disagree on: unscannable, if the frame is all there. A loader reads
    /// a whole frame before its first opcode and fails on a short one, so a
    /// frame that runs past the end of the stream is a truncation.
    fn frame_fault<T>(&mut self, msg: String) -> Step<T> {
        let mut left = self.frame_end.saturating_sub(self.pos);
        self.frame_end = u64::MAX;
        while left > 0 {
            if self.at == self.end && !self.fill()? {
                return Err((
                    format!("truncated: a FRAME runs {left} bytes past the end of the stream"),
                    Fault::Eof,
                ));
            }
            let take = (self.end - self.at).min(usize::try_from(left).unwrap_or(usize::MAX));
            self.at += take;
            self.pos += take as u64;
            left -= take as u64;
        }
        unscannable(msg)
    }

    /// The next byte, `None` at the end of the stream.
    #[inline(always)]
    fn byte(&mut self) -> Step<Option<u8>> {
        if self.pos >= self.frame_end {
            if self.pos != self.op_start {
                return self.split_frame();
            }
            self.frame_end = u64::MAX;
        }
        if self.at == self.end && !self.fill()? {
            return Ok(None);
        }
        let b = self.buf[self.at];
        self.at += 1;
        self.pos += 1;
        Ok(Some(b))
    }

    fn need(&mut self) -> Step<u8> {
        match self.byte()? {
            Some(b) => Ok(b),
            None => eof(),
        }
    }

    #[inline]
    fn exact<const N: usize>(&mut self) -> Step<[u8; N]> {
        let mut b = [0u8; N];
        // Fast path: all in the buffer, inside any frame.
        if self.end - self.at >= N && self.pos + N as u64 <= self.frame_end {
            b.copy_from_slice(&self.buf[self.at..self.at + N]);
            self.at += N;
            self.pos += N as u64;
            return Ok(b);
        }
        for x in &mut b {
            *x = self.need()?;
        }
        Ok(b)
    }

    /// Whether the stream has ended (reads ahead, gives nothing back).
    fn at_eof(&mut self) -> Step<bool> {
        Ok(self.at == self.end && !self.fill()?)
    }

    /// Reads `n` argument bytes, keeping them only when at most `keep`.
    fn bytes(&mut self, n: u64, keep: usize) -> Step<Option<Vec<u8>>> {
        if self.frame_end != u64::MAX && self.pos.saturating_add(n) > self.frame_end {
            return self.split_frame();
        }
        let kept = n <= keep as u64;
        let mut out = Vec::new();
        let mut left = n;
        while left > 0 {
            if self.at == self.end && !self.fill()? {
                return eof();
            }
            let take = (self.end - self.at).min(usize::try_from(left).unwrap_or(usize::MAX));
            if kept {
                out.extend_from_slice(&self.buf[self.at..self.at + take]);
            }
            self.at += take;
            self.pos += take as u64;
            left -= take as u64;
        }
        Ok(kept.then_some(out))
    }

    /// Reads a newline-terminated argument, keeping its first `keep` bytes;
    /// `ok` vets every byte (a loader fails on the others).
    fn line(&mut self, keep: usize, ok: fn(u8) -> bool, what: &str) -> Step<Line> {
        let mut l = Line {
            kept: Vec::new(),
            len: 0,
            last: None,
            backslash: false,
        };
        loop {
            let b = self.need()?;
            if b == b'\n' {
                return Ok(l);
            }
            if !ok(b) {
                return bad(format!("{what} argument holds byte 0x{b:02x}"));
            }
            if l.kept.len() < keep {
                l.kept.push(b);
            }
            l.backslash |= b == b'\\';
            l.last = Some(b);
            l.len += 1;
        }
    }

    /// Raw bytes a loader reads from the file itself, outside the pickle
    /// (joblib's array data): only between frames.
    fn raw(&mut self, n: u64, what: &str) -> Step<()> {
        if self.frame_end != u64::MAX {
            if self.pos != self.frame_end {
                let msg = format!(
                    "{what} is read from the file while a FRAME (ending at byte {}) is still open",
                    self.frame_end
                );
                return self.frame_fault(msg);
            }
            self.frame_end = u64::MAX;
        }
        self.bytes(n, 0).map(|_| ())
    }
}

fn any_byte(_: u8) -> bool {
    true
}

fn number_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"+-._ \t\r".contains(&b)
}

fn ascii_byte(b: u8) -> bool {
    b.is_ascii()
}

struct Scanner<'i, 'r> {
    input: &'i mut Input<'r>,
    stack: Vec<Val>,
    memo: HashMap<u64, Val>,
    scan: Scan,
    /// The pickle being read has imported or called.
    acted_here: bool,
    /// joblib's unpickler reads `NumpyArrayWrapper` data inline (not in a
    /// nested pickle, which `pickle.load` reads).
    joblib: bool,
}

impl<'i, 'r> Scanner<'i, 'r> {
    fn new(input: &'i mut Input<'r>) -> Self {
        Scanner {
            input,
            stack: Vec::new(),
            memo: HashMap::new(),
            scan: Scan::default(),
            acted_here: false,
            joblib: true,
        }
    }

    fn fail(&self, (message, fault): (String, Fault)) -> Malformed {
        Malformed {
            offset: self.input.pos,
            message,
            partial: self.scan.clone(),
            eof: fault == Fault::Eof,
            acted: self.acted_here,
            unscannable: fault == Fault::Unscannable,
        }
    }

    fn act(&mut self) {
        self.acted_here = true;
        self.scan.acted = true;
    }

    fn push(&mut self, v: Val) -> Step<()> {
        if self.stack.len() >= MAX_STACK {
            return unscannable(format!(
                "stack deeper than {MAX_STACK} entries, airlock's scan limit"
            ));
        }
        self.stack.push(v);
        Ok(())
    }

    fn pop(&mut self, op: &str) -> Step<Val> {
        match self.stack.pop() {
            Some(Val::Mark) | None => bad(format!("{op} with too few values on the stack")),
            Some(v) => Ok(v),
        }
    }

    fn top(&self, op: &str) -> Step<&Val> {
        match self.stack.last() {
            Some(Val::Mark) | None => bad(format!("{op} on an empty stack")),
            Some(v) => Ok(v),
        }
    }

    /// Pops everything down to and including the topmost MARK.
    fn pop_mark(&mut self, op: &str) -> Step<Vec<Val>> {
        let Some(at) = self.stack.iter().rposition(|v| matches!(v, Val::Mark)) else {
            return bad(format!("{op} without a MARK"));
        };
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items)
    }

    fn import(&mut self, module: &str, name: &str) -> Val {
        let module = match module {
            "__builtin__" => "builtins",
            "copy_reg" => "copyreg",
            m => m,
        };
        let full = format!("{module}.{name}");
        let v = Val::Import(Rc::from(full.as_str()));
        self.scan.imports.insert(full);
        self.act();
        v
    }

    fn memo_put(&mut self, key: u64) -> Step<()> {
        let v = self.top("PUT")?.clone();
        if self.memo.len() >= MAX_ITEMS && !self.memo.contains_key(&key) {
            return unscannable(format!(
                "memo larger than {MAX_ITEMS} entries, airlock's scan limit"
            ));
        }
        self.memo.insert(key, v);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Step<()> {
        let v = self.memo.get(&key).cloned().ok_or_else(|| {
            (
                format!("memo slot {key} read before it was written"),
                Fault::Bad,
            )
        })?;
        self.push(v)
    }

    /// A call of `callable` with `args`: a loader raises unless it could be callable.
    fn call(&mut self, op: &str, callable: Val, args: Option<&Val>) -> Step<Val> {
        self.scan.called = true;
        match callable {
            // Runs only where the program registered the code: the pickle
            // is refused for the import if it completes, but a failure
            // after it is not one a default loader reaches.
            Val::Ext(code) => {
                self.scan
                    .imports
                    .insert(format!("<copyreg extension code {code}>"));
                return Ok(Val::Made(Rc::new(Made {
                    class: Rc::from("<extension>"),
                    arg: None,
                })));
            }
            ref c if !c.callable() => {
                return bad(format!("{op} of a value that cannot be called"));
            }
            _ => self.act(),
        }
        let class: Rc<str> = match &callable {
            Val::Import(n) => n.clone(),
            _ => Rc::from("<computed>"),
        };
        let arg = match args {
            Some(Val::Tuple(t)) => match t.first() {
                Some(Val::Str(s)) => Some(s.clone()),
                _ => None,
            },
            _ => None,
        };
        Ok(Val::Made(Rc::new(Made { class, arg })))
    }

    fn text_import(&mut self, op: &str) -> Step<Val> {
        let module = self.input.line(MAX_NAME, any_byte, op)?;
        let name = self.input.line(MAX_NAME, any_byte, op)?;
        if module.len > MAX_NAME as u64 || name.len > MAX_NAME as u64 {
            return bad(format!(
                "{op} module or name longer than {MAX_NAME} bytes: nothing importable has such a name"
            ));
        }
        let (Ok(module), Ok(name)) = (String::from_utf8(module.kept), String::from_utf8(name.kept))
        else {
            return bad(format!("{op} module or name is not UTF-8"));
        };
        let module = module.trim_end_matches('\r');
        let name = name.trim_end_matches('\r');
        if module.is_empty() || name.is_empty() {
            return bad(format!("{op} with an empty module or name"));
        }
        Ok(self.import(module, name))
    }

    fn string_val(b: Option<Vec<u8>>) -> Val {
        match b.map(String::from_utf8) {
            Some(Ok(s)) => Val::Str(Rc::from(s.as_str())),
            Some(Err(_)) => Val::Data,
            None => Val::AnyStr,
        }
    }

    fn len_u32(&mut self) -> Step<u64> {
        Ok(u64::from(u32::from_le_bytes(self.input.exact::<4>()?)))
    }

    fn len_i32(&mut self, op: &str) -> Step<u64> {
        let n = i32::from_le_bytes(self.input.exact::<4>()?);
        if n < 0 {
            return bad(format!("{op} with negative length {n}"));
        }
        Ok(n as u64)
    }

    fn small(items: Vec<Val>) -> Val {
        if items.len() <= MAX_SMALL {
            Val::Tuple(items.into())
        } else {
            Val::Data
        }
    }

    /// A protocol-0 INT/LONG argument's value.
    fn text_int(op: u8, l: &Line) -> Step<Val> {
        if l.len > l.kept.len() as u64 {
            // A long number: every byte was vetted as a digit or sign.
            return Ok(Val::Data);
        }
        if !number_text(op, &l.kept) {
            return bad(format!(
                "{} argument {:?} is not a number",
                if op == b'I' { "INT" } else { "LONG" },
                String::from_utf8_lossy(&l.kept[..l.kept.len().min(40)])
            ));
        }
        let t = l.kept.trim_ascii();
        let t = t.strip_suffix(b"L").unwrap_or(t);
        let v = std::str::from_utf8(t)
            .ok()
            .and_then(|s| s.parse::<i128>().ok());
        Ok(match v {
            Some(TORCH_MAGIC) => Val::TorchMagic,
            Some(v) => i64::try_from(v).map_or(Val::Data, Val::Int),
            None => Val::Data,
        })
    }

    fn long_bytes(b: &[u8]) -> Val {
        if b.len() == 10
            && i128::from_le_bytes({
                let mut w = [0u8; 16];
                w[..10].copy_from_slice(b);
                w
            }) == TORCH_MAGIC
        {
            return Val::TorchMagic;
        }
        if b.len() <= 8 && !b.is_empty() {
            let neg = b[b.len() - 1] & 0x80 != 0;
            let mut w = if neg { [0xffu8; 8] } else { [0u8; 8] };
            w[..b.len()].copy_from_slice(b);
            return Val::Int(i64::from_le_bytes(w));
        }
        if b.is_empty() {
            return Val::Int(0);
        }
        Val::Data
    }

    /// Scans one pickle, up to and including its STOP opcode; its value.
    fn one(&mut self) -> Step<Val> {
        self.stack.clear();
        self.memo.clear();
        self.acted_here = false;
        let mut first = true;
        loop {
            self.input.op_start = self.input.pos;
            let op = match self.input.byte()? {
                Some(op) => op,
                None if first => return bad("empty: no pickle opcodes"),
                None => return eof(),
            };
            first = false;
            self.op(op)?;
            if op == b'.' {
                let v = self.pop("STOP")?;
                if self.input.frame_end != u64::MAX {
                    if self.input.pos < self.input.frame_end {
                        let msg = format!(
                            "the FRAME ending at byte {} runs past STOP; a file unpickler would start the next pickle elsewhere",
                            self.input.frame_end
                        );
                        return self.input.frame_fault(msg);
                    }
                    self.input.frame_end = u64::MAX;
                }
                self.scan.pickles += 1;
                return Ok(v);
            }
        }
    }

    fn op(&mut self, op: u8) -> Step<()> {
        match op {
            // PROTO
            0x80 => {
                let [v] = self.input.exact::<1>()?;
                if v > 5 {
                    return bad(format!("unsupported protocol {v}"));
                }
                self.scan.protocol = Some(self.scan.protocol.map_or(v, |p| p.max(v)));
            }
            // STOP: handled by the caller.
            b'.' => {}
            // FRAME
            0x95 => {
                let n = u64::from_le_bytes(self.input.exact::<8>()?);
                if self.input.frame_end != u64::MAX {
                    let msg = format!(
                        "a FRAME starts at byte {} before the frame ending at byte {} is read",
                        self.input.op_start, self.input.frame_end
                    );
                    return self.input.frame_fault(msg);
                }
                self.input.frame_end = self.input.pos.saturating_add(n);
            }
            b'(' => self.push(Val::Mark)?,
            // POP: a value, or (CPython) the topmost MARK when nothing is above it.
            b'0' => {
                if self.stack.pop().is_none() {
                    return bad("POP on an empty stack");
                }
            }
            b'1' => {
                self.pop_mark("POP_MARK")?;
            }
            b'2' => {
                let v = self.top("DUP")?.clone();
                self.push(v)?;
            }
            // Numbers and constants, checked as Python would parse them.
            b'F' => {
                let l = self.input.line(64, number_byte, "FLOAT")?;
                if !number_text(op, &l.kept) && l.len <= 64 {
                    return bad(format!(
                        "FLOAT argument {:?} is not a number",
                        String::from_utf8_lossy(&l.kept[..l.kept.len().min(40)])
                    ));
                }
                self.push(Val::Data)?;
            }
            b'I' | b'L' => {
                let l = self.input.line(64, number_byte, "INT/LONG")?;
                let v = if op == b'I' && (l.kept == b"01" || l.kept == b"00") {
                    Val::Data
                } else {
                    Self::text_int(op, &l)?
                };
                self.push(v)?;
            }
            b'J' => {
                let v = i32::from_le_bytes(self.input.exact::<4>()?);
                self.push(Val::Int(i64::from(v)))?;
            }
            b'K' => {
                let [v] = self.input.exact::<1>()?;
                self.push(Val::Int(i64::from(v)))?;
            }
            b'M' => {
                let v = u16::from_le_bytes(self.input.exact::<2>()?);
                self.push(Val::Int(i64::from(v)))?;
            }
            b'G' => {
                self.input.exact::<8>()?;
                self.push(Val::Data)?;
            }
            0x8a => {
                let [n] = self.input.exact::<1>()?;
                let b = self.input.bytes(u64::from(n), 16)?;
                self.push(b.as_deref().map_or(Val::Data, Self::long_bytes))?;
            }
            0x8b => {
                let n = self.len_i32("LONG4")?;
                let b = self.input.bytes(n, 16)?;
                self.push(b.as_deref().map_or(Val::Data, Self::long_bytes))?;
            }
            b'N' => self.push(Val::None)?,
            0x88 | 0x89 | b']' | b'}' | 0x8f => {
                let v = if op == b'}' {
                    Val::Dict(Rc::new(Vec::new()))
                } else {
                    Val::Data
                };
                self.push(v)?
            }
            b')' => self.push(Val::Tuple(Rc::from(Vec::new())))?,
            // Strings: kept when short, for STACK_GLOBAL.
            b'S' => {
                let l = self.input.line(MAX_KEPT_STRING + 2, any_byte, "STRING")?;
                let quote = l.kept.first().copied();
                if l.len < 2 || quote != l.last || !matches!(quote, Some(b'\'') | Some(b'"')) {
                    return bad("STRING argument is not quoted");
                }
                let v = if l.backslash || l.len > l.kept.len() as u64 {
                    Val::AnyStr
                } else {
                    Self::string_val(Some(l.kept[1..l.kept.len() - 1].to_vec()))
                };
                self.push(v)?;
            }
            b'V' => {
                let l = self.input.line(MAX_KEPT_STRING, any_byte, "UNICODE")?;
                let v = if l.backslash || l.len > l.kept.len() as u64 {
                    Val::AnyStr
                } else {
                    match String::from_utf8(l.kept) {
                        Ok(s) => Val::Str(Rc::from(s.as_str())),
                        Err(_) => Val::AnyStr,
                    }
                };
                self.push(v)?;
            }
            b'T' => {
                let n = self.len_i32("BINSTRING")?;
                let b = self.input.bytes(n, MAX_KEPT_STRING)?;
                self.push(Self::string_val(b))?;
            }
            b'U' | 0x8c => {
                let [n] = self.input.exact::<1>()?;
                let b = self.input.bytes(u64::from(n), MAX_KEPT_STRING)?;
                self.push(Self::string_val(b))?;
            }
            b'X' => {
                let n = self.len_u32()?;
                let b = self.input.bytes(n, MAX_KEPT_STRING)?;
                self.push(Self::string_val(b))?;
            }
            0x8d => {
                let n = u64::from_le_bytes(self.input.exact::<8>()?);
                let b = self.input.bytes(n, MAX_KEPT_STRING)?;
                self.push(Self::string_val(b))?;
            }
            // Bytes.
            b'B' => {
                let n = self.len_u32()?;
                self.input.bytes(n, 0)?;
                self.push(Val::Data)?;
            }
            b'C' => {
                let [n] = self.input.exact::<1>()?;
                self.input.bytes(u64::from(n), 0)?;
                self.push(Val::Data)?;
            }
            0x8e | 0x96 => {
                let n = u64::from_le_bytes(self.input.exact::<8>()?);
                self.input.bytes(n, 0)?;
                self.push(Val::Data)?;
            }
            // NEXT_BUFFER pushes an out-of-band buffer; READONLY_BUFFER wraps one.
            0x97 => self.push(Val::Data)?,
            0x98 => {
                self.pop("READONLY_BUFFER")?;
                self.push(Val::Data)?;
            }
            // Persistent ids: resolved by the loader (torch: storages).
            b'P' => {
                self.input.line(0, ascii_byte, "PERSID")?;
                self.push(Val::Made(Rc::new(Made {
                    class: Rc::from("<persistent>"),
                    arg: None,
                })))?;
            }
            b'Q' => {
                self.pop("BINPERSID")?;
                self.push(Val::Made(Rc::new(Made {
                    class: Rc::from("<persistent>"),
                    arg: None,
                })))?;
            }
            // Containers.
            b't' => {
                let items = self.pop_mark("TUPLE")?;
                self.push(Self::small(items))?;
            }
            b'l' | 0x91 => {
                self.pop_mark("LIST/FROZENSET")?;
                self.push(Val::Data)?;
            }
            b'd' => {
                let items = self.pop_mark("DICT")?;
                if items.len() % 2 != 0 {
                    return bad("DICT with an odd number of items");
                }
                self.push(Self::dict(items))?;
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop("TUPLE1/2/3")?);
                }
                items.reverse();
                self.push(Val::Tuple(items.into()))?;
            }
            b'a' => {
                self.pop("APPEND")?;
                self.top("APPEND")?;
            }
            b'e' | 0x90 => {
                self.pop_mark("APPENDS/ADDITEMS")?;
                self.top("APPENDS/ADDITEMS")?;
            }
            b'u' => {
                let items = self.pop_mark("SETITEMS")?;
                if items.len() % 2 != 0 {
                    return bad("SETITEMS with an odd number of items");
                }
                self.set_items(items)?;
            }
            b's' => {
                let v = self.pop("SETITEM")?;
                let k = self.pop("SETITEM")?;
                self.set_items(vec![k, v])?;
            }
            b'b' => {
                let state = self.pop("BUILD")?;
                let target = self.top("BUILD")?.clone();
                if target.callable() {
                    self.act();
                }
                if let Val::Made(m) = &target {
                    if self.joblib && is_numpy_array_wrapper(&m.class) {
                        self.joblib_array(&state)?;
                    }
                }
            }
            // Memo.
            b'p' => {
                let l = self.input.line(32, number_byte, "PUT")?;
                let k =
                    parse_key(&l).ok_or_else(|| ("PUT with a bad key".to_string(), Fault::Bad))?;
                self.memo_put(k)?;
            }
            b'q' => {
                let [k] = self.input.exact::<1>()?;
                self.memo_put(u64::from(k))?;
            }
            b'r' => {
                let k = self.len_u32()?;
                self.memo_put(k)?;
            }
            0x94 => {
                let k = self.memo.len() as u64;
                self.memo_put(k)?;
            }
            b'g' => {
                let l = self.input.line(32, number_byte, "GET")?;
                let k =
                    parse_key(&l).ok_or_else(|| ("GET with a bad key".to_string(), Fault::Bad))?;
                self.memo_get(k)?;
            }
            b'h' => {
                let [k] = self.input.exact::<1>()?;
                self.memo_get(u64::from(k))?;
            }
            b'j' => {
                let k = self.len_u32()?;
                self.memo_get(k)?;
            }
            // Imports.
            b'c' => {
                let v = self.text_import("GLOBAL")?;
                self.push(v)?;
            }
            0x93 => {
                let name = self.pop("STACK_GLOBAL")?;
                let module = self.pop("STACK_GLOBAL")?;
                let v = match (&module, &name) {
                    (Val::Str(m), Val::Str(n)) if !m.is_empty() && !n.is_empty() => {
                        self.import(m, n)
                    }
                    (
                        Val::Str(_) | Val::AnyStr | Val::Made(_),
                        Val::Str(_) | Val::AnyStr | Val::Made(_),
                    ) => {
                        // Strings airlock did not keep, or values a call
                        // returned: what it imports cannot be known, so it
                        // is reported as an import no allowlist holds.
                        self.scan
                            .imports
                            .insert("<STACK_GLOBAL of computed strings>".into());
                        self.act();
                        Val::Import(Rc::from("<computed>"))
                    }
                    _ => return bad("STACK_GLOBAL of values that are not strings"),
                };
                self.push(v)?;
            }
            b'i' => {
                let cls = self.text_import("INST")?;
                let args = self.pop_mark("INST")?;
                let v = self.call("INST", cls, Some(&Self::small(args)))?;
                self.push(v)?;
            }
            0x82..=0x84 => {
                let code = match op {
                    0x82 => u32::from(self.input.exact::<1>()?[0]),
                    0x83 => u32::from(u16::from_le_bytes(self.input.exact::<2>()?)),
                    _ => u32::from_le_bytes(self.input.exact::<4>()?),
                };
                // Resolved through copyreg's extension registry, empty unless
                // the loading program filled it: CPython raises on it
                // otherwise. What it names is inert until called; a call
                // is reported as an import no allowlist holds.
                self.push(Val::Ext(code))?;
            }
            // Calls.
            b'R' => {
                let args = self.pop("REDUCE")?;
                let f = self.pop("REDUCE")?;
                let v = self.call("REDUCE", f, Some(&args))?;
                self.push(v)?;
            }
            0x81 => {
                let args = self.pop("NEWOBJ")?;
                let cls = self.pop("NEWOBJ")?;
                let v = self.call("NEWOBJ", cls, Some(&args))?;
                self.push(v)?;
            }
            0x92 => {
                self.pop("NEWOBJ_EX")?;
                let args = self.pop("NEWOBJ_EX")?;
                let cls = self.pop("NEWOBJ_EX")?;
                let v = self.call("NEWOBJ_EX", cls, Some(&args))?;
                self.push(v)?;
            }
            b'o' => {
                let mut items = self.pop_mark("OBJ")?;
                if items.is_empty() {
                    return bad("OBJ without a class");
                }
                let cls = items.remove(0);
                let v = self.call("OBJ", cls, Some(&Self::small(items)))?;
                self.push(v)?;
            }
            other => {
                return bad(format!("unknown opcode 0x{other:02x}"));
            }
        }
        Ok(())
    }

    fn dict(items: Vec<Val>) -> Val {
        if items.len() / 2 > MAX_SMALL {
            return Val::Data;
        }
        let mut it = items.into_iter();
        let mut d = Vec::new();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            d.push((k, v));
        }
        Val::Dict(Rc::new(d))
    }

    /// SETITEM(S) on the value below: tracked while a small dict.
    fn set_items(&mut self, items: Vec<Val>) -> Step<()> {
        let top = match self.stack.last_mut() {
            Some(Val::Mark) | None => return bad("SETITEM(S) on an empty stack"),
            Some(v) => v,
        };
        if let Val::Dict(d) = top {
            if d.len() + items.len() / 2 > MAX_SMALL {
                *top = Val::Data;
            } else {
                let d = Rc::make_mut(d);
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    d.push((k, v));
                }
            }
        }
        Ok(())
    }

    /// joblib's `NumpyArrayWrapper.read_array`: after BUILD, joblib reads
    /// the array from the file itself (an alignment padding byte count and
    /// padding, then `count * itemsize` bytes), or, for an object array,
    /// calls `pickle.load` on the file: a nested pickle, scanned as such.
    fn joblib_array(&mut self, state: &Val) -> Step<()> {
        let what = "a joblib NumpyArrayWrapper";
        let Val::Dict(d) = state else {
            return unscannable(format!("{what} whose state is not a small dict"));
        };
        let get = |k: &str| {
            d.iter()
                .rev()
                .find(|(key, _)| matches!(key, Val::Str(s) if &**s == k))
                .map(|(_, v)| v)
        };
        let count = match get("shape") {
            Some(Val::Tuple(t)) => t.iter().try_fold(1u64, |acc, x| match x {
                Val::Int(n) if *n >= 0 => acc.checked_mul(*n as u64),
                _ => None,
            }),
            _ => None,
        };
        let Some(count) = count else {
            return unscannable(format!("{what} whose shape is not a tuple of sizes"));
        };
        let code = match get("dtype") {
            Some(Val::Made(m)) if &*m.class == "numpy.dtype" => m.arg.clone(),
            _ => None,
        };
        let Some(itemsize) = code.as_deref().and_then(dtype_itemsize) else {
            return unscannable(format!(
                "{what} whose dtype ({}) airlock cannot size",
                code.as_deref().unwrap_or("not a numpy.dtype")
            ));
        };
        self.scan.arrays += 1;
        if itemsize == 0 {
            // Object dtype: `pickle.load(file)`, a pickle of its own.
            if self.input.frame_end != u64::MAX && self.input.pos != self.input.frame_end {
                return unscannable(format!("{what}'s nested pickle starts inside a FRAME"));
            }
            self.input.frame_end = u64::MAX;
            let stack = std::mem::take(&mut self.stack);
            let memo = std::mem::take(&mut self.memo);
            self.joblib = false;
            let res = self.one();
            self.joblib = true;
            self.stack = stack;
            self.memo = memo;
            // The outer pickle had acted (BUILD of the wrapper).
            self.acted_here = true;
            res.map(|_| ())
        } else {
            if !matches!(get("numpy_array_alignment_bytes"), None | Some(Val::None)) {
                self.input.raw(0, "joblib's array padding")?;
                let n = self.input.need()?;
                self.input.raw(u64::from(n), "joblib's array padding")?;
            }
            let bytes = count
                .checked_mul(itemsize)
                .ok_or_else(|| (format!("{what} larger than 2^64 bytes"), Fault::Unscannable))?;
            self.input.raw(bytes, "joblib's array data")
        }
    }
}

fn is_numpy_array_wrapper(class: &str) -> bool {
    class == "joblib.numpy_pickle.NumpyArrayWrapper"
        || class == "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper"
}

/// Bytes per element of a numpy dtype from its pickled type code
/// (`f8`, `i4`, `U10`, `V16`, `M8`); 0 for objects (`O8`); `None` if unknown.
pub fn dtype_itemsize(code: &str) -> Option<u64> {
    let code = code.trim_start_matches(['<', '>', '|', '=']);
    let kind = code.chars().next()?;
    let n: u64 = code[kind.len_utf8()..].parse().ok()?;
    match kind {
        'O' => Some(0),
        'U' => n.checked_mul(4),
        'b' | 'i' | 'u' | 'f' | 'c' | 'S' | 'V' | 'M' | 'm' | 'a' => Some(n),
        _ => None,
    }
}

/// Whether a protocol-0 INT, LONG or FLOAT argument is something Python's
/// `int(x, 0)` / `float(x)` could accept (a superset: letters of bases,
/// `inf` and `nan`, underscores).
fn number_text(op: u8, l: &[u8]) -> bool {
    let t = l.trim_ascii();
    let t = if op == b'L' {
        t.strip_suffix(b"L").unwrap_or(t)
    } else {
        t
    };
    let t = t
        .strip_prefix(b"-")
        .or_else(|| t.strip_prefix(b"+"))
        .unwrap_or(t);
    if t.is_empty() {
        return false;
    }
    match op {
        b'F' => t
            .iter()
            .all(|c| c.is_ascii_digit() || b".eE+-_infatyINFATY".contains(c)),
        _ => {
            t[0].is_ascii_digit()
                && t.iter()
                    .all(|c| c.is_ascii_hexdigit() || b"xXoObB_".contains(c))
        }
    }
}

fn parse_key(l: &Line) -> Option<u64> {
    if l.len > l.kept.len() as u64 {
        return None;
    }
    std::str::from_utf8(&l.kept).ok()?.trim().parse().ok()
}

/// Scans a pickle file to its end: every pickle in it (a file of several
/// pickles is read by loaders one after the other), or the five of a legacy
/// `torch.save` file (magic, protocol, system info, data, storage keys; the
/// raw storage bytes after them are not pickle). A last "pickle" that fails
/// before importing or calling anything is trailing data
/// ([`Scan::trailing`]); one that fails after, or cannot be followed, is
/// [`Malformed`].
pub fn scan(r: &mut dyn Read) -> Result<Scan, Malformed> {
    let mut input = Input::new(r);
    let mut s = Scanner::new(&mut input);
    let first = s.one().map_err(|e| s.fail(e))?;
    if matches!(first, Val::TorchMagic) {
        s.scan.legacy_torch = true;
        for _ in 0..4 {
            s.one().map_err(|e| s.fail(e))?;
        }
        return Ok(s.scan);
    }
    loop {
        let start = s.input.pos;
        if s.input.at_eof().map_err(|e| s.fail(e))? {
            return Ok(s.scan);
        }
        if let Err(e) = s.one() {
            let m = s.fail(e);
            if m.is_threat() {
                return Err(m);
            }
            s.scan.trailing = Some(start);
            return Ok(s.scan);
        }
    }
}

/// One pickle's value, as far as the legacy torch tar format needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OneValue {
    /// An integer value (a count).
    pub int: Option<i64>,
    /// The imports a small tuple value holds, in order (a storage's type).
    pub imports: Vec<String>,
}

/// Scans exactly one pickle from `r`, leaving `r` just past its `STOP` (it
/// reads byte by byte: for streams that mix pickles and raw data, as the
/// legacy torch tar's `storages` and `tensors` members do).
pub fn scan_one(r: &mut dyn Read) -> Result<(Scan, OneValue), Malformed> {
    let mut one = ByteAtATime(r);
    let mut input = Input::with_buffer(&mut one, 1);
    let mut s = Scanner::new(&mut input);
    s.joblib = false;
    let v = s.one().map_err(|e| s.fail(e))?;
    let value = match v {
        Val::Int(n) => OneValue {
            int: Some(n),
            imports: Vec::new(),
        },
        Val::Tuple(t) => OneValue {
            int: None,
            imports: t
                .iter()
                .filter_map(|x| match x {
                    Val::Import(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect(),
        },
        _ => OneValue::default(),
    };
    Ok((s.scan, value))
}

struct ByteAtATime<'a>(&'a mut dyn Read);

impl Read for ByteAtATime<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(1);
        self.0.read(&mut buf[..n])
    }
}

/// Merges scans of several pickles read apart (the members of one file).
pub fn merge(into: &mut Scan, other: &Scan) {
    into.absorb(other);
}

/// How a file's first bytes read as a pickle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniff {
    /// It starts with `PROTO`, or it imports and calls (or imports and
    /// completes): a loader would act on it.
    Pickle,
    /// Not a pickle, or one that breaks before it could import and call.
    NotPickle,
    /// Every byte seen so far is a valid pickle prefix, with no call yet:
    /// only the rest of the file can tell.
    Undecided,
}

/// Classifies `head`, a file's first bytes (`complete`: the whole file), by
/// scanning it as a pickle. A protocol 0/1 pickle has no magic number, so
/// this is how one is recognised by content: text and binary data break
/// within a few bytes, without an import that is then called.
pub fn sniff(head: &[u8], complete: bool) -> Sniff {
    if head.first() == Some(&0x80) && head.get(1).is_some_and(|v| *v <= 5) {
        return Sniff::Pickle;
    }
    let mut r = head;
    let mut input = Input::with_buffer(&mut r, 4096);
    let mut s = Scanner::new(&mut input);
    loop {
        let res = s.one();
        let imported = !s.scan.imports.is_empty();
        return match res {
            Ok(_) if imported => Sniff::Pickle,
            // A pickle without imports (a legacy torch magic number in
            // protocol 0): what follows it is read by loaders too.
            Ok(_) => match s.input.at_eof() {
                Ok(false) => continue,
                Ok(true) if !complete => Sniff::Undecided,
                _ => Sniff::NotPickle,
            },
            _ if imported && s.scan.called => Sniff::Pickle,
            Err((_, Fault::Eof)) if !complete => Sniff::Undecided,
            Err((_, Fault::Unscannable)) => Sniff::Pickle,
            _ => Sniff::NotPickle,
        };
    }
}

/// Whether a whole file that [`sniff`] left undecided is a pickle a loader
/// would act on: it imports and calls, or completes with imports, or it
/// cannot be scanned to its end (a scan limit: refused, not waved through).
pub fn acts(result: &Result<Scan, Malformed>) -> bool {
    match result {
        Ok(s) => !s.imports.is_empty(),
        Err(m) => m.unscannable || !m.partial.imports.is_empty() && m.partial.called,
    }
}

/// `torch.save` of a state dict holding one 2x2 float tensor `w`: its
/// `data.pkl` as Python's pickle writes it with torch's reducers and
/// persistent ids (protocol 2). A fixture for tests.
#[cfg(test)]
pub(crate) fn state_dict_pickle() -> Vec<u8> {
    b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01X\x01\x00\x00\x00wq\x02ctorch._utils\n_rebuild_tensor_v2\nq\x03((X\x07\x00\x00\x00storageq\x04ctorch\nFloatStorage\nq\x05X\x01\x00\x00\x000q\x06X\x03\x00\x00\x00cpuq\x07K\x04tq\x08QK\x00K\x02K\x02\x86q\tK\x02K\x01\x86q\n\x89h\x00)Rq\x0btq\x0cRq\rs}q\x0eX\t\x00\x00\x00_metadataq\x0fh\x00)Rq\x10X\x00\x00\x00\x00q\x11}q\x12X\x07\x00\x00\x00versionq\x13K\x01sssb.".to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scan_bytes(b: &[u8]) -> Result<Scan, Malformed> {
        scan(&mut &b[..])
    }

    use super::state_dict_pickle;

    #[test]
    fn state_dict_is_allowed() {
        let s = scan_bytes(&state_dict_pickle()).unwrap();
        assert_eq!(
            s.imports.iter().map(String::as_str).collect::<Vec<_>>(),
            [
                "collections.OrderedDict",
                "torch.FloatStorage",
                "torch._utils._rebuild_tensor_v2"
            ]
        );
        assert!(s.unsafe_imports().is_empty());
        assert_eq!(s.protocol, Some(2));
    }

    #[test]
    fn os_system_protocols_0_and_4() {
        // protocol 0: cos\nsystem\n(S'echo hi'\ntR.
        let p0 = b"cposix\nsystem\np0\n(S'echo hi'\np1\ntp2\nRp3\n.";
        let s = scan_bytes(p0).unwrap();
        assert_eq!(s.unsafe_imports(), ["posix.system"]);
        assert_eq!(sniff(p0, true), Sniff::Pickle);
        // protocol 4: module and name via STACK_GLOBAL, names memoized and re-read.
        let p4 = b"\x80\x04\x95\x1d\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94\x8c\x06system\x94\x93\x94\x8c\x02id\x94\x85\x94R\x94.";
        let s = scan_bytes(p4).unwrap();
        assert_eq!(s.unsafe_imports(), ["posix.system"]);
        let via_memo = b"\x80\x04\x8c\x08builtins\x94\x8c\x04eval\x94h\x00h\x01\x93\x8c\x011\x85R.";
        assert_eq!(
            scan_bytes(via_memo).unwrap().unsafe_imports(),
            ["builtins.eval"]
        );
    }

    #[test]
    fn computed_stack_global_is_unsafe() {
        // Strings with escapes are not kept: what they import is unknown.
        let p = b"\x80\x04Vo\\u0073\nVsystem\n\x93).";
        let s = scan_bytes(p).unwrap();
        assert_eq!(s.unsafe_imports(), ["<STACK_GLOBAL of computed strings>"]);
        // Numbers are not strings: a loader raises before importing.
        let e = scan_bytes(b"\x80\x04K\x01K\x02\x93).").unwrap_err();
        assert!(!e.is_threat(), "{e:?}");
    }

    #[test]
    fn inst_obj_and_ext_are_imports() {
        let inst = b"(S'ls'\nisubprocess\ncall\n.";
        assert_eq!(
            scan_bytes(inst).unwrap().unsafe_imports(),
            ["subprocess.call"]
        );
        let ext = b"\x80\x02\x82\x07)R.";
        assert_eq!(
            scan_bytes(ext).unwrap().unsafe_imports(),
            ["<copyreg extension code 7>"]
        );
        let py2 = b"c__builtin__\nset\n(]tR.";
        assert!(scan_bytes(py2).unwrap().unsafe_imports().is_empty());
    }

    #[test]
    fn malformed_streams_are_refused() {
        let good = state_dict_pickle();
        let cut = &good[..good.len() / 2];
        let e = scan_bytes(cut).unwrap_err();
        assert!(e.eof && e.message.contains("truncated"), "{e:?}");
        assert!(e.partial.imports.contains("collections.OrderedDict"));
        assert!(scan_bytes(b"\x80\x02\xff.")
            .unwrap_err()
            .message
            .contains("unknown opcode"));
        assert!(scan_bytes(b"\x80\x02.")
            .unwrap_err()
            .message
            .contains("too few"));
        assert!(scan_bytes(b"\x80\x02h\x05.")
            .unwrap_err()
            .message
            .contains("memo slot 5"));
        assert!(scan_bytes(b"").unwrap_err().message.contains("empty"));
        assert!(scan_bytes(b"\x80\x09N.")
            .unwrap_err()
            .message
            .contains("protocol 9"));
        assert!(scan_bytes(b"\x80\x02e.")
            .unwrap_err()
            .message
            .contains("MARK"));
    }

    #[test]
    fn big_arguments_are_skipped_not_kept() {
        let mut p = b"\x80\x04\x8e".to_vec();
        p.extend_from_slice(&(5_000_000u64).to_le_bytes());
        p.extend(std::iter::repeat_n(7u8, 5_000_000));
        p.push(b'.');
        assert_eq!(scan_bytes(&p).unwrap().pickles, 1);
        // A length past the end is a truncation.
        let mut q = b"\x80\x04\x8e".to_vec();
        q.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(scan_bytes(&q).unwrap_err().eof);
    }

    #[test]
    fn legacy_torch_files_scan_five_pickles_then_stop() {
        let mut f = TORCH_LEGACY_MAGIC.to_vec();
        f.extend_from_slice(b"\x80\x02M\xe9\x03.");
        f.extend_from_slice(b"\x80\x02}q\x00(X\x0d\x00\x00\x00little_endianq\x01\x88u.");
        f.extend_from_slice(&state_dict_pickle());
        f.extend_from_slice(b"\x80\x02]q\x00X\x01\x00\x00\x000q\x01a.");
        f.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0]);
        let s = scan_bytes(&f).unwrap();
        assert_eq!(s.pickles, 5);
        assert!(s.unsafe_imports().is_empty());
        // A malicious main pickle in a legacy file is found.
        let mut g = TORCH_LEGACY_MAGIC.to_vec();
        g.extend_from_slice(b"\x80\x02M\xe9\x03.");
        g.extend_from_slice(b"\x80\x02}q\x00.");
        g.extend_from_slice(b"cposix\nsystem\n(S'x'\ntR.");
        g.extend_from_slice(b"\x80\x02].");
        assert_eq!(scan_bytes(&g).unwrap().unsafe_imports(), ["posix.system"]);
    }

    #[test]
    fn following_pickles_are_scanned() {
        let mut f = state_dict_pickle();
        f.extend_from_slice(b"\x80\x02cbuiltins\nexec\nX\x01\x00\x00\x00x\x85R.");
        let s = scan_bytes(&f).unwrap();
        assert_eq!(s.pickles, 2);
        assert_eq!(s.unsafe_imports(), ["builtins.exec"]);
    }

    #[test]
    fn sniffing() {
        assert_eq!(
            sniff(b"certifi\nrequests\nurllib3\n", true),
            Sniff::NotPickle
        );
        assert_eq!(sniff(b"# README\nhello", true), Sniff::NotPickle);
        assert_eq!(sniff(b"\x89PNG\r\n", true), Sniff::NotPickle);
        assert_eq!(sniff(b"(lp0\nI1\na.", true), Sniff::NotPickle);
        assert_eq!(sniff(b"cos\nsystem\n(S'x'\ntR", true), Sniff::Pickle);
        assert_eq!(sniff(b"\x80\x02", true), Sniff::Pickle);
        // A pickle without imports, then one that imports and calls.
        let mut two = b"L119547037146038801333356L\n.".to_vec();
        two.extend_from_slice(b"cos\nsystem\n(S'x'\ntR.");
        assert_eq!(sniff(&two, true), Sniff::Pickle);
        assert_eq!(sniff(b"I1\n.", true), Sniff::NotPickle);
    }

    #[test]
    fn undecided_prefixes_and_text_arguments() {
        // Log lines starting with I/F/L are not numbers: not a pickle.
        assert_eq!(
            sniff(b"INFO: started\nINFO: done\n", false),
            Sniff::NotPickle
        );
        assert_eq!(sniff(b"Fetching x\n", false), Sniff::NotPickle);
        // Valid opcodes to the end of what was seen: only the rest can tell.
        assert_eq!(
            sniff(b"Processing a\nProcessing b\n", false),
            Sniff::Undecided
        );
        assert_eq!(
            sniff(b"Processing a\nProcessing b\n", true),
            Sniff::NotPickle
        );
        // Padding before the call: undecided from the head, a pickle as a whole.
        let mut padded = b"N0".repeat(40_000);
        padded.extend_from_slice(b"cposix\nsystem\n(S'id'\ntR.");
        assert_eq!(sniff(&padded[..65_536], false), Sniff::Undecided);
        let whole = scan(&mut &padded[..]);
        assert!(acts(&whole));
        assert_eq!(whole.unwrap().unsafe_imports(), ["posix.system"]);
        assert!(!acts(&scan(&mut &b"Processing a\n"[..])));
        assert_eq!(
            scan(&mut &b"I12\nL-5L\nF1.5e3\n\x86\x86."[..])
                .unwrap()
                .pickles,
            1
        );
    }

    #[test]
    fn allowlist() {
        for ok in [
            "torch.FloatStorage",
            "torch.cuda.HalfStorage",
            "torch.BFloat16Storage",
            "torch.bfloat16",
            "torch.LongTensor",
            "torch._utils._rebuild_parameter",
            "collections.OrderedDict",
        ] {
            assert!(is_allowed(ok), "{ok}");
        }
        for no in [
            "posix.system",
            "os.system",
            "builtins.eval",
            "builtins.getattr",
            "subprocess.Popen",
            "torch.load",
            "torch._utils.os.system",
            "torch.FooStorage",
            "torch.nn.Module",
            "numpy.load",
            "datetime.sys",
            "joblib.load",
        ] {
            assert!(!is_allowed(no), "{no}");
        }
    }

    const EVIL0: &[u8] = b"cposix\nsystem\n(S'id'\ntR.";

    #[test]
    fn scan_limits_refuse_as_unscannable() {
        // A long run of MARK or NONE before the payload: the stack limit.
        for pad in [b'(', b'N'] {
            let mut p = vec![pad; MAX_STACK + 1];
            p.extend_from_slice(EVIL0);
            let e = scan_bytes(&p).unwrap_err();
            assert!(e.unscannable && e.is_threat(), "{e:?}");
            assert!(e.message.contains("scan limit"), "{e}");
            assert!(acts(&Err(e)));
        }
        // A unicode string over 1 MiB is streamed, not a limit: the payload after it is seen.
        let mut p = b"V".to_vec();
        p.extend(std::iter::repeat_n(b'a', 2 << 20));
        p.extend_from_slice(b"\n0");
        p.extend_from_slice(EVIL0);
        assert_eq!(scan_bytes(&p).unwrap().unsafe_imports(), ["posix.system"]);
        let mut q = b"\x80\x04\x8d".to_vec();
        q.extend_from_slice(&(3u64 << 20).to_le_bytes());
        q.extend(std::iter::repeat_n(b'b', 3 << 20));
        q.push(b'0');
        q.extend_from_slice(EVIL0);
        assert_eq!(scan_bytes(&q).unwrap().unsafe_imports(), ["posix.system"]);
    }

    fn legacy_rest(evil: bool) -> Vec<u8> {
        let mut f = b"\x80\x02M\xe9\x03.".to_vec();
        f.extend_from_slice(b"\x80\x02}q\x00(X\x0d\x00\x00\x00little_endianq\x01\x88u.");
        if evil {
            f.extend_from_slice(EVIL0);
        } else {
            f.extend_from_slice(&state_dict_pickle());
        }
        f.extend_from_slice(b"\x80\x02]q\x00X\x01\x00\x00\x000q\x01a.");
        // Raw storage bytes, which may look like anything.
        f.extend_from_slice(b"\x04\x00\x00\x00\x00\x00\x00\x00cposix\nsystem\n\xff\xfe");
        f
    }

    #[test]
    fn legacy_torch_magic_is_recognised_however_it_is_encoded() {
        let magics: [&[u8]; 4] = [
            TORCH_LEGACY_MAGIC,
            b"L119547037146038801333356L\n.",
            b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19q\x00\x94h\x00.",
            b"I119547037146038801333356\n.",
        ];
        for m in magics {
            let mut f = m.to_vec();
            f.extend_from_slice(&legacy_rest(false));
            let s = scan_bytes(&f).unwrap();
            assert!(s.legacy_torch, "{m:?}");
            assert_eq!(s.pickles, 5);
            assert!(s.unsafe_imports().is_empty(), "{m:?}: {s:?}");
            let mut g = m.to_vec();
            g.extend_from_slice(&legacy_rest(true));
            assert_eq!(scan_bytes(&g).unwrap().unsafe_imports(), ["posix.system"]);
        }
    }

    #[test]
    fn concatenated_pickles_are_scanned_to_the_end() {
        // Benign first, then protocol 0 (no PROTO), then protocol 4.
        for second in [
            EVIL0.to_vec(),
            b"\x80\x04\x8c\x05posix\x8c\x06system\x93)R.".to_vec(),
        ] {
            let mut f = state_dict_pickle();
            f.extend_from_slice(b"\x80\x02K\x01.");
            f.extend_from_slice(&second);
            let s = scan_bytes(&f).unwrap();
            assert_eq!(s.unsafe_imports(), ["posix.system"]);
            assert_eq!(s.pickles, 3);
        }
        // An unsafe import followed by garbage stays refused.
        let mut g = state_dict_pickle();
        g.extend_from_slice(b"cposix\nsystem\n\xff\xff");
        let e = scan_bytes(&g).unwrap_err();
        assert!(e.is_threat() && e.partial.imports.contains("posix.system"));
        // Trailing data that fails before importing is data.
        let mut h = state_dict_pickle();
        h.extend_from_slice(b"\x00\x01\x02\x03");
        let s = scan_bytes(&h).unwrap();
        assert_eq!(s.trailing, Some(state_dict_pickle().len() as u64));
    }

    fn framed(len: u64, body: &[u8]) -> Vec<u8> {
        let mut p = b"\x80\x04\x95".to_vec();
        p.extend_from_slice(&len.to_le_bytes());
        p.extend_from_slice(body);
        p
    }

    #[test]
    fn frames_that_split_an_opcode_are_unscannable() {
        // A flat reader sees one bytes string; CPython's file unpickler drops
        // the rest of the 2-byte frame and runs the GLOBAL/REDUCE inside it.
        let mut body = b"\x8e".to_vec();
        let inner = b"cposix\nsystem\n(S'id'\ntR.";
        body.extend_from_slice(&(inner.len() as u64).to_le_bytes());
        body.extend_from_slice(inner);
        body.push(b'.');
        let e = scan_bytes(&framed(2, &body)).unwrap_err();
        assert!(
            e.unscannable && e.message.contains("splits the opcode"),
            "{e}"
        );
        // A frame whose end is an opcode boundary is fine.
        let ok = framed(3, b"K\x01.");
        assert_eq!(scan_bytes(&ok).unwrap().pickles, 1);
        let two = {
            let mut p = framed(2, b"K\x01");
            p.push(0x95);
            p.extend_from_slice(&1u64.to_le_bytes());
            p.push(b'.');
            p
        };
        assert_eq!(scan_bytes(&two).unwrap().pickles, 1);
        // A frame running past STOP, or a frame inside a frame.
        assert!(
            scan_bytes(&framed(9, b"K\x01.K\x02.\x00\x00\x00"))
                .unwrap_err()
                .unscannable
        );
        let nested = framed(12, b"\x95\x01\x00\x00\x00\x00\x00\x00\x00K\x01.");
        assert!(scan_bytes(&nested).unwrap_err().unscannable);
        // A line split by a frame end.
        let line = framed(2, b"Vab\n.");
        assert!(scan_bytes(&line).unwrap_err().unscannable);
        // A frame longer than the file: a loader fails reading it.
        let long = framed(1000, b"K\x01.");
        let e = scan_bytes(&long).unwrap_err();
        assert!(!e.is_threat(), "{e:?}");
    }

    /// xorshift64*: a fast deterministic generator for the random-data test.
    fn rng(state: &mut u64) -> u64 {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    #[test]
    fn random_data_after_proto_is_data_not_a_threat() {
        // A million buffers starting with every PROTO byte: a loader raises
        // on each before importing or calling anything.
        let mut st = 0x9e37_79b9_7f4a_7c15u64;
        let mut buf = Vec::with_capacity(300);
        let mut refused = Vec::new();
        for i in 0..1_000_000u32 {
            buf.clear();
            buf.push(0x80);
            buf.push((i % 6) as u8);
            let len = 8 + (rng(&mut st) % 72) as usize;
            while buf.len() < len {
                buf.extend_from_slice(&rng(&mut st).to_le_bytes());
            }
            buf.truncate(len);
            match scan_bytes(&buf) {
                Err(e) if e.is_threat() => refused.push((buf.clone(), e)),
                Ok(s) if !s.imports.is_empty() => refused.push((
                    buf.clone(),
                    Malformed {
                        offset: 0,
                        message: format!("{:?}", s.imports),
                        partial: s,
                        eof: false,
                        acted: true,
                        unscannable: false,
                    },
                )),
                _ => {}
            }
        }
        assert!(
            refused.is_empty(),
            "{} refused, first: {:?}",
            refused.len(),
            refused.first()
        );
        // An unsafe import followed by garbage is refused, under every PROTO.
        for v in 0..=5u8 {
            let mut p = vec![0x80, v];
            p.extend_from_slice(b"cposix\nsystem\n");
            p.extend_from_slice(&[0xff, 0x13, 0x37]);
            let e = scan_bytes(&p).unwrap_err();
            assert!(e.is_threat() && !e.unscannable, "{e:?}");
        }
    }

    #[test]
    fn safe_globals_each_have_a_reason_and_are_allowed() {
        for (g, why) in SAFE_GLOBALS {
            assert!(is_allowed(g) && why.len() > 10, "{g}");
        }
        for g in [
            "datetime.datetime",
            "decimal.Decimal",
            "numpy.core.multiarray._reconstruct",
            "numpy._core.multiarray._reconstruct",
            "numpy.dtype",
            "numpy.ndarray",
            "joblib.numpy_pickle.NumpyArrayWrapper",
        ] {
            assert!(is_allowed(g), "{g}");
        }
        let extra = vec![
            "sklearn.linear_model.*".to_string(),
            "mypkg.Model".to_string(),
        ];
        assert!(matches_extra(
            "sklearn.linear_model._base.LinearRegression",
            &extra
        ));
        assert!(matches_extra("mypkg.Model", &extra));
        assert!(!matches_extra("mypkg.Model2", &extra));
        assert!(!matches_extra("sklearn.linear_modelx.A", &extra));
        assert!(!matches_extra("sklearn.linear_model", &extra));
        assert!(!matches_extra(
            "<copyreg extension code 7>",
            &["<copyreg.*".to_string()]
        ));
    }

    /// joblib's layout: a NumpyArrayWrapper built with its state, then the
    /// padding byte count, padding and array bytes, then the pickle goes on.
    fn joblib_like(dtype: &str, shape: &[u8], data: &[u8], tail: &[u8]) -> Vec<u8> {
        let mut p = b"\x80\x04".to_vec();
        p.extend_from_slice(b"cjoblib.numpy_pickle\nNumpyArrayWrapper\n)\x81}(");
        p.extend_from_slice(b"\x8c\x05shape");
        for d in shape {
            p.push(b'K');
            p.push(*d);
        }
        p.push(0x84 + shape.len() as u8);
        p.extend_from_slice(b"\x8c\x05dtypecnumpy\ndtype\n\x8c");
        p.push(dtype.len() as u8);
        p.extend_from_slice(dtype.as_bytes());
        p.extend_from_slice(b"\x89\x88\x87R");
        p.extend_from_slice(b"\x8c\x1bnumpy_array_alignment_bytesK\x10ub");
        if dtype != "O8" {
            p.extend_from_slice(&[3, 0xff, 0xff, 0xff]);
        }
        p.extend_from_slice(data);
        p.extend_from_slice(tail);
        p
    }

    #[test]
    fn joblib_inline_arrays_are_skipped_and_object_arrays_scanned() {
        // 2x3 float64: 48 bytes of data that would read as opcodes.
        let data: Vec<u8> = (0..48u8).map(|i| b"cR\x93b"[i as usize % 4]).collect();
        let ok = joblib_like("f8", &[2, 3], &data, b".");
        let s = scan_bytes(&ok).unwrap();
        assert_eq!(s.arrays, 1);
        assert!(s.unsafe_imports().is_empty(), "{s:?}");
        // An object array: its data is a pickle of its own.
        let obj = joblib_like("O8", &[1], EVIL0, b".");
        assert_eq!(scan_bytes(&obj).unwrap().unsafe_imports(), ["posix.system"]);
        // An evil pickle after the array data.
        let after = joblib_like("i4", &[2], &[0; 8], b"0cposix\nsystem\n(S'x'\ntR.");
        assert_eq!(
            scan_bytes(&after).unwrap().unsafe_imports(),
            ["posix.system"]
        );
        // A dtype airlock cannot size is unscannable.
        let odd = joblib_like("?x", &[2], &[0; 8], b".");
        assert!(scan_bytes(&odd).unwrap_err().unscannable);
        assert_eq!(dtype_itemsize("U10"), Some(40));
        assert_eq!(dtype_itemsize("<f2"), Some(2));
        assert_eq!(dtype_itemsize("O8"), Some(0));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = scan_bytes(&bytes);
            let _ = sniff(&bytes, false);
        }

        #[test]
        fn mutated_state_dicts_never_panic(at in 0usize..400, byte in any::<u8>()) {
            let mut p = state_dict_pickle();
            let i = at % p.len();
            p[i] = byte;
            let _ = scan_bytes(&p);
        }
    }
}
