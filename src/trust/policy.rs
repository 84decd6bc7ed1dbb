//! The high side's trust policy (YAML, written by its administrator): which
//! keys are trusted for which roles, how many signers each role needs, which
//! custody events must be present, which bundles may enter.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::bundle::PicklePolicy;
use crate::error::{Error, Report, Result};
use crate::keys::PublicKey;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPolicy {
    api_version: String,
    kind: String,
    keys: Vec<RawKey>,
    #[serde(default)]
    revoked: Vec<String>,
    #[serde(default)]
    require: BTreeMap<String, u32>,
    #[serde(default)]
    custody: Vec<CustodyRequirement>,
    /// The custody event names people may record (besides airlock's own
    /// packed, signed, imported). Absent: the defaults in `custody`.
    #[serde(default)]
    custody_events: Option<Vec<String>>,
    /// Globs of bundle names allowed in; absent means any.
    #[serde(default)]
    bundles: Option<Vec<String>>,
    /// `deny`, `allow`, or `{allow: [module.name, module.*, ...]}`.
    #[serde(default)]
    pickle: Option<serde_yaml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawKey {
    name: String,
    public_key: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    expires: Option<String>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CustodyRequirement {
    pub event: String,
    pub role: String,
}

#[derive(Debug, Clone)]
pub struct TrustedKey {
    pub name: String,
    pub key: PublicKey,
    pub roles: BTreeSet<String>,
    /// First second after which the key is no longer valid.
    pub expires_after: Option<i64>,
    pub expires: Option<String>,
}

#[derive(Debug, Clone)]
pub struct TrustPolicy {
    pub path: PathBuf,
    pub keys: Vec<TrustedKey>,
    pub revoked: BTreeSet<String>,
    pub require: BTreeMap<String, u32>,
    pub custody: Vec<CustodyRequirement>,
    /// Custody event names `custody append` accepts (see [`event_vocabulary`]).
    pub events: BTreeSet<String>,
    pub bundles: Option<Vec<String>>,
    pub pickle: PickleRules,
}

/// The custody events known without a trust policy: airlock's own and the defaults.
pub fn default_events() -> BTreeSet<String> {
    crate::custody::BUILTIN_EVENTS
        .iter()
        .chain(crate::custody::DEFAULT_EVENTS.iter())
        .map(|s| s.to_string())
        .collect()
}

/// Refuses an event name outside `known`, suggesting the closest.
pub fn check_event(event: &str, known: &BTreeSet<String>, whence: &str) -> Result<()> {
    if known.contains(event) {
        return Ok(());
    }
    let hint = match crate::custody::did_you_mean(event, known.iter().map(String::as_str)) {
        Some(k) => format!("did you mean {k:?}? "),
        None => String::new(),
    };
    Err(Error::Usage(format!(
        "--event {event:?} is not a custody event {whence} knows; {hint}known events: {}",
        known.iter().cloned().collect::<Vec<_>>().join(", ")
    )))
}

/// Why a key's signature does or does not count.
#[derive(Debug, Clone)]
pub enum KeyStanding<'a> {
    Trusted(&'a TrustedKey),
    Unknown,
    Revoked(&'a TrustedKey),
    Expired(&'a TrustedKey),
}

impl TrustPolicy {
    pub fn load(path: &Path) -> Result<Self> {
        let raw: RawPolicy = crate::yaml::load(path)?;
        let bad = |m: String| Error::input(path, m);
        if raw.api_version != "airlock/v1" {
            return Err(bad(format!(
                "apiVersion: expected \"airlock/v1\", found {:?}",
                raw.api_version
            )));
        }
        if raw.kind != "TrustPolicy" {
            return Err(bad(format!(
                "kind: expected \"TrustPolicy\", found {:?}",
                raw.kind
            )));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let mut keys = Vec::new();
        let mut ids = BTreeSet::new();
        for (i, k) in raw.keys.iter().enumerate() {
            let field = format!("keys[{i}] ({})", k.name);
            let text = if k.public_key.trim_start().starts_with("-----BEGIN")
                || k.public_key.trim_start().starts_with("ssh-")
            {
                k.public_key.clone()
            } else {
                let p = base.join(&k.public_key);
                fs_err::read_to_string(&p).map_err(|e| bad(format!("{field}.publicKey: {e}")))?
            };
            let key =
                PublicKey::parse(&text).map_err(|e| bad(format!("{field}.publicKey: {e}")))?;
            if !ids.insert(key.id.clone()) {
                return Err(bad(format!("{field}: key {} is listed twice", key.id)));
            }
            let expires_after = match &k.expires {
                None => None,
                Some(d) => Some(
                    crate::clock::parse_date(d).ok_or_else(|| {
                        bad(format!("{field}.expires: {d:?} is not a date YYYY-MM-DD"))
                    })? + 86_400,
                ),
            };
            keys.push(TrustedKey {
                name: k.name.clone(),
                key,
                roles: k.roles.iter().cloned().collect(),
                expires_after,
                expires: k.expires.clone(),
            });
        }
        let revoked: BTreeSet<String> = raw.revoked.iter().cloned().collect();
        let holds = |role: &str| {
            keys.iter()
                .any(|k| k.roles.contains(role) && !revoked.contains(&k.key.id))
        };
        for (role, n) in &raw.require {
            let holders = keys
                .iter()
                .filter(|k| k.roles.contains(role) && !revoked.contains(&k.key.id))
                .count() as u32;
            if holders < *n {
                return Err(bad(format!(
                    "require.{role}: needs {n} distinct signer(s) but only {holders} unrevoked key(s) hold role {role:?}; this policy can never be met"
                )));
            }
        }
        let declared = raw.custody_events.is_some();
        let mut events: BTreeSet<String> = crate::custody::BUILTIN_EVENTS
            .iter()
            .map(|s| s.to_string())
            .collect();
        match &raw.custody_events {
            Some(list) => {
                for (i, e) in list.iter().enumerate() {
                    if !crate::custody::valid_event_name(e) {
                        return Err(bad(format!(
                            "custodyEvents[{i}]: {e:?} is not an event name (lowercase letters, digits and '-')"
                        )));
                    }
                    events.insert(e.clone());
                }
            }
            None => {
                events.extend(crate::custody::DEFAULT_EVENTS.iter().map(|s| s.to_string()));
                // Events the requirements name are known too.
                events.extend(raw.custody.iter().map(|c| c.event.clone()));
            }
        }
        for (i, c) in raw.custody.iter().enumerate() {
            if declared && !events.contains(&c.event) {
                let hint =
                    crate::custody::did_you_mean(&c.event, events.iter().map(String::as_str))
                        .map(|k| format!(" (did you mean {k:?}?)"))
                        .unwrap_or_default();
                return Err(bad(format!(
                    "custody[{i}].event: {:?} is not among custodyEvents{hint}; add it there or fix the name",
                    c.event
                )));
            }
            if !holds(&c.role) {
                return Err(bad(format!(
                    "custody[{i}]: event {:?} must be signed by role {:?}, which no unrevoked key holds; this policy can never be met",
                    c.event, c.role
                )));
            }
        }
        let pickle = parse_pickle(raw.pickle.as_ref()).map_err(bad)?;
        Ok(TrustPolicy {
            path: path.to_path_buf(),
            keys,
            revoked,
            require: raw.require,
            custody: raw.custody,
            events,
            bundles: raw.bundles,
            pickle,
        })
    }

    /// The name this policy gives `key`, if it lists it.
    pub fn key_name(&self, key: &PublicKey) -> Option<&str> {
        self.keys
            .iter()
            .find(|k| k.key == *key)
            .map(|k| k.name.as_str())
    }

    /// How the policy regards `key` at time `now`.
    pub fn standing(&self, key: &PublicKey, now: i64) -> KeyStanding<'_> {
        match self.keys.iter().find(|k| k.key == *key) {
            None => KeyStanding::Unknown,
            Some(k) if self.revoked.contains(&k.key.id) => KeyStanding::Revoked(k),
            Some(k) if k.expires_after.is_some_and(|t| now >= t) => KeyStanding::Expired(k),
            Some(k) => KeyStanding::Trusted(k),
        }
    }

    pub fn allows_bundle(&self, name: &str) -> bool {
        self.bundles
            .as_ref()
            .is_none_or(|globs| globs.iter().any(|g| glob_match(g, name)))
    }

    /// Applies `require` to the keys whose signatures verified. Signatures by
    /// unknown, revoked or expired keys do not count (and say why); the
    /// bundle fails only when a role's threshold is not met, or when no
    /// trusted key signed at all.
    pub fn check_signers(&self, valid: &[PublicKey], now: i64) -> (Report, Signers) {
        let mut report = Report::default();
        let mut signers = Signers::default();
        let mut names_seen = BTreeSet::new();
        for key in valid {
            let (name, status) = match self.standing(key, now) {
                KeyStanding::Trusted(k) if !names_seen.insert(k.name.clone()) => (
                    Some(k.name.clone()),
                    format!(
                        "not counted: {} already signed with another key (same signer twice)",
                        k.name
                    ),
                ),
                KeyStanding::Trusted(k) => {
                    for role in &k.roles {
                        signers
                            .counted
                            .entry(role.clone())
                            .or_default()
                            .push(k.name.clone());
                    }
                    (
                        Some(k.name.clone()),
                        format!(
                            "counts for {}",
                            k.roles.iter().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    )
                }
                KeyStanding::Unknown => (
                    None,
                    "not counted: key unknown to the trust policy".to_string(),
                ),
                KeyStanding::Revoked(k) => (
                    Some(k.name.clone()),
                    "not counted: key revoked by the trust policy".to_string(),
                ),
                KeyStanding::Expired(k) => (
                    Some(k.name.clone()),
                    format!(
                        "not counted: key expired on {}",
                        k.expires.as_deref().unwrap_or("?")
                    ),
                ),
            };
            signers.keys.push(SignerStatus {
                key_id: key.id.clone(),
                name,
                status,
            });
        }
        let why_not = || {
            let others: Vec<String> = signers
                .keys
                .iter()
                .filter(|k| k.status.starts_with("not counted"))
                .map(|k| format!("{} {}", k.name.as_deref().unwrap_or(&k.key_id), k.status))
                .collect();
            if others.is_empty() {
                String::new()
            } else {
                format!("; {}", others.join("; "))
            }
        };
        for (role, need) in &self.require {
            let names = signers.counted.get(role).cloned().unwrap_or_default();
            if (names.len() as u32) < *need {
                report.add(
                    format!("policy require.{role}"),
                    format!(
                        "needs {need} distinct valid signer(s) with role {role:?}, found {}{}{}",
                        names.len(),
                        if names.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", names.join(", "))
                        },
                        why_not()
                    ),
                );
            }
        }
        if self.require.is_empty()
            && signers.counted.is_empty()
            && !signers.keys.iter().any(|k| k.status.starts_with("counts"))
        {
            report.add(
                "signatures/",
                format!(
                    "no valid signature by a key the trust policy trusts{}",
                    why_not()
                ),
            );
        }
        (report, signers)
    }
}

/// Who signed, and which signatures count for which role.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Signers {
    /// role → names of the trusted signers that count for it.
    pub counted: BTreeMap<String, Vec<String>>,
    pub keys: Vec<SignerStatus>,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignerStatus {
    pub key_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub status: String,
}

/// Reads the policy's `pickle:` setting: `deny` (the default), `allow`, or
/// `{allow: [...]}`: deny, with these imports added to the built-in
/// allowlist of safe globals. Each entry is `module.name`, or `module.*`
/// for every name in a module and its submodules.
fn parse_pickle(v: Option<&serde_yaml::Value>) -> std::result::Result<PickleRules, String> {
    use serde_yaml::Value;
    let expected = "pickle: expected deny, allow, or {allow: [module.name, module.*, ...]}";
    let Some(v) = v else {
        return Ok(PickleRules::default());
    };
    match v {
        Value::String(s) if s == "deny" => Ok(PickleRules::default()),
        Value::String(s) if s == "allow" => Ok(PickleRules {
            policy: PicklePolicy::Allow,
            allow: Vec::new(),
        }),
        Value::Mapping(m) => {
            let mut allow = Vec::new();
            for (k, v) in m {
                if k.as_str() != Some("allow") {
                    return Err(format!("{expected}; found key {k:?}"));
                }
                let Value::Sequence(items) = v else {
                    return Err(
                        "pickle.allow: expected a list of module.name or module.* entries".into(),
                    );
                };
                for (i, item) in items.iter().enumerate() {
                    let Some(e) = item.as_str() else {
                        return Err(format!(
                            "pickle.allow[{i}]: expected a string, found {item:?}"
                        ));
                    };
                    if !valid_global(e) {
                        return Err(format!(
                            "pickle.allow[{i}]: {e:?} is not module.name or module.* (dotted Python identifiers)"
                        ));
                    }
                    allow.push(e.to_string());
                }
            }
            Ok(PickleRules {
                policy: PicklePolicy::Deny,
                allow,
            })
        }
        other => Err(format!("{expected}; found {other:?}")),
    }
}

/// `module.name` or `module.*`: dotted identifiers, at least two parts.
fn valid_global(e: &str) -> bool {
    let body = e.strip_suffix(".*").unwrap_or(e);
    let parts: Vec<&str> = body.split('.').collect();
    (parts.len() >= 2 || body.len() < e.len())
        && parts.iter().all(|p| {
            !p.is_empty()
                && !p.starts_with(|c: char| c.is_ascii_digit())
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// `*` matches any run of characters, `?` any one.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// The pickle rules in force on one side: the policy, and the imports a
/// trust policy adds to the built-in allowlist (`pickle: {allow: [...]}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PickleRules {
    pub policy: PicklePolicy,
    /// `module.name` or `module.*` entries.
    pub allow: Vec<String>,
}

impl From<PicklePolicy> for PickleRules {
    fn from(policy: PicklePolicy) -> Self {
        PickleRules {
            policy,
            allow: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pickle_settings() {
        let y = |t: &str| serde_yaml::from_str::<serde_yaml::Value>(t).unwrap();
        assert_eq!(parse_pickle(None).unwrap(), PickleRules::default());
        assert_eq!(
            parse_pickle(Some(&y("allow"))).unwrap().policy,
            PicklePolicy::Allow
        );
        let r = parse_pickle(Some(&y("{allow: [sklearn.linear_model.*, mypkg.Model]}"))).unwrap();
        assert_eq!(r.policy, PicklePolicy::Deny);
        assert_eq!(r.allow, ["sklearn.linear_model.*", "mypkg.Model"]);
        for bad in [
            "maybe",
            "{allow: [os]}",
            "{allow: ['a.b c']}",
            "{deny: [a.b]}",
            "{allow: a.b}",
            "{allow: ['*']}",
        ] {
            assert!(parse_pickle(Some(&y(bad))).is_err(), "{bad}");
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("sensor-*", "sensor-classifier"));
        assert!(glob_match("*", "x"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("sensor-*", "other"));
        assert!(!glob_match("a", "ab"));
    }
}
