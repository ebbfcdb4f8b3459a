//! Writes a busybox base image (from the host's Debian `busybox-static`) as a `docker save`
//! archive, for `strata load` on a machine that cannot pull images:
//!
//! ```sh
//! cargo run -p strata-worker --example make-busybox-image -- busybox.tar [NAME]
//! strata load -i busybox.tar
//! ```
//!
//! NAME defaults to `busybox:latest`. The image is built by the same code the tests use.

#[path = "../tests/common/busybox.rs"]
mod busybox;

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(out) = args.next().map(PathBuf::from) else {
        eprintln!("usage: make-busybox-image OUT.tar [NAME]");
        return ExitCode::from(2);
    };
    let name = args
        .next()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "busybox:latest".to_owned());
    match run(&out, &name) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ERROR: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(out: &std::path::Path, name: &str) -> std::io::Result<()> {
    let work = std::env::temp_dir().join(format!("strata-make-busybox-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let result = (|| {
        let (layout, manifest) = busybox::busybox_layout(&work, name)?;
        let bytes = busybox::docker_archive(&layout, &manifest, &[name])?;
        let temp = out.with_extension("tar.partial");
        std::fs::write(&temp, bytes)?;
        std::fs::rename(&temp, out)
    })();
    let _ = std::fs::remove_dir_all(&work);
    result
}
