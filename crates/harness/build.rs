//! Bakes the commit the harness is built from into it (`ECHOLAB_BUILD_COMMIT`), so a run
//! names its source even when its binary runs from a copy outside the checkout (a
//! quiet-machine copy, another host), where asking git at run time finds no repository.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

fn main() {
    let commit = git(&["describe", "--always", "--dirty"]).unwrap_or_default();
    println!("cargo:rustc-env=ECHOLAB_BUILD_COMMIT={commit}");
    // Run again when a commit or checkout moves HEAD. Not on the index: `describe
    // --dirty` itself refreshes it, so watching it rebuilt the harness on the next cargo
    // command after every build. An edit since does not rerun this, so a built-in `-dirty`
    // can be stale: the run prefers asking git beside the binary (see machine.rs).
    for path in ["HEAD", "logs/HEAD"] {
        if let Some(path) = git(&["rev-parse", "--git-path", path]) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
