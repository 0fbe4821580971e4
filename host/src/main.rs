use std::process::ExitCode;

fn main() -> ExitCode {
    caxton::cli::main()
}
