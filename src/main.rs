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
/// thread). The threshold fixed at glibc's initial 128 KiB keeps the
/// default trim (128 KiB) and maps each larger block on its own, returned
/// whole when freed (the buffers that size are each thread's, made once);
/// two arenas serve airlock's few threads. Verify of 200k files as a
/// directory: 76 MiB before, 59 MiB after. The one unsafe call of the
/// program, kept out of the library.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn bound_heap() {
    // SAFETY: mallopt only sets parameters of the allocator; it runs before
    // any other thread exists, with valid parameters and values.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn bound_heap() {}
