//! `airlock report`: a transfer report as one self-contained HTML page, for
//! the approval packet. No script, no external resource (fonts, images and
//! the custody timeline are inline CSS and SVG), printable on A4 or Letter.
//! Everything taken from the bundle is escaped for HTML and stripped of
//! control characters.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use crate::bundle::{ArtifactKind, Description};
use crate::custody::EventView;
use crate::error::{Error, Report, Result};
use crate::output::{esc, size};
use crate::policy::{Signers, TrustPolicy};
use crate::progress::Progress;
use crate::source::Form;

/// The rendered page and what the CLI reports about it.
pub struct Built {
    pub html: String,
    pub id: String,
    pub name: String,
    pub version: String,
    /// With a policy: the findings of a failed verification (the page shows them).
    pub failure: Option<Report>,
}

/// Reads the bundle (and with `policy`, verifies it in full) and renders the page.
pub fn build(
    bundle: &[PathBuf],
    policy: Option<&TrustPolicy>,
    progress: &dyn Progress,
) -> Result<Built> {
    let first = bundle
        .first()
        .ok_or_else(|| Error::Usage("report: no bundle given".into()))?;
    let inspection = crate::inspect::inspect(first)?;
    let mut signers = None;
    let mut failure = None;
    if let Some(p) = policy {
        let form = Form::open_all(bundle)?;
        let tags = crate::verify::read_tags(&form)?;
        signers = Some(crate::verify::check_tags(tags, p, crate::clock::now()).signers);
        match crate::verify::verify(&form, p, None, progress) {
            Ok(_) => {}
            Err(Error::Verification(r)) => failure = Some(r),
            Err(e) => return Err(e),
        }
    }
    let page = Page {
        id: &inspection.id,
        d: &inspection.description,
        inspection: &inspection,
        policy,
        signers: signers.as_ref(),
        failure: failure.as_ref(),
        generated: crate::clock::rfc3339(crate::clock::now()),
    };
    Ok(Built {
        html: page.render(),
        id: inspection.id.clone(),
        name: inspection.description.name.clone(),
        version: inspection.description.version.clone(),
        failure,
    })
}

/// HTML-escapes text from a bundle (after escaping control characters).
fn h(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in esc(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

struct Page<'a> {
    id: &'a str,
    d: &'a Description,
    inspection: &'a crate::inspect::Inspection,
    policy: Option<&'a TrustPolicy>,
    signers: Option<&'a Signers>,
    failure: Option<&'a Report>,
    generated: String,
}

const CSS: &str = r#"
@page { size: auto; margin: 14mm; }
* { box-sizing: border-box; }
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; color: #111;
  margin: 0 auto; max-width: 60rem; padding: 1.5rem; font-size: 11pt; line-height: 1.35; }
h1 { font-size: 1.6rem; margin: 0 0 .2rem 0; }
h2 { font-size: 1.15rem; border-bottom: 2px solid #333; padding-bottom: .15rem; margin-top: 1.6rem;
  break-after: avoid; }
.sub { color: #444; margin: 0 0 1rem 0; }
.verdict { font-weight: bold; padding: .5rem .8rem; border: 2px solid; margin: .8rem 0; }
.verdict.ok { color: #0a5a1e; border-color: #0a5a1e; background: #e9f6ec; }
.verdict.bad { color: #8a0b0b; border-color: #8a0b0b; background: #fbeaea; }
.verdict.none { color: #5a4a00; border-color: #8a7400; background: #fbf6e0; }
.bundleid { font-family: "DejaVu Sans Mono", "Liberation Mono", monospace; font-size: 1.55rem;
  font-weight: bold; letter-spacing: .04em; line-height: 1.6; border: 1px solid #999;
  padding: .5rem .8rem; background: #f6f6f6; }
.bundleid .g { display: inline-block; margin-right: .7rem; }
.bundleid .row { display: block; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0; }
th, td { text-align: left; vertical-align: top; padding: .2rem .4rem; border-bottom: 1px solid #ccc; }
th { background: #eee; }
td.num, th.num { text-align: right; white-space: nowrap; }
tr { break-inside: avoid; }
.mono { font-family: "DejaVu Sans Mono", "Liberation Mono", monospace; font-size: .85em;
  word-break: break-all; }
.file td { color: #333; font-size: .92em; }
.file td:first-child { padding-left: 1.6rem; }
.ok { color: #0a5a1e; } .bad { color: #8a0b0b; font-weight: bold; } .warn { color: #7a5a00; }
.timeline { display: block; max-width: 100%; height: auto; }
footer { margin-top: 2rem; color: #555; font-size: .85em; border-top: 1px solid #ccc; padding-top: .4rem; }
"#;

impl Page<'_> {
    fn render(&self) -> String {
        let d = self.d;
        let mut s = String::new();
        let _ = write!(
            s,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <title>Transfer report: {} {}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
            h(&d.name),
            h(&d.version)
        );
        let _ = write!(
            s,
            "<h1>Transfer report: {} {}</h1>\n<p class=\"sub\">{}created {} by {}</p>\n",
            h(&d.name),
            h(&d.version),
            d.description
                .as_deref()
                .map(|x| format!("{}. ", h(x)))
                .unwrap_or_default(),
            h(&d.created),
            h(&d.generator)
        );
        s.push_str(&self.verdict());
        s.push_str("<h2>Bundle id</h2>\n");
        s.push_str(&bundle_id_block(self.id));
        s.push_str(&self.contents());
        s.push_str(&self.signers_section());
        s.push_str(&self.custody_section());
        s.push_str(&self.pickles());
        s.push_str(&self.sbom_summary());
        if let Some(r) = self.failure {
            s.push_str("<h2>Verification findings</h2>\n<table>\n<tr><th>Subject</th><th>Problem</th></tr>\n");
            for f in &r.findings {
                let _ = writeln!(
                    s,
                    "<tr><td class=\"mono\">{}</td><td class=\"bad\">{}</td></tr>",
                    h(&f.subject),
                    h(&f.problem)
                );
            }
            s.push_str("</table>\n");
        }
        let _ = write!(
            s,
            "<footer>Written by airlock {} at {} from the bundle's signed tag files{}. \
             Sizes in KiB/MiB/GiB (1024-based).</footer>\n</body>\n</html>\n",
            env!("CARGO_PKG_VERSION"),
            h(&self.generated),
            match self.policy {
                Some(p) => format!(
                    ", verified against trust policy {}",
                    h(&p.path.display().to_string())
                ),
                None => String::new(),
            }
        );
        s
    }

    fn verdict(&self) -> String {
        match (self.policy, self.failure) {
            (None, _) => "<p class=\"verdict none\">NOT VERIFIED: this report was made without a \
                          trust policy. Signatures are shown as intact or broken, not as trusted; \
                          run <span class=\"mono\">airlock report --trust POLICY</span> to verify.</p>\n"
                .to_string(),
            (Some(_), None) => "<p class=\"verdict ok\">VERIFIED: every blob hashed against the \
                                signed manifests, signatures and custody checked against the \
                                trust policy.</p>\n"
                .to_string(),
            (Some(_), Some(r)) => format!(
                "<p class=\"verdict bad\">VERIFICATION FAILED: {} problem(s), listed at the end. \
                 Do not import this bundle.</p>\n",
                r.findings.len()
            ),
        }
    }

    fn contents(&self) -> String {
        let d = self.d;
        let mut s = format!(
            "<h2>Contents</h2>\n<p>{} artifact(s), {} blob(s), {} in total.</p>\n<table>\n\
             <tr><th>Artifact</th><th>Reference</th><th class=\"num\">Files</th>\
             <th class=\"num\">Size</th></tr>\n",
            d.artifacts.len(),
            d.blob_count(),
            size(d.total_size())
        );
        for a in &d.artifacts {
            let (count, total) = if a.kind == ArtifactKind::Image {
                (
                    a.blobs.len() + 1,
                    a.blobs.iter().map(|b| b.size).sum::<u64>() + a.manifest.size,
                )
            } else {
                (a.layers.len(), a.layers.iter().map(|l| l.size).sum())
            };
            let _ = writeln!(
                s,
                "<tr><td><b>{}</b> {}</td><td class=\"mono\">{}</td><td class=\"num\">{count}</td>\
                 <td class=\"num\">{}</td></tr>",
                a.kind.name(),
                h(&a.name),
                h(&a.reference),
                size(total)
            );
            for l in &a.layers {
                let _ = writeln!(
                    s,
                    "<tr class=\"file\"><td colspan=\"2\">{}</td><td></td><td class=\"num\">{}</td></tr>",
                    h(l.path),
                    size(l.size)
                );
            }
            if let Some(src) = &a.source {
                let _ = writeln!(
                    s,
                    "<tr class=\"file\"><td colspan=\"4\">from <span class=\"mono\">{}</span>, \
                     manifest <span class=\"mono\">{}</span></td></tr>",
                    h(src),
                    a.manifest.digest.oci()
                );
            }
        }
        s.push_str("</table>\n");
        s
    }

    fn signers_section(&self) -> String {
        let mut s = String::from(
            "<h2>Signers</h2>\n<table>\n<tr><th>Signer</th><th>Roles</th><th>Key id</th>\
             <th>Verdict</th></tr>\n",
        );
        let roles_of = |key_id: &str| -> String {
            self.policy
                .and_then(|p| p.keys.iter().find(|k| k.key.id == key_id))
                .map(|k| k.roles.iter().cloned().collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        };
        for sg in &self.inspection.signers {
            let judged = self
                .signers
                .and_then(|x| x.keys.iter().find(|k| k.key_id == sg.key_id));
            let name = judged
                .and_then(|k| k.name.clone())
                .unwrap_or_else(|| "(not named by a policy)".into());
            let (class, verdict) = match (sg.signature_ok, judged) {
                (false, _) => (
                    "bad",
                    format!(
                        "signature BROKEN: {}",
                        sg.problem.as_deref().unwrap_or("does not verify")
                    ),
                ),
                (true, Some(k)) if k.status.starts_with("counts") => {
                    ("ok", format!("trusted: {}", k.status))
                }
                (true, Some(k)) => ("bad", k.status.clone()),
                (true, None) => ("warn", "signature intact; trust not checked".to_string()),
            };
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td class=\"{class}\">{}</td></tr>",
                h(&name),
                h(&roles_of(&sg.key_id)),
                h(&sg.key_id),
                h(&verdict)
            );
        }
        if self.inspection.signers.is_empty() {
            s.push_str("<tr><td colspan=\"4\" class=\"bad\">no signatures</td></tr>\n");
        }
        s.push_str("</table>\n");
        if let Some(x) = self.signers {
            for (role, names) in &x.counted {
                let _ = writeln!(
                    s,
                    "<p>Role <b>{}</b>: counted {}.</p>",
                    h(role),
                    h(&names.join(", "))
                );
            }
        }
        s
    }

    fn custody_section(&self) -> String {
        let names: BTreeMap<String, String> = self
            .policy
            .map(|p| {
                p.keys
                    .iter()
                    .map(|k| {
                        let roles = k.roles.iter().cloned().collect::<Vec<_>>().join(", ");
                        (k.key.id.clone(), format!("{} ({roles})", k.name))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let events = &self.inspection.custody;
        let mut s = String::from("<h2>Chain of custody</h2>\n");
        if events.is_empty() {
            s.push_str("<p class=\"bad\">No custody events.</p>\n");
            return s;
        }
        s.push_str(&timeline_svg(events, &names));
        s
    }

    fn pickles(&self) -> String {
        let d = self.d;
        let pickles: Vec<_> = d
            .content
            .iter()
            .filter(|c| crate::modelcheck::is_pickle(c))
            .collect();
        let mut s = format!(
            "<h2>Pickle findings</h2>\n<p>Builder policy: pickle {}.</p>\n",
            match d.pickle {
                crate::bundle::PicklePolicy::Allow => "allow",
                crate::bundle::PicklePolicy::Deny => "deny",
            }
        );
        if pickles.is_empty() {
            s.push_str("<p class=\"ok\">No pickle files in the bundle.</p>\n");
            return s;
        }
        s.push_str("<table>\n<tr><th>File</th><th>Format</th><th>Finding</th></tr>\n");
        for c in pickles {
            let f = &c.facts;
            let (class, verdict) = if let Some(m) = &f.malformed {
                ("bad", format!("NOT SCANNABLE: {m}"))
            } else if f.unsafe_imports.is_empty() {
                ("ok", "state-dict imports only".to_string())
            } else {
                (
                    "bad",
                    format!("UNSAFE imports: {}", f.unsafe_imports.join(", ")),
                )
            };
            let _ = writeln!(
                s,
                "<tr><td class=\"mono\">{}/{}</td><td>{}</td><td class=\"{class}\">{}</td></tr>",
                h(&c.artifact),
                h(&c.path),
                h(&f.format),
                h(&verdict)
            );
        }
        s.push_str("</table>\n");
        s
    }

    fn sbom_summary(&self) -> String {
        let d = self.d;
        let mut s = String::from(
            "<h2>SBOM summary</h2>\n<table>\n<tr><th>Component</th><th>Details</th></tr>\n",
        );
        let mut rows = 0;
        for m in &d.models {
            let mut parts: Vec<String> = Vec::new();
            parts.extend(m.format.clone());
            if let Some(p) = &m.param_size {
                parts.push(format!("{p} parameters"));
            }
            parts.extend(m.precision.clone());
            parts.extend(m.architecture.clone());
            parts.extend(m.signature.as_ref().map(crate::modelsig::summary));
            if let Some(o) = &m.huggingface {
                parts.push(format!("Hugging Face {}@{}", o.repo, o.revision));
            }
            let _ = writeln!(
                s,
                "<tr><td>model {}</td><td>{}</td></tr>",
                h(&m.name),
                h(&parts.join(", "))
            );
            rows += 1;
        }
        for a in &d.artifacts {
            let detail = match a.kind {
                ArtifactKind::Model | ArtifactKind::Files => continue,
                ArtifactKind::Image => format!(
                    "{} {}",
                    a.source.as_deref().unwrap_or(""),
                    a.manifest.digest.oci()
                ),
                ArtifactKind::Sbom => format!(
                    "{} ({})",
                    a.artifact_type,
                    size(a.layers.iter().map(|l| l.size).sum())
                ),
                // Package kinds (python, cargo ...).
                _ => a
                    .packages
                    .iter()
                    .map(|p| format!("{} {}", p.name, p.version))
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            let what = match a.kind {
                ArtifactKind::Image => format!("image {}", a.name),
                ArtifactKind::Sbom => format!("SBOM {}", a.reference),
                k => format!(
                    "{}: {} {}",
                    k.name(),
                    a.packages.len(),
                    crate::sources::kind::of(k).package_noun()
                ),
            };
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td class=\"mono\">{}</td></tr>",
                h(&what),
                h(&detail)
            );
            rows += 1;
        }
        if rows == 0 {
            s.push_str("<tr><td colspan=\"2\">no models, packages, images or SBOMs</td></tr>\n");
        }
        s.push_str("</table>\n");
        s
    }
}

/// The 64 hex digits in 16 groups of four, four groups to a row: easy to read
/// aloud and compare over the phone.
fn bundle_id_block(id: &str) -> String {
    let groups: Vec<String> = id
        .as_bytes()
        .chunks(4)
        .map(|c| h(&String::from_utf8_lossy(c)))
        .collect();
    let mut s = String::from("<div class=\"bundleid\" id=\"bundle-id\">");
    for row in groups.chunks(4) {
        s.push_str("<span class=\"row\">");
        for g in row {
            let _ = write!(s, "<span class=\"g\">{g}</span> ");
        }
        s.push_str("</span>");
    }
    s.push_str("</div>\n");
    s
}

/// The custody chain as a vertical timeline in inline SVG: one node per
/// event, green when its signature and link check, red otherwise.
fn timeline_svg(events: &[EventView], names: &BTreeMap<String, String>) -> String {
    const ROW: usize = 58;
    let height = events.len() * ROW + 10;
    let mut s = format!(
        "<svg class=\"timeline\" role=\"img\" aria-label=\"custody timeline\" \
         xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 760 {height}\" width=\"760\" height=\"{height}\">\n"
    );
    if events.len() > 1 {
        let _ = writeln!(
            s,
            "<line x1=\"24\" y1=\"24\" x2=\"24\" y2=\"{}\" stroke=\"#555\" stroke-width=\"3\"/>",
            (events.len() - 1) * ROW + 24
        );
    }
    for (i, e) in events.iter().enumerate() {
        let y = i * ROW + 24;
        let ok = e.signature_ok && e.link_ok;
        let color = if ok { "#0a7a2a" } else { "#b00000" };
        let _ = writeln!(
            s,
            "<circle cx=\"24\" cy=\"{y}\" r=\"10\" fill=\"{color}\" stroke=\"#222\" stroke-width=\"1.5\"/>"
        );
        let (title, line2) = match &e.record {
            Some(r) => {
                let who = names
                    .get(&r.signer)
                    .map(|n| format!("{n}, key {}", r.signer))
                    .unwrap_or_else(|| format!("key {}", r.signer));
                let mut l2 = format!("{} by {}", r.time, who);
                if let Some(n) = &r.note {
                    let n: String = n.chars().take(60).collect();
                    l2.push_str(&format!(" — {n}"));
                }
                (format!("{}. {}", r.sequence, r.event), l2)
            }
            None => (e.file.clone(), "unreadable".to_string()),
        };
        let status = if ok {
            "signature ok, link ok".to_string()
        } else {
            format!("BROKEN: {}", e.problems.join("; "))
        };
        let _ = writeln!(
            s,
            "<text x=\"48\" y=\"{}\" font-size=\"15\" font-weight=\"bold\" fill=\"#111\">{} \
             <tspan font-weight=\"normal\" font-size=\"12\" fill=\"{color}\">[{}]</tspan></text>",
            y - 2,
            h(&title),
            h(&status)
        );
        let _ = writeln!(
            s,
            "<text x=\"48\" y=\"{}\" font-size=\"12\" fill=\"#333\">{}</text>",
            y + 16,
            h(&line2)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html_and_control_characters() {
        assert_eq!(h("<b>&\"'"), "&lt;b&gt;&amp;&quot;&#39;");
        assert_eq!(h("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
    }

    #[test]
    fn bundle_id_in_groups() {
        let id = "0123456789abcdef".repeat(4);
        let b = bundle_id_block(&id);
        assert_eq!(b.matches("class=\"g\"").count(), 16);
        assert_eq!(b.matches("class=\"row\"").count(), 4);
        assert!(b.contains(">0123</span>"));
    }
}
