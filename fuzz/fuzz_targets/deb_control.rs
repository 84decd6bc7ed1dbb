//! A `.deb`'s control file from untrusted bytes (`apt::read_control`): the
//! `ar` archive, the `debian-binary` member, `control.tar` plain or
//! compressed (gzip, xz after the LZMA2 chunk-size pre-check, zstd), and
//! the `control` file in it; then the control file as deb822.
//!
//! The first byte chooses what the rest is: 0, the whole `.deb`; 1 to 4, the
//! control member (`control.tar`, `.gz`, `.xz`, `.zst`), wrapped here in a
//! well-formed `ar` archive so every input reaches the decompressor.
#![no_main]
use airlock::sources::apt;
use libfuzzer_sys::fuzz_target;

const MEMBERS: [&str; 4] = [
    "control.tar",
    "control.tar.gz",
    "control.tar.xz",
    "control.tar.zst",
];

fn ar_member(out: &mut Vec<u8>, name: &str, data: &[u8]) {
    let header = format!(
        "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
        name,
        0,
        0,
        0,
        100644,
        data.len()
    );
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(b'\n');
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let deb = match (mode % 5) as usize {
        0 => rest.to_vec(),
        m => {
            let mut deb = b"!<arch>\n".to_vec();
            ar_member(&mut deb, "debian-binary", b"2.0\n");
            ar_member(&mut deb, MEMBERS[m - 1], rest);
            deb
        }
    };
    let path = airlock_fuzz::put("deb/x.deb", &deb);
    if let Ok(control) = apt::read_control(&path) {
        if let Ok(stanzas) = apt::parse_deb822(&control) {
            let _ = apt::lock_entries(&stanzas);
        }
    }
});
