use std::process::ExitCode;

fn main() -> ExitCode {
    // SAFETY: first statement of the process; no other thread exists yet.
    unsafe { caxton_models::fix_thread_count() };
    caxton::cli::main()
}
