//! An opcode-level pickle scanner (protocols 0–5) that never executes
//! anything. It walks the opcode stream, tracks just enough of the stack and
//! memo to resolve `STACK_GLOBAL`'s module and name strings, and collects
//! every import a loader would perform (`GLOBAL`, `STACK_GLOBAL`, `INST`, and
//! the extension-registry opcodes). Each import is checked against an
//! allowlist of what `torch.save` of a state dict emits (the same set
//! `torch.load(weights_only=True)` accepts by default); anything else, such
//! as `posix.system` or `builtins.eval`, is unsafe. A stream that is
//! truncated, uses an unknown opcode, underflows its stack or reads a memo
//! slot never written is malformed: it is refused, not skipped.
//!
//! Bounds: argument bytes are skipped, never buffered (only strings of up to
//! [`MAX_KEPT_STRING`] bytes are kept, for `STACK_GLOBAL`); text lines are at
//! most [`MAX_LINE`] bytes; the stack holds at most [`MAX_STACK`] entries and
//! the memo [`MAX_ITEMS`].

use std::collections::{BTreeSet, HashMap};
use std::io::{self, Read};

/// Longest string kept as a possible `STACK_GLOBAL` operand.
pub const MAX_KEPT_STRING: usize = 1024;
/// Longest protocol-0 text argument.
pub const MAX_LINE: usize = 1 << 20;
/// Most entries on the stack.
pub const MAX_STACK: usize = 1 << 20;
/// Most entries in the memo.
pub const MAX_ITEMS: usize = 1 << 22;

/// The legacy (pre-zip) `torch.save` file starts with this pickle: the
/// protocol-2 encoding of its magic number, 0x1950a86a20f9469cfc6c.
pub const TORCH_LEGACY_MAGIC: &[u8] = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.";

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

/// True when `import` (`module.name`) is something a PyTorch state dict needs.
pub fn is_allowed(import: &str) -> bool {
    if ALLOWED.contains(&import) {
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
}

impl Scan {
    /// The imports not on the allowlist.
    pub fn unsafe_imports(&self) -> Vec<String> {
        self.imports
            .iter()
            .filter(|i| !is_allowed(i))
            .cloned()
            .collect()
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
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "malformed pickle at byte {}: {}",
            self.offset, self.message
        )
    }
}

#[derive(Debug, Clone)]
enum Val {
    Mark,
    Str(String),
    /// An imported callable or class.
    Import,
    Other,
}

struct Scanner<'r> {
    r: &'r mut dyn Read,
    /// A byte read ahead and given back (the start of a following pickle).
    pending: Option<u8>,
    pos: u64,
    stack: Vec<Val>,
    memo: HashMap<u64, Val>,
    scan: Scan,
}

type Step<T> = Result<T, (String, bool)>;

fn bad<T>(msg: impl Into<String>) -> Step<T> {
    Err((msg.into(), false))
}

impl<'r> Scanner<'r> {
    fn new(r: &'r mut dyn Read) -> Self {
        Scanner {
            r,
            pending: None,
            pos: 0,
            stack: Vec::new(),
            memo: HashMap::new(),
            scan: Scan::default(),
        }
    }

    fn io(e: io::Error) -> (String, bool) {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            (
                "truncated: the stream ends before its STOP opcode".into(),
                true,
            )
        } else {
            (format!("read error: {e}"), false)
        }
    }

    fn byte(&mut self) -> Step<Option<u8>> {
        if let Some(b) = self.pending.take() {
            self.pos += 1;
            return Ok(Some(b));
        }
        let mut b = [0u8; 1];
        loop {
            match self.r.read(&mut b) {
                Ok(0) => return Ok(None),
                Ok(_) => {
                    self.pos += 1;
                    return Ok(Some(b[0]));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Self::io(e)),
            }
        }
    }

    fn exact<const N: usize>(&mut self) -> Step<[u8; N]> {
        let mut b = [0u8; N];
        self.r.read_exact(&mut b).map_err(Self::io)?;
        self.pos += N as u64;
        Ok(b)
    }

    /// Reads `n` argument bytes, keeping them only when short enough to matter.
    fn bytes(&mut self, n: u64) -> Step<Option<Vec<u8>>> {
        if n <= MAX_KEPT_STRING as u64 {
            let mut b = vec![0u8; n as usize];
            self.r.read_exact(&mut b).map_err(Self::io)?;
            self.pos += n;
            return Ok(Some(b));
        }
        let copied = io::copy(&mut (&mut *self.r).take(n), &mut io::sink()).map_err(Self::io)?;
        self.pos += copied;
        if copied < n {
            return Err(Self::io(io::ErrorKind::UnexpectedEof.into()));
        }
        Ok(None)
    }

    fn line(&mut self) -> Step<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            match self.byte()? {
                None => return Err(Self::io(io::ErrorKind::UnexpectedEof.into())),
                Some(b'\n') => return Ok(out),
                Some(b) => {
                    if out.len() >= MAX_LINE {
                        return bad(format!("text argument longer than {MAX_LINE} bytes"));
                    }
                    out.push(b);
                }
            }
        }
    }

    fn push(&mut self, v: Val) -> Step<()> {
        if self.stack.len() >= MAX_STACK {
            return bad(format!("stack deeper than {MAX_STACK} entries"));
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

    fn import(&mut self, module: &str, name: &str) {
        let module = match module {
            "__builtin__" => "builtins",
            "copy_reg" => "copyreg",
            m => m,
        };
        self.scan.imports.insert(format!("{module}.{name}"));
    }

    fn memo_put(&mut self, key: u64) -> Step<()> {
        let v = self.top("PUT")?.clone();
        if self.memo.len() >= MAX_ITEMS && !self.memo.contains_key(&key) {
            return bad(format!("memo larger than {MAX_ITEMS} entries"));
        }
        self.memo.insert(key, v);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Step<()> {
        let v = self
            .memo
            .get(&key)
            .cloned()
            .ok_or_else(|| (format!("memo slot {key} read before it was written"), false))?;
        self.push(v)
    }

    fn call(&mut self, callable: Val) {
        if matches!(callable, Val::Import) {
            self.scan.called = true;
        }
    }

    fn text_import(&mut self, op: &str) -> Step<()> {
        let module = self.line()?;
        let name = self.line()?;
        let (Ok(module), Ok(name)) = (String::from_utf8(module), String::from_utf8(name)) else {
            return bad(format!("{op} module or name is not UTF-8"));
        };
        let module = module.trim_end_matches('\r');
        let name = name.trim_end_matches('\r');
        if module.is_empty() || name.is_empty() {
            return bad(format!("{op} with an empty module or name"));
        }
        self.import(module, name);
        Ok(())
    }

    fn string_val(b: Option<Vec<u8>>) -> Val {
        match b.map(String::from_utf8) {
            Some(Ok(s)) => Val::Str(s),
            _ => Val::Other,
        }
    }

    fn len_u32(&mut self) -> Step<u64> {
        Ok(u64::from(u32::from_le_bytes(self.exact::<4>()?)))
    }

    fn len_i32(&mut self, op: &str) -> Step<u64> {
        let n = i32::from_le_bytes(self.exact::<4>()?);
        if n < 0 {
            return bad(format!("{op} with negative length {n}"));
        }
        Ok(n as u64)
    }

    /// Scans one pickle, up to and including its STOP opcode.
    fn one(&mut self) -> Step<()> {
        self.stack.clear();
        self.memo.clear();
        let mut first = true;
        loop {
            let op = match self.byte()? {
                Some(op) => op,
                None if first => return bad("empty: no pickle opcodes"),
                None => return Err(Self::io(io::ErrorKind::UnexpectedEof.into())),
            };
            first = false;
            match op {
                // PROTO
                0x80 => {
                    let [v] = self.exact::<1>()?;
                    if v > 5 {
                        return bad(format!("unsupported protocol {v}"));
                    }
                    self.scan.protocol = Some(self.scan.protocol.map_or(v, |p| p.max(v)));
                }
                // STOP
                b'.' => {
                    self.pop("STOP")?;
                    self.scan.pickles += 1;
                    return Ok(());
                }
                // FRAME
                0x95 => {
                    self.exact::<8>()?;
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
                b'F' | b'I' | b'L' => {
                    let l = self.line()?;
                    if !number_text(op, &l) {
                        return bad(format!(
                            "{} argument {:?} is not a number",
                            match op {
                                b'F' => "FLOAT",
                                b'I' => "INT",
                                _ => "LONG",
                            },
                            String::from_utf8_lossy(&l[..l.len().min(40)])
                        ));
                    }
                    self.push(Val::Other)?;
                }
                b'J' => {
                    self.exact::<4>()?;
                    self.push(Val::Other)?;
                }
                b'K' => {
                    self.exact::<1>()?;
                    self.push(Val::Other)?;
                }
                b'M' => {
                    self.exact::<2>()?;
                    self.push(Val::Other)?;
                }
                b'G' => {
                    self.exact::<8>()?;
                    self.push(Val::Other)?;
                }
                0x8a => {
                    let [n] = self.exact::<1>()?;
                    self.bytes(u64::from(n))?;
                    self.push(Val::Other)?;
                }
                0x8b => {
                    let n = self.len_i32("LONG4")?;
                    self.bytes(n)?;
                    self.push(Val::Other)?;
                }
                b'N' | 0x88 | 0x89 | b']' | b')' | b'}' | 0x8f => self.push(Val::Other)?,
                // Strings: kept when short, for STACK_GLOBAL.
                b'S' => {
                    let l = self.line()?;
                    let inner = match l.as_slice() {
                        [q, mid @ .., q2] if (q == q2) && (*q == b'\'' || *q == b'"') => mid,
                        _ => return bad("STRING argument is not quoted"),
                    };
                    let v = if inner.contains(&b'\\') || inner.len() > MAX_KEPT_STRING {
                        Val::Other
                    } else {
                        Self::string_val(Some(inner.to_vec()))
                    };
                    self.push(v)?;
                }
                b'V' => {
                    let l = self.line()?;
                    let v = if l.contains(&b'\\') || l.len() > MAX_KEPT_STRING {
                        Val::Other
                    } else {
                        Self::string_val(Some(l))
                    };
                    self.push(v)?;
                }
                b'T' => {
                    let n = self.len_i32("BINSTRING")?;
                    let b = self.bytes(n)?;
                    self.push(Self::string_val(b))?;
                }
                b'U' | 0x8c => {
                    let [n] = self.exact::<1>()?;
                    let b = self.bytes(u64::from(n))?;
                    self.push(Self::string_val(b))?;
                }
                b'X' => {
                    let n = self.len_u32()?;
                    let b = self.bytes(n)?;
                    self.push(Self::string_val(b))?;
                }
                0x8d => {
                    let n = u64::from_le_bytes(self.exact::<8>()?);
                    let b = self.bytes(n)?;
                    self.push(Self::string_val(b))?;
                }
                // Bytes.
                b'B' => {
                    let n = self.len_u32()?;
                    self.bytes(n)?;
                    self.push(Val::Other)?;
                }
                b'C' => {
                    let [n] = self.exact::<1>()?;
                    self.bytes(u64::from(n))?;
                    self.push(Val::Other)?;
                }
                0x8e | 0x96 => {
                    let n = u64::from_le_bytes(self.exact::<8>()?);
                    self.bytes(n)?;
                    self.push(Val::Other)?;
                }
                // NEXT_BUFFER pushes an out-of-band buffer; READONLY_BUFFER wraps one.
                0x97 => self.push(Val::Other)?,
                0x98 => {
                    self.pop("READONLY_BUFFER")?;
                    self.push(Val::Other)?;
                }
                // Persistent ids: resolved by the loader (torch: storages).
                b'P' => {
                    if !self.line()?.is_ascii() {
                        return bad("PERSID argument is not ASCII");
                    }
                    self.push(Val::Other)?;
                }
                b'Q' => {
                    self.pop("BINPERSID")?;
                    self.push(Val::Other)?;
                }
                // Containers.
                b't' | b'l' | b'd' | 0x91 => {
                    self.pop_mark("TUPLE/LIST/DICT")?;
                    self.push(Val::Other)?;
                }
                0x85..=0x87 => {
                    for _ in 0..(op - 0x84) {
                        self.pop("TUPLE1/2/3")?;
                    }
                    self.push(Val::Other)?;
                }
                b'a' => {
                    self.pop("APPEND")?;
                    self.top("APPEND")?;
                }
                b'e' | b'u' | 0x90 => {
                    self.pop_mark("APPENDS/SETITEMS/ADDITEMS")?;
                    self.top("APPENDS/SETITEMS/ADDITEMS")?;
                }
                b's' => {
                    self.pop("SETITEM")?;
                    self.pop("SETITEM")?;
                    self.top("SETITEM")?;
                }
                b'b' => {
                    self.pop("BUILD")?;
                    self.top("BUILD")?;
                }
                // Memo.
                b'p' => {
                    let l = self.line()?;
                    let k =
                        parse_key(&l).ok_or_else(|| ("PUT with a bad key".to_string(), false))?;
                    self.memo_put(k)?;
                }
                b'q' => {
                    let [k] = self.exact::<1>()?;
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
                    let l = self.line()?;
                    let k =
                        parse_key(&l).ok_or_else(|| ("GET with a bad key".to_string(), false))?;
                    self.memo_get(k)?;
                }
                b'h' => {
                    let [k] = self.exact::<1>()?;
                    self.memo_get(u64::from(k))?;
                }
                b'j' => {
                    let k = self.len_u32()?;
                    self.memo_get(k)?;
                }
                // Imports.
                b'c' => {
                    self.text_import("GLOBAL")?;
                    self.push(Val::Import)?;
                }
                0x93 => {
                    let name = self.pop("STACK_GLOBAL")?;
                    let module = self.pop("STACK_GLOBAL")?;
                    match (module, name) {
                        (Val::Str(m), Val::Str(n)) if !m.is_empty() && !n.is_empty() => {
                            self.import(&m, &n)
                        }
                        _ => {
                            // Not plain strings: what it imports cannot be known, so it is
                            // reported as an import no allowlist holds.
                            self.scan
                                .imports
                                .insert("<STACK_GLOBAL of computed strings>".into());
                        }
                    }
                    self.push(Val::Import)?;
                }
                b'i' => {
                    self.text_import("INST")?;
                    self.pop_mark("INST")?;
                    self.scan.called = true;
                    self.push(Val::Other)?;
                }
                0x82..=0x84 => {
                    let code = match op {
                        0x82 => u64::from(self.exact::<1>()?[0]),
                        0x83 => u64::from(u16::from_le_bytes(self.exact::<2>()?)),
                        _ => u64::from(u32::from_le_bytes(self.exact::<4>()?)),
                    };
                    self.scan
                        .imports
                        .insert(format!("<copyreg extension code {code}>"));
                    self.push(Val::Import)?;
                }
                // Calls.
                b'R' => {
                    self.pop("REDUCE")?;
                    let f = self.pop("REDUCE")?;
                    self.call(f);
                    self.push(Val::Other)?;
                }
                0x81 => {
                    self.pop("NEWOBJ")?;
                    let cls = self.pop("NEWOBJ")?;
                    self.call(cls);
                    self.push(Val::Other)?;
                }
                0x92 => {
                    self.pop("NEWOBJ_EX")?;
                    self.pop("NEWOBJ_EX")?;
                    let cls = self.pop("NEWOBJ_EX")?;
                    self.call(cls);
                    self.push(Val::Other)?;
                }
                b'o' => {
                    let mut items = self.pop_mark("OBJ")?;
                    if items.is_empty() {
                        return bad("OBJ without a class");
                    }
                    let cls = items.swap_remove(0);
                    self.call(cls);
                    self.push(Val::Other)?;
                }
                other => {
                    return bad(format!("unknown opcode 0x{other:02x}"));
                }
            }
        }
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

fn parse_key(l: &[u8]) -> Option<u64> {
    std::str::from_utf8(l).ok()?.trim().parse().ok()
}

/// Scans a pickle file: one pickle, or the five of a legacy `torch.save`
/// file (magic, protocol, system info, data, storage keys; the raw storage
/// bytes after them are not pickle). Further pickles that follow the first
/// (a stream of pickles) are scanned too when they begin with a `PROTO`
/// opcode; other trailing bytes are never read by a loader of the first
/// pickle and are left alone.
pub fn scan(r: &mut dyn Read) -> Result<Scan, Malformed> {
    let mut head = [0u8; 15];
    let n = read_full(r, &mut head).map_err(|e| Malformed {
        offset: 0,
        message: format!("read error: {e}"),
        partial: Scan::default(),
        eof: false,
    })?;
    let legacy = head[..n] == *TORCH_LEGACY_MAGIC;
    let mut chained = io::Cursor::new(head[..n].to_vec()).chain(r);
    let mut s = Scanner::new(&mut chained);
    let fail = |s: &Scanner, (message, eof): (String, bool)| Malformed {
        offset: s.pos,
        message,
        partial: s.scan.clone(),
        eof,
    };
    let count = if legacy { 5 } else { 1 };
    for _ in 0..count {
        s.one().map_err(|e| fail(&s, e))?;
    }
    if !legacy {
        // A stream of pickles: keep going while the next begins with PROTO.
        while let Ok(Some(0x80)) = s.byte() {
            s.pending = Some(0x80);
            s.pos -= 1;
            s.one().map_err(|e| fail(&s, e))?;
        }
    }
    Ok(s.scan)
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
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
    let mut s = Scanner::new(&mut r);
    let res = s.one();
    let imported = !s.scan.imports.is_empty();
    match res {
        Ok(()) if imported => Sniff::Pickle,
        _ if imported && s.scan.called => Sniff::Pickle,
        Err((_, true)) if !complete => Sniff::Undecided,
        _ => Sniff::NotPickle,
    }
}

/// Whether a whole file that [`sniff`] left undecided is a pickle a loader
/// would act on: it imports and calls, or completes with imports.
pub fn acts(result: &Result<Scan, Malformed>) -> bool {
    match result {
        Ok(s) => !s.imports.is_empty(),
        Err(m) => !m.partial.imports.is_empty() && m.partial.called,
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
        let p4 = b"\x80\x04\x95\x20\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94\x8c\x06system\x94\x93\x94\x8c\x02id\x94\x85\x94R\x94.";
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
        let p = b"\x80\x04K\x01K\x02\x93).";
        let s = scan_bytes(p).unwrap();
        assert_eq!(s.unsafe_imports(), ["<STACK_GLOBAL of computed strings>"]);
    }

    #[test]
    fn inst_obj_and_ext_are_imports() {
        let inst = b"(S'ls'\nisubprocess\ncall\n.";
        assert_eq!(
            scan_bytes(inst).unwrap().unsafe_imports(),
            ["subprocess.call"]
        );
        let ext = b"\x80\x02\x82\x07).";
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
            "numpy.core.multiarray._reconstruct",
        ] {
            assert!(!is_allowed(no), "{no}");
        }
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
