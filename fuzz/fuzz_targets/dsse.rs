//! DSSE envelopes from untrusted bytes: the envelope itself, a bundle
//! signature (`signatures/<key>.dsse.json`, and the bytes as its OpenSSH
//! companion), and a custody event appended to the seed bundle's chain.
#![no_main]
use airlock::bundle::TAGMANIFEST;
use airlock::digest::Sha256Digest;
use airlock::dsse::Envelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = airlock_fuzz::demo_key();
    if let Ok(env) = serde_json::from_slice::<Envelope>(data) {
        let _ = env.payload_bytes();
        let _ = env.verify_with(key);
        let _ = env.to_json();
    }
    let tags = airlock_fuzz::seed_tags();
    let tagmanifest = &tags.files[TAGMANIFEST];
    let _ = airlock::signing::check(&key.id, data, None, tagmanifest);
    let dsse_path = airlock::signing::dsse_path(&key.id);
    let _ = airlock::signing::check(
        &key.id,
        &tags.signatures[&dsse_path],
        Some(data),
        tagmanifest,
    );
    let mut events = tags.custody.clone();
    events.insert("custody/0002-scanned.dsse.json".into(), data.to_vec());
    let _ = airlock::custody::check_chain(&events, &Sha256Digest::of(tagmanifest));
});
