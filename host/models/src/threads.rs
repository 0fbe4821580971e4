//! How many threads candle's kernels use, decided once.

/// Sets `RAYON_NUM_THREADS` to this machine's parallelism unless the user
/// set it.
///
/// candle asks for its thread count on every matrix product and, when the
/// variable is unset, answers by reading `/proc/cpuinfo` again: a tenth of
/// the time of embedding a search query went to that. With the variable
/// set it is one environment lookup.
///
/// # Safety
///
/// Changes the process environment: call it first thing in `main`, before
/// any other thread exists (see [`std::env::set_var`]).
pub unsafe fn fix_thread_count() {
    if std::env::var_os("RAYON_NUM_THREADS").is_some() {
        return;
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: the caller guarantees no other thread is running.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
}
