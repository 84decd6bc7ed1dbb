//! Reading the YAML airlock accepts (build manifests, trust policies).
//!
//! The text is bounded before the parser sees it: at most [`MAX_BYTES`], and
//! nested at most [`MAX_DEPTH`] levels, measured by a linear pre-scan over
//! block indentation, `- ` and `? ` indicators and flow brackets. The YAML
//! parser's cost grows quadratically with nesting (100k levels took minutes),
//! and no airlock document needs more than a handful of levels.
//!
//! Parse errors are reported as `FILE:LINE:COLUMN: problem`, with a hint when
//! the cause is a tab or a misaligned line.

use std::io::Read;
use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Largest manifest or trust policy read (4 MiB: tens of thousands of entries).
pub const MAX_BYTES: u64 = 4 << 20;
/// Deepest nesting accepted. airlock's own formats need about six levels.
pub const MAX_DEPTH: usize = 64;

/// Reads `path` (bounded), checks its nesting, and deserializes it.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T> {
    // Checked before opening: a FIFO would block the open or the read.
    let md = std::fs::metadata(path)
        .map_err(|e| Error::cannot_open(path, "manifest or trust policy", &e))?;
    if !md.is_file() {
        return Err(Error::input(
            path,
            "not a regular file; give the manifest or trust policy file itself",
        ));
    }
    let file = fs_err::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(Error::input(
            path,
            format!(
                "larger than {} MiB; a manifest or trust policy is a short YAML document (is this the right file?)",
                MAX_BYTES >> 20
            ),
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|e| Error::input(path, format!("not UTF-8 text ({e})")))?;
    parse(path, &text)
}

/// Checks `text`'s nesting, then deserializes it; errors name `path`.
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    if let Some(line) = too_deep(text, MAX_DEPTH) {
        return Err(Error::Yaml {
            path: path.to_path_buf(),
            line,
            column: 1,
            message: format!(
                "nested more than {MAX_DEPTH} levels deep; airlock manifests and trust policies need only a few (refused before parsing)"
            ),
        });
    }
    serde_yaml::from_str(text).map_err(|e| yaml_error(path, text, &e))
}

fn yaml_error(path: &Path, text: &str, e: &serde_yaml::Error) -> Error {
    let mut message = e.to_string();
    let Some(loc) = e.location() else {
        return Error::input(path, message);
    };
    let (line, column) = (loc.line(), loc.column());
    // The location leads the message; drop the parser's own copy of it.
    let at = format!(" at line {line} column {column}");
    if let Some(i) = message.find(&at) {
        message.replace_range(i..i + at.len(), "");
    }
    let lines: Vec<&str> = text.lines().collect();
    let around = line.saturating_sub(2)..=line;
    let tab = around.clone().find(|&n| {
        lines
            .get(n.wrapping_sub(1))
            .is_some_and(|l| l.trim_end().contains('\t'))
    });
    if let Some(n) = tab {
        message.push_str(&format!(
            "; hint: line {n} contains a tab, and YAML indents with spaces only: replace the tab with spaces"
        ));
    } else if [
        "mapping values are not allowed",
        "did not find expected key",
        "did not find expected '-' indicator",
        "block sequence entries are not allowed",
        "could not find expected ':'",
    ]
    .iter()
    .any(|p| message.contains(p))
    {
        message.push_str(&format!(
            "; hint: check the indentation of line {line} and the line before it (entries of one list or mapping start in the same column; a `key: value` needs a space after the colon)"
        ));
    }
    Error::Yaml {
        path: path.to_path_buf(),
        line,
        column,
        message,
    }
}

/// The first line (1-based) at which `text` nests deeper than `max`, or
/// `None`. Linear in the text; errs on the side of counting a level too many
/// (a misaligned line or a multi-line scalar), never too few.
pub fn too_deep(text: &str, max: usize) -> Option<usize> {
    // Block levels: the indentation column each open level started at.
    let mut block: Vec<usize> = Vec::new();
    // Flow depth (`[` and `{` open), carried across lines.
    let mut flow = 0usize;
    // Inside a quoted scalar that continues on the next line.
    let mut quote: Option<u8> = None;
    // Lines more indented than this belong to a block scalar (`|`, `>`).
    let mut scalar_parent: Option<usize> = None;
    for (n, line) in text.lines().enumerate() {
        let bytes = line.as_bytes();
        let indent = bytes.iter().take_while(|&&b| b == b' ').count();
        let blank = bytes[indent..].iter().all(|b| b.is_ascii_whitespace());
        if let Some(parent) = scalar_parent {
            if blank || indent > parent {
                continue;
            }
            scalar_parent = None;
        }
        if blank {
            continue;
        }
        let mut i = indent;
        if flow == 0 && quote.is_none() {
            if bytes[i] == b'#' {
                continue;
            }
            while block.last().is_some_and(|&top| top >= indent) {
                block.pop();
            }
            block.push(indent);
            // `- - - x` and `? x` open one level each on the same line.
            while i < bytes.len()
                && (bytes[i] == b'-' || bytes[i] == b'?')
                && bytes.get(i + 1).is_none_or(|b| *b == b' ')
            {
                i += 1;
                while i < bytes.len() && bytes[i] == b' ' {
                    i += 1;
                }
                block.push(i);
            }
        }
        // The rest of the line: flow brackets, quotes, comments, and where a
        // value starts (after `: `), whether it opens a flow collection or a
        // block scalar.
        let mut value_start = true;
        while i < bytes.len() {
            let b = bytes[i];
            if let Some(q) = quote {
                if q == b'"' && b == b'\\' {
                    i += 2;
                    continue;
                }
                if b == q {
                    if q == b'\'' && bytes.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    quote = None;
                }
                i += 1;
                continue;
            }
            match b {
                b' ' => {
                    i += 1;
                    continue;
                }
                b'#' if i == 0 || bytes[i - 1] == b' ' || bytes[i - 1] == b'\t' => break,
                b'"' | b'\'' if value_start || flow > 0 => quote = Some(b),
                b'[' | b'{' if value_start || flow > 0 => flow += 1,
                b']' | b'}' if flow > 0 => flow -= 1,
                b'|' | b'>' if value_start && flow == 0 => {
                    scalar_parent = Some(indent);
                    break;
                }
                _ => {}
            }
            if block.len() + flow > max {
                return Some(n + 1);
            }
            // A value starts after `: `, `- ` and, in flow, after `,` or a bracket.
            value_start = (b == b':' && bytes.get(i + 1).is_none_or(|c| *c == b' '))
                || (flow > 0 && matches!(b, b',' | b'[' | b'{'));
            i += 1;
        }
        if block.len() + flow > max {
            return Some(n + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_of_ordinary_documents() {
        let doc = "apiVersion: airlock/v1\nkind: Bundle\nmetadata:\n  name: demo\n  description: |\n    a [ b { c\n      deeper\nfiles:\n  - path: docs # a [ comment\n    sha256: \"x [ y\"\nimages:\n  - source: docker://x\n    platforms: [linux/amd64, 'linux/arm64']\n";
        assert_eq!(too_deep(doc, 4), None);
        assert_eq!(too_deep(doc, 2), Some(9));
    }

    #[test]
    fn the_repositorys_own_yaml_is_far_from_the_limit() {
        // CI files included: deeper and richer YAML than any manifest.
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for f in [
            "manifests/airlock-release.yaml",
            "examples/quickstart/airlock.yaml",
            "examples/quickstart/docs/serving.yaml",
            "examples/ci/gitlab-ci.yml",
            "examples/ci/github-release-media.yml",
        ] {
            let text = std::fs::read_to_string(root.join(f)).unwrap();
            assert_eq!(too_deep(&text, 12), None, "{f}");
        }
    }

    #[test]
    fn deep_flow_block_and_dash_nesting_are_found() {
        let flow = format!("a: {}1{}\n", "[".repeat(100), "]".repeat(100));
        assert_eq!(too_deep(&flow, 64), Some(1));
        let mut block = String::new();
        for d in 0..100 {
            block.push_str(&format!("{}k{d}:\n", " ".repeat(d)));
        }
        assert_eq!(too_deep(&block, 64), Some(65));
        let dashes = format!("{}x\n", "- ".repeat(100));
        assert_eq!(too_deep(&dashes, 64), Some(1));
        // Brackets inside a plain scalar in block context open nothing.
        assert_eq!(too_deep(&format!("a: b{}\n", "[".repeat(100)), 64), None);
    }
}
