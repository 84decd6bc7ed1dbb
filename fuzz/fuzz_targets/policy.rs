//! The trust policy (`trust-policy.yaml`) from untrusted bytes: YAML parsing,
//! inline and file-named public keys (PEM and OpenSSH), roles, expiry dates,
//! thresholds, custody requirements and bundle-name globs; then the policy
//! judging the DEMO key's signature and the seed bundle's name.
#![no_main]
use std::sync::Once;

use airlock::policy::{glob_match, TrustPolicy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for name in ["demo-builder.pub", "demo-builder.ssh.pub"] {
            let bytes =
                std::fs::read(airlock_fuzz::repo().join("keys").join(name)).expect("demo key");
            airlock_fuzz::put(&format!("policy/{name}"), &bytes);
        }
    });
    let path = airlock_fuzz::put("policy/trust-policy.yaml", data);
    if let Ok(p) = TrustPolicy::load(&path) {
        let now = airlock::clock::now();
        let key = airlock_fuzz::demo_key();
        let _ = p.standing(key, now);
        let _ = p.check_signers(std::slice::from_ref(key), now);
        let _ = p.check_signers(&[], now);
        let _ = p.allows_bundle("tiny");
        for pattern in p.bundles.iter().flatten() {
            let _ = glob_match(pattern, "model-7b");
            let _ = glob_match(pattern, pattern);
        }
    }
});
