//! Every command that takes `--device` checks it first: a GPU that cannot be used stops the
//! command with one message (no CUDA in this build, no driver, no GPU, no such GPU) before any
//! file is read or model loaded.

use clap::ArgMatches;

/// The `--device` value of the innermost subcommand that has one.
fn device_flag(m: &ArgMatches) -> Option<String> {
    let mut found = None;
    let mut cur = m;
    loop {
        if let Ok(Some(d)) = cur.try_get_one::<String>("device") {
            found = Some(d.clone());
        }
        match cur.subcommand() {
            Some((_, sub)) => cur = sub,
            None => return found,
        }
    }
}

/// Fails with the device's message when the command asks for a device that cannot be used.
pub fn check(m: &ArgMatches) -> anyhow::Result<()> {
    match device_flag(m) {
        Some(d) if d != "cpu" => tuna_core::pick_device(&d).map(|_| ()).map_err(Into::into),
        _ => Ok(()),
    }
}
