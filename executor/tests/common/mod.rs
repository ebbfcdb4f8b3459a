//! Test fixtures: a busybox-static root filesystem, temporary directories, backends.
#![allow(dead_code)]

use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use strata_executor::{Backend, Executor, Rootfs, RunSpec};

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "strata-exec-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Why the sandbox tests cannot run here, if they cannot.
pub fn unavailable() -> Option<&'static str> {
    if !rustix::process::geteuid().is_root() {
        return Some("not root");
    }
    if !Path::new("/bin/busybox").exists() {
        return Some("busybox-static not installed (apt-get install busybox-static)");
    }
    None
}

/// Skips the calling test (with a note) when sandboxes cannot run here.
#[macro_export]
macro_rules! require_sandbox {
    () => {
        if let Some(why) = common::unavailable() {
            // CI installs what these tests need (scripts/test): a skip there would hide a
            // missing install behind a green run.
            assert!(
                std::env::var_os("CI").is_none(),
                "sandbox tests cannot run in CI: {why}"
            );
            eprintln!("skipped: {why}");
            return;
        }
    };
}

/// A busybox rootfs built once per test process: /bin/busybox with every applet linked,
/// /etc/passwd (root, app, nobody), /etc/group (app in wheel and audio), /etc/motd, /tmp.
/// No /proc, /sys or /dev: the sandbox must create (and then remove) those mount targets.
pub fn base_layer() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        // Shared by test processes and kept between runs; keyed by the busybox binary and
        // built under a temporary name, then renamed into place.
        let m = std::fs::metadata("/bin/busybox").unwrap();
        let key = format!("v1-{}-{}", m.len(), m.mtime());
        let dir = std::env::temp_dir().join(format!("strata-exec-base-{key}"));
        if !dir.join("etc/group").exists() {
            let tmp = TempDir::new("base-build");
            build_busybox_rootfs(tmp.path());
            let _ = std::fs::rename(tmp.path(), &dir);
        }
        dir
    })
}

pub fn build_busybox_rootfs(dir: &Path) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    let list = std::process::Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = symlink("busybox", bin.join(applet));
        }
    }
    for d in ["etc", "root", "home/app", "tmp", "usr/bin", "var"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::set_permissions(dir.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n\
         app:x:1000:1000:app:/home/app:/bin/sh\n\
         nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("etc/group"),
        "root:x:0:\nwheel:x:10:app\naudio:x:29:app\napp:x:1000:\nnogroup:x:65534:\n",
    )
    .unwrap();
    std::fs::write(dir.join("etc/motd"), "welcome\n").unwrap();
    std::os::unix::fs::chown(dir.join("home/app"), Some(1000), Some(1000)).unwrap();
}

/// An overlay rootfs over the base layer with a fresh upper dir.
pub struct Layered {
    pub dir: TempDir,
}

impl Layered {
    pub fn new() -> Layered {
        let dir = TempDir::new("layer");
        std::fs::create_dir_all(dir.path().join("upper")).unwrap();
        std::fs::create_dir_all(dir.path().join("work")).unwrap();
        Layered { dir }
    }
    pub fn upper(&self) -> PathBuf {
        self.dir.path().join("upper")
    }
    pub fn rootfs(&self) -> Rootfs {
        self.rootfs_over(vec![base_layer().to_path_buf()])
    }
    pub fn rootfs_over(&self, lowerdirs: Vec<PathBuf>) -> Rootfs {
        Rootfs::Overlay {
            lowerdirs,
            upperdir: self.upper(),
            workdir: self.dir.path().join("work"),
        }
    }
    pub fn spec(&self, args: &[&str]) -> RunSpec {
        RunSpec::new(
            self.rootfs(),
            args.iter().map(|s| (*s).to_owned()).collect(),
        )
    }
    pub fn sh(&self, script: &str) -> RunSpec {
        self.spec(&["/bin/sh", "-c", script])
    }
}

/// Where the executors of this test process keep state.
pub fn state_dir() -> PathBuf {
    match std::env::var_os("STRATA_TEST_STATE_DIR") {
        Some(d) => PathBuf::from(d),
        None => std::env::temp_dir().join("strata-exec-state"),
    }
}

/// The runc binary, when installed.
pub fn runc_binary() -> Option<PathBuf> {
    [
        "/usr/sbin/runc",
        "/usr/bin/runc",
        "/usr/local/sbin/runc",
        "/usr/local/bin/runc",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// crun's binary, if installed.
pub fn crun_binary() -> Option<PathBuf> {
    ["/usr/bin/crun", "/usr/local/bin/crun", "/usr/sbin/crun"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// The native executor and, when installed, the runc and crun ones.
pub fn backends() -> Vec<(&'static str, &'static Executor)> {
    static NATIVE: OnceLock<Executor> = OnceLock::new();
    static RUNC: OnceLock<Option<Executor>> = OnceLock::new();
    static CRUN: OnceLock<Option<Executor>> = OnceLock::new();
    let native = NATIVE.get_or_init(|| Executor::new(Backend::Native, state_dir()).unwrap());
    let mut out = vec![("native", native)];
    let runc = RUNC.get_or_init(|| {
        runc_binary().map(|b| Executor::new(Backend::Runc(b), state_dir()).unwrap())
    });
    match runc {
        Some(r) => out.push(("runc", r)),
        None => {
            // scripts/test installs runc: in CI its absence fails instead of skipping.
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must have runc installed"
            );
            eprintln!("note: runc not installed; runc backend not tested")
        }
    }
    let crun = CRUN.get_or_init(|| {
        crun_binary().map(|b| Executor::new(Backend::Crun(b), state_dir()).unwrap())
    });
    match crun {
        Some(r) => out.push(("crun", r)),
        None => {
            // scripts/test installs crun: in CI its absence fails instead of skipping.
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must have crun installed"
            );
            eprintln!("note: crun not installed; crun backend not tested")
        }
    }
    out
}
