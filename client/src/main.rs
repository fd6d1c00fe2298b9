//! The `usercap` binary: parses the command line and runs it.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = usercap_client::Cli::parse();
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    ExitCode::from(usercap_client::run(&cli, &mut stdout, &mut stderr))
}
