//! Package URLs (purl-spec): how SBOMs and sources name a package.

/// A package URL: `pkg:TYPE/SEG/.../NAME[@VERSION][?k=v&...]`, every part
/// percent-encoded, qualifiers sorted by key.
pub fn purl(
    ty: &str,
    segments: &[&str],
    version: Option<&str>,
    qualifiers: &[(&str, String)],
) -> String {
    let mut s = format!("pkg:{ty}");
    for seg in segments.iter().filter(|s| !s.is_empty()) {
        s.push('/');
        pct_into(&mut s, seg, b"");
    }
    if let Some(v) = version {
        s.push('@');
        pct_into(&mut s, v, b":");
    }
    let mut q: Vec<&(&str, String)> = qualifiers.iter().collect();
    q.sort();
    for (i, (k, v)) in q.iter().enumerate() {
        s.push(if i == 0 { '?' } else { '&' });
        s.push_str(k);
        s.push('=');
        pct_into(&mut s, v, b":/");
    }
    s
}

pub fn pct(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    pct_into(&mut out, s, keep);
    out
}

/// Appends `s` to `out` percent-encoded: every byte but ASCII letters,
/// digits, `-._~` and those in `keep` as `%XX`. Runs of bytes kept are
/// copied whole.
fn pct_into(out: &mut String, s: &str, keep: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b);
    let bytes = s.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if plain(b) {
            continue;
        }
        // A run of kept (ASCII) bytes starts and ends on character
        // boundaries.
        if run < i {
            out.push_str(&s[run..i]);
        }
        out.push('%');
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
        run = i + 1;
    }
    if run < bytes.len() {
        out.push_str(&s[run..]);
    }
}

/// `pkg:cargo/NAME@VERSION`, qualified with the registry or git repository
/// when the crate is not from crates.io.
pub fn cargo_purl(name: &str, version: &str, source: Option<&str>) -> String {
    let crates_io = [
        "registry+https://github.com/rust-lang/crates.io-index",
        "sparse+https://index.crates.io/",
    ];
    let q: Vec<(&str, String)> = match source {
        Some(s) if !crates_io.contains(&s) => {
            if let Some(git) = s.strip_prefix("git+") {
                vec![("vcs_url", format!("git+{}", git))]
            } else {
                let url = s
                    .strip_prefix("registry+")
                    .or_else(|| s.strip_prefix("sparse+"))
                    .unwrap_or(s);
                vec![("repository_url", url.to_string())]
            }
        }
        _ => Vec::new(),
    };
    purl("cargo", &[name], Some(version), &q)
}

/// PEP 503 normalized project name (what `pkg:pypi` names use).
pub fn pep503(name: &str) -> String {
    let mut out = String::new();
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_are_encoded_and_qualifiers_sorted() {
        assert_eq!(
            purl(
                "generic",
                &["demo", "files", "docs", "run book.txt"],
                None,
                &[("checksum", "sha256:ab".into())]
            ),
            "pkg:generic/demo/files/docs/run%20book.txt?checksum=sha256:ab"
        );
        assert_eq!(
            purl("pypi", &[pep503("Foo_Bar.baz").as_str()], Some("1.0"), &[]),
            "pkg:pypi/foo-bar-baz@1.0"
        );
        assert_eq!(
            purl(
                "x",
                &["n"],
                Some("1"),
                &[("z", "1".into()), ("a", "b c".into())]
            ),
            "pkg:x/n@1?a=b%20c&z=1"
        );
        assert_eq!(
            cargo_purl(
                "itoa",
                "1.0.0",
                Some("registry+https://github.com/rust-lang/crates.io-index")
            ),
            "pkg:cargo/itoa@1.0.0"
        );
        assert_eq!(
            cargo_purl("x", "0.1.0", Some("registry+https://example.org/index")),
            "pkg:cargo/x@0.1.0?repository_url=https://example.org/index"
        );
    }

    #[test]
    fn pct_escapes_every_byte_of_a_non_ascii_character() {
        assert_eq!(pct("é/a b~", b""), "%C3%A9%2Fa%20b~");
        assert_eq!(pct("ü", b""), "%C3%BC");
        assert_eq!(pct("x:y/z", b":/"), "x:y/z");
        assert_eq!(pct("", b""), "");
        assert_eq!(pct("日本.txt", b""), "%E6%97%A5%E6%9C%AC.txt");
    }

    #[test]
    fn purls_encode_and_sort_qualifiers() {
        assert_eq!(pep503("Foo_Bar.baz"), "foo-bar-baz");
        assert_eq!(
            purl("npm", &["@scope", "pkg"], Some("1.0.0"), &[]),
            "pkg:npm/%40scope/pkg@1.0.0"
        );
        assert_eq!(
            purl(
                "deb",
                &["debian", "zstd"],
                Some("1:1.5"),
                &[("arch", "amd64".into()), ("a", "x y".into())]
            ),
            "pkg:deb/debian/zstd@1:1.5?a=x%20y&arch=amd64"
        );
        assert_eq!(
            cargo_purl("itoa", "1.0.0", Some("sparse+https://index.crates.io/")),
            "pkg:cargo/itoa@1.0.0"
        );
    }
}
