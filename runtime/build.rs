//! Records the compiler that builds futurize, for `session_info()`: the
//! `rustc -V` line of the `RUSTC` cargo runs, as `FUTURIZE_RUSTC_VERSION`.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RUSTC");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(&rustc)
        .arg("-V")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_else(|| format!("{rustc} (version unknown)"));
    println!("cargo:rustc-env=FUTURIZE_RUSTC_VERSION={version}");
}
