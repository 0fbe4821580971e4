use std::process::ExitCode;

fn main() -> ExitCode {
    // SAFETY: first statement of the process; no other thread exists yet.
    unsafe { caxton_models::fix_thread_count() };
    // Everything Caxton writes (the database, the admin token, caches,
    // backups, configuration) is its user's alone: 0600 files, 0700
    // directories, whatever the login's umask says.
    #[cfg(unix)]
    // SAFETY: umask only sets the process's file-creation mask.
    unsafe {
        libc::umask(0o077);
    }
    caxton::cli::main()
}
