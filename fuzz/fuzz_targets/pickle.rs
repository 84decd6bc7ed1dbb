//! The pickle scanner (opcode walk, imports, memo, stack) and the pickle
//! sniffer from untrusted bytes.
#![no_main]
use airlock::pickle;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let result = pickle::scan(&mut &data[..]);
    let _ = pickle::acts(&result);
    if let Ok(scan) = &result {
        let _ = scan.unsafe_imports();
    }
    for n in [0, 1, 2, 16, data.len()] {
        let n = n.min(data.len());
        let _ = pickle::sniff(&data[..n], n == data.len());
    }
});
