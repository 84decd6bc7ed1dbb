//! The zstd frame and block header parser (`zstdraw::frame_at`) that maps a
//! tar.zst's frames of raw blocks to file offsets: any bytes, frame after
//! frame. Whatever it calls a frame of raw blocks must lie inside the input
//! and decode (by libzstd) to exactly the bytes its extents name.
#![no_main]
use std::path::Path;

use airlock::zstdraw::{frame_at, Frame, MAX_RUNS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let file = Path::new("fuzz.tar.zst");
    let mut at = 0u64;
    while at < data.len() as u64 {
        let f = match frame_at(data, at, file) {
            Ok(Frame::Raw(f)) => f,
            Ok(Frame::Other) => break,
            Err(e) => {
                assert!(e.at >= at && e.at <= data.len() as u64, "{e}");
                break;
            }
        };
        assert!(f.start == at && f.end > at && f.end <= data.len() as u64);
        assert!(!f.runs.is_empty() && f.runs.len() <= MAX_RUNS);
        let frame = &data[f.start as usize..f.end as usize];
        let decoded = zstd::stream::decode_all(frame).expect("a raw frame decodes");
        assert_eq!(decoded.len() as u64, f.content);
        let mut mapped = Vec::with_capacity(decoded.len());
        for e in f.extents(0, f.content).expect("the whole content") {
            for i in 0..e.count {
                let s = (e.at + i * e.stride) as usize;
                mapped.extend_from_slice(&data[s..s + e.len as usize]);
            }
        }
        assert!(mapped == decoded, "the extents name the decoded bytes");
        // A part of it, and byte by byte where it lies.
        let (from, len) = (f.content / 3, f.content / 2);
        let part: Vec<u8> = f
            .extents(from, len)
            .expect("inside")
            .iter()
            .flat_map(|e| (0..e.count).map(move |i| (e.at + i * e.stride, e.len)))
            .flat_map(|(s, n)| data[s as usize..(s + n) as usize].to_vec())
            .collect();
        assert!(part[..] == decoded[from as usize..(from + len) as usize]);
        for c in (0..f.content).step_by(97) {
            let (p, run) = f.locate(c).expect("inside");
            assert!(run > 0 && data[p as usize] == decoded[c as usize]);
        }
        at = f.end;
    }
});
