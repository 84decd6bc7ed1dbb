//! The volume map (`volumes.dsse.json`: a DSSE envelope whose payload is an
//! in-toto statement of a `VolumeMap`), the volume marker (`volume.json`),
//! volume file names and `--volume-size` values from untrusted bytes.
#![no_main]
use airlock::dsse::{Envelope, Statement};
use airlock::volumes::{parse_size, parse_volume_name, Marker, VolumeMap};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<Statement<VolumeMap>>(data);
    let _ = serde_json::from_slice::<Marker>(data);
    if let Ok(env) = serde_json::from_slice::<Envelope>(data) {
        let _ = env.verify_with(airlock_fuzz::demo_key());
        if let Ok(payload) = env.payload_bytes() {
            if let Ok(st) = serde_json::from_slice::<Statement<VolumeMap>>(&payload) {
                for piece in st.predicate.volumes.iter().flatten() {
                    let _ = piece.entry_name();
                }
            }
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = parse_volume_name(s);
        let _ = parse_size(s);
    }
});
