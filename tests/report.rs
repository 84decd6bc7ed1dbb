//! `airlock report`: the HTML transfer report, opened in headless Chromium
//! (Debian's `chromium`, installed by scripts/test) the way a transfer officer
//! would print it: the DOM's text is checked against the bundle, a screenshot
//! is taken, and the page prints to PDF.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs headless Chromium on `page` with `args`, offline, with a throwaway profile.
fn chromium(page: &Path, args: &[&str]) -> Output {
    let profile = tempfile::tempdir().unwrap();
    let o = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            &format!("--user-data-dir={}", profile.path().display()),
        ])
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs (scripts/test installs Debian's chromium)");
    assert!(o.status.success(), "chromium {args:?}: {}", stderr(&o));
    o
}

/// The page's text as Chromium rendered it (tags stripped, entities decoded,
/// whitespace collapsed).
fn dom_text(page: &Path) -> String {
    let dom = stdout(&chromium(page, &["--dump-dom"]));
    let mut text = String::new();
    let mut in_tag = false;
    let mut in_style = false;
    let lower = dom.to_lowercase();
    let mut i = 0;
    let bytes: Vec<char> = dom.chars().collect();
    let lchars: Vec<char> = lower.chars().collect();
    while i < bytes.len() {
        let rest: String = lchars[i..(i + 8).min(lchars.len())].iter().collect();
        if rest.starts_with("<style") {
            in_style = true;
        }
        if rest.starts_with("</style") {
            in_style = false;
        }
        match bytes[i] {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag && !in_style => text.push(c),
            _ => {}
        }
        i += 1;
    }
    let text = text
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn report(f: &Fixture, bundle: &Path, trust: bool, out: &str) -> (Output, PathBuf) {
    let path = f.path(out);
    let policy = f.s("policy.yaml");
    let mut args = vec!["report", s(bundle), "--out", s(&path)];
    if trust {
        args.extend(["--trust", &policy]);
    }
    (run(&args), path)
}

#[test]
fn report_renders_in_chromium_and_matches_the_bundle() {
    let f = Fixture::new();
    f.write_policy(
        "builder",
        "[builder]",
        "  - name: officer\n    publicKey: keys/stranger.pub\n    roles: [transfer-officer]\n\
         require:\n  builder: 1\n",
    );
    let b = f.pack("tar");
    let o = run(&[
        "custody",
        "append",
        s(&b),
        "--key",
        &f.s("keys/stranger.key"),
        "--event",
        "scanned",
        "--note",
        "ClamAV clean <b>not bold</b>",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let (o, page) = report(&f, &b, true, "report.html");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let html = std::fs::read_to_string(&page).unwrap();

    // Self-contained: no script, nothing fetched.
    let lower = html.to_lowercase();
    for bad in [
        "<script", " src=", "href=", "url(", "@import", "<link", "<iframe",
    ] {
        assert!(!lower.contains(bad), "the report contains {bad:?}");
    }
    assert!(
        html.contains("<svg"),
        "the custody timeline is drawn inline"
    );

    let text = dom_text(&page);
    let i = json(&run(&["inspect", s(&b), "--json"]));
    let id = i["bundleId"].as_str().unwrap();
    // The id in groups of four, to read aloud.
    let grouped: Vec<String> = id
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    assert!(
        text.contains(&grouped.join(" ")),
        "bundle id in groups:\n{text}"
    );
    assert!(text.contains("Transfer report: demo 1.0.0"), "{text}");
    assert!(text.contains("VERIFIED"), "{text}");
    // Every file of every artifact, with the sizes inspect gives.
    for a in i["artifacts"].as_array().unwrap() {
        assert!(text.contains(a["reference"].as_str().unwrap()), "{a}");
        for l in a["layers"].as_array().unwrap() {
            let path = l["path"].as_str().unwrap();
            assert!(text.contains(path), "lists {path}:\n{text}");
        }
    }
    assert!(text.contains("model.safetensors 293 KiB"), "{text}");
    // Signers by name and role, with verdicts.
    assert!(text.contains("builder builder"), "{text}");
    assert!(text.contains("trusted: counts for builder"), "{text}");
    // The custody timeline, with the note escaped (shown, not rendered).
    assert!(text.contains("1. packed"), "{text}");
    assert!(text.contains("2. scanned"), "{text}");
    assert!(text.contains("ClamAV clean <b>not bold</b>"), "{text}");
    assert!(
        text.contains("by officer (transfer-officer), key"),
        "custody signers by name and role: {text}"
    );
    // Pickles and the SBOM summary.
    assert!(text.contains("No pickle files in the bundle."), "{text}");
    assert!(text.contains("SBOM summary"), "{text}");
    assert!(text.contains("model minilm safetensors"), "{text}");

    // A screenshot, and a PDF for the approval packet.
    let shot = f.path("report.png");
    chromium(
        &page,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1000,1400",
            "--hide-scrollbars",
        ],
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG screenshot");
    assert!(
        png.len() > 20_000,
        "the screenshot shows the page ({} bytes)",
        png.len()
    );
    let pdf = f.path("report.pdf");
    chromium(
        &page,
        &[
            &format!("--print-to-pdf={}", pdf.display()),
            "--no-pdf-header-footer",
        ],
    );
    let bytes = std::fs::read(&pdf).unwrap();
    assert!(bytes.starts_with(b"%PDF-"), "prints to PDF");
    let pages = String::from_utf8_lossy(&bytes)
        .matches("/Type /Page\n")
        .count()
        + String::from_utf8_lossy(&bytes)
            .matches("/Type /Page/")
            .count()
        + String::from_utf8_lossy(&bytes)
            .matches("/Type /Page ")
            .count();
    assert!(pages >= 1 || bytes.len() > 10_000, "the PDF has pages");
}

#[test]
fn report_shows_a_failed_verification_and_an_unverified_bundle() {
    let f = Fixture::new();
    let b = f.pack("dir");
    let (o, page) = report(&f, &b, false, "plain.html");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = dom_text(&page);
    assert!(text.contains("NOT VERIFIED"), "{text}");
    assert!(
        text.contains("signature intact; trust not checked"),
        "{text}"
    );

    let w = std::fs::read(f.path("src/docs/runbook.txt")).unwrap();
    let blob = format!("data/blobs/sha256/{}", {
        use sha2::Digest as _;
        sha2::Sha256::digest(&w)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    });
    std::fs::write(b.join(&blob), b"tampered\n").unwrap();
    let (o, page) = report(&f, &b, true, "failed.html");
    assert_eq!(code(&o), 1, "a failed verification exits 1: {}", stderr(&o));
    assert!(stderr(&o).contains(&blob), "{}", stderr(&o));
    let text = dom_text(&page);
    assert!(text.contains("VERIFICATION FAILED"), "{text}");
    assert!(
        text.contains(&blob),
        "the page names the failing blob: {text}"
    );
}

#[test]
fn report_shows_pickle_findings() {
    let f = Fixture::new();
    let model = f.path("src/models/minilm/pytorch_model.bin");
    let o = std::process::Command::new("python3")
        .args([
            "-c",
            "import os, pickle, sys\n\
             class Evil:\n    def __reduce__(self):\n        return (os.system, ('echo pwned',))\n\
             pickle.dump({'weight': Evil()}, open(sys.argv[1], 'wb'), protocol=2)\n",
            s(&model),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    f.write_manifest("policy:\n  pickle: allow\n");
    let b = f.pack("tar");
    // The policy denies pickles (the default): verification fails, the page says why.
    let (o, page) = report(&f, &b, true, "pickle.html");
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let text = dom_text(&page);
    assert!(text.contains("Builder policy: pickle allow"), "{text}");
    assert!(
        text.contains("models/minilm/pytorch_model.bin pickle UNSAFE imports: posix.system"),
        "{text}"
    );
    assert!(text.contains("VERIFICATION FAILED"), "{text}");
}
