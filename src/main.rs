fn main() -> std::process::ExitCode {
    bound_heap();
    airlock::cli::main()
}

/// Keeps glibc's malloc from holding freed memory resident, which at 200k
/// files was a fifth of verify's peak. glibc raises its mmap threshold each
/// time a large block it mapped is freed (up to 32 MiB), and the trim
/// threshold with it to twice that, so once a large vector has grown and
/// gone the heap keeps up to 64 MiB of freed memory and later vectors land
/// in it between live data; and each thread that allocates gets an arena
/// of its own, whose freed blocks stay with it (a tar.zst's decoding
/// thread). A fixed threshold keeps the default trim (128 KiB) and maps
/// each block of 4 MiB and more on its own, returned whole when freed; two
/// arenas serve airlock's few threads. Verify of 200k files as a directory:
/// 76 MiB before, 59 MiB after. The hashing threads' 1 MiB
/// buffers stay on the heap. The one unsafe call of the program, kept out
/// of the library.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn bound_heap() {
    // SAFETY: mallopt only sets parameters of the allocator; it runs before
    // any other thread exists, with valid parameters and values.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn bound_heap() {}
