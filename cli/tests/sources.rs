//! Build sources and outputs end to end: `ADD <url>` against an HTTP server the test runs,
//! `ADD <git url>` from a `git daemon` on loopback, a context tar on stdin, `--output
//! type=local|tar`, and base images loaded from OCI layouts and archives. Results are read
//! back with umoci, skopeo and tar; rebuilds are checked from the progress stream.

mod common;

use common::{events, ok, ran, strata, text, unpack, write, TempDir};

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// One file the test server serves.
#[derive(Clone, Default)]
struct Served {
    body: Vec<u8>,
    etag: Option<String>,
    last_modified: Option<String>,
}

/// An HTTP/1.1 server on a free loopback port, one thread, one request per connection.
/// It honours `If-None-Match` and counts the bodies it sends per path.
struct HttpServer {
    port: u16,
    files: Arc<Mutex<HashMap<String, Served>>>,
    bodies_sent: Arc<Mutex<HashMap<String, usize>>>,
}

impl HttpServer {
    fn start() -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let files: Arc<Mutex<HashMap<String, Served>>> = Arc::default();
        let bodies_sent: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let (f, b) = (files.clone(), bodies_sent.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = serve(stream, &f, &b);
            }
        });
        HttpServer {
            port,
            files,
            bodies_sent,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn set(&self, path: &str, served: Served) {
        self.files.lock().unwrap().insert(path.into(), served);
    }

    fn bodies_sent(&self, path: &str) -> usize {
        self.bodies_sent
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

fn serve(
    stream: TcpStream,
    files: &Mutex<HashMap<String, Served>>,
    bodies_sent: &Mutex<HashMap<String, usize>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut if_none_match = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("if-none-match") {
                if_none_match = Some(v.trim().to_string());
            }
        }
    }
    let found = files.lock().unwrap().get(&path).cloned();
    let mut out = stream;
    let Some(file) = found else {
        return out.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    };
    let mut head = String::new();
    if let Some(etag) = &file.etag {
        head.push_str(&format!("ETag: {etag}\r\n"));
    }
    if let Some(lm) = &file.last_modified {
        head.push_str(&format!("Last-Modified: {lm}\r\n"));
    }
    if file.etag.is_some() && if_none_match.as_deref() == file.etag.as_deref() {
        return out.write_all(
            format!("HTTP/1.1 304 Not Modified\r\n{head}Connection: close\r\n\r\n").as_bytes(),
        );
    }
    out.write_all(
        format!(
            "HTTP/1.1 200 OK\r\n{head}Content-Length: {}\r\nConnection: close\r\n\r\n",
            file.body.len()
        )
        .as_bytes(),
    )?;
    if method == "GET" {
        out.write_all(&file.body)?;
        *bodies_sent.lock().unwrap().entry(path).or_default() += 1;
    }
    Ok(())
}

/// A file under the repository's `testdata/build/`.
fn testdata(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/build")
        .join(path)
}

fn sha256(data: &[u8]) -> String {
    strata_oci::Digest::of(data).to_string()
}

#[test]
fn add_url_downloads_rechecks_and_verifies_checksums() {
    let server = HttpServer::start();
    server.set(
        "/files/hello.txt",
        Served {
            body: b"hello over http\n".to_vec(),
            etag: Some("\"v1\"".into()),
            last_modified: Some("Wed, 21 Oct 2015 07:28:00 GMT".into()),
        },
    );
    // No ETag: every build downloads again and compares content.
    server.set(
        "/plain/data.bin",
        Served {
            body: vec![7u8; 300_000],
            ..Default::default()
        },
    );
    let tmp = TempDir::new("add-url");
    let ctx = tmp.0.join("ctx");
    let root = tmp.0.join("root");
    let pinned = sha256(&vec![7u8; 300_000]);
    let dockerfile = std::fs::read_to_string(testdata("add-url/Dockerfile")).unwrap();
    assert!(dockerfile.contains(&pinned));
    write(&ctx, &[("Dockerfile", &dockerfile)]);
    let c = ctx.to_str().unwrap();
    let base = format!("BASE={}", server.url(""));
    let build = |tag: &str| {
        ok(
            &root,
            &[
                "build",
                "--progress",
                "rawjson",
                "--build-arg",
                &base,
                "-t",
                tag,
                c,
            ],
        )
    };

    let first = build("web:1");
    assert!(!ran(&first).is_empty());
    let id1 = text(&first.stdout).trim().to_string();
    let layout = format!("{}:1", root.join("v1/content").display());
    let rootfs = unpack(&layout, &tmp).join("rootfs");
    let hello = rootfs.join("hello.txt");
    assert_eq!(std::fs::read(&hello).unwrap(), b"hello over http\n");
    let meta = std::fs::metadata(&hello).unwrap();
    // BuildKit writes downloads 0600, with the mtime of Last-Modified.
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    assert_eq!(meta.mtime(), 1_445_412_480);
    let bin = std::fs::metadata(rootfs.join("bin/hello")).unwrap();
    assert_eq!(bin.permissions().mode() & 0o7777, 0o755);
    assert_eq!((bin.uid(), bin.gid()), (12, 34));
    let data = rootfs.join("data/data.bin");
    assert_eq!(std::fs::read(&data).unwrap(), vec![7u8; 300_000]);
    // No Last-Modified: the epoch.
    assert_eq!(std::fs::metadata(&data).unwrap().mtime(), 0);
    assert_eq!(
        std::fs::read(rootfs.join("pinned/data.bin")).unwrap(),
        vec![7u8; 300_000]
    );
    let _ = std::fs::remove_dir_all(tmp.0.join("unpacked"));

    // Nothing changed: the ETag'd file is not downloaded again, the other one is
    // re-read and found identical, so nothing runs and the image is the same.
    let (hello_before, data_before) = (
        server.bodies_sent("/files/hello.txt"),
        server.bodies_sent("/plain/data.bin"),
    );
    let second = build("web:2");
    assert_eq!(ran(&second), Vec::<String>::new(), "{:?}", events(&second));
    assert_eq!(text(&second.stdout).trim(), id1);
    assert_eq!(server.bodies_sent("/files/hello.txt"), hello_before);
    assert_eq!(server.bodies_sent("/plain/data.bin"), data_before + 1);

    // New content behind the same URL re-runs the steps that add it, and only those.
    server.set(
        "/files/hello.txt",
        Served {
            body: b"hello again\n".to_vec(),
            etag: Some("\"v2\"".into()),
            last_modified: Some("Wed, 21 Oct 2015 07:29:00 GMT".into()),
        },
    );
    let data_before = server.bodies_sent("/plain/data.bin");
    let third = build("web:3");
    let third_ran = ran(&third);
    assert!(
        third_ran.iter().any(|n| n.contains("/hello.txt")),
        "{third_ran:?}"
    );
    assert_ne!(text(&third.stdout).trim(), id1);
    // The steps after it build on a new parent and run again, but the pinned source stays
    // cached: data.bin is fetched once, for the unpinned ADD's key only.
    assert_eq!(server.bodies_sent("/plain/data.bin"), data_before + 1);
    let layout = format!("{}:3", root.join("v1/content").display());
    let rootfs = unpack(&layout, &tmp).join("rootfs");
    assert_eq!(
        std::fs::read(rootfs.join("bin/hello")).unwrap(),
        b"hello again\n"
    );

    // A wrong --checksum fails at its line with BuildKit's text.
    let wrong = sha256(b"something else");
    write(
        &ctx,
        &[(
            "Dockerfile",
            &format!(
                "FROM scratch\nADD --checksum={wrong} {} /x\n",
                server.url("/files/hello.txt")
            ),
        )],
    );
    let out = strata(&root, &["build", "--progress", "plain", c]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    let got = sha256(b"hello again\n");
    assert!(
        err.contains(&format!(
            "digest mismatch for {}: {got} (expected: {wrong})",
            server.url("/files/hello.txt")
        )),
        "{err}"
    );
    assert!(err.contains(":2"), "{err}");

    // A missing file is the server's status, not an empty file.
    write(
        &ctx,
        &[(
            "Dockerfile",
            &format!("FROM scratch\nADD {} /x\n", server.url("/nope")),
        )],
    );
    let out = strata(&root, &["build", "--progress", "plain", c]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("invalid response status 404"), "{err}");
}

/// One entry of a tree, as compared between exporters.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    kind: &'static str,
    mode: u32,
    owner: (u32, u32),
    mtime: i64,
    link: Option<String>,
    content: Option<Vec<u8>>,
    /// Index of the first path sharing this inode, for hard links.
    inode_group: Option<String>,
}

/// Every entry under `dir` by relative path; `owners` false records 0:0 for all.
fn tree(dir: &Path, owners: bool) -> std::collections::BTreeMap<String, Entry> {
    let mut out = std::collections::BTreeMap::new();
    let mut inodes: HashMap<u64, String> = HashMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut names: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for path in names {
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let ft = meta.file_type();
            let kind = if ft.is_dir() {
                stack.push(path.clone());
                "dir"
            } else if ft.is_symlink() {
                "symlink"
            } else if ft.is_file() {
                "file"
            } else {
                "other"
            };
            let inode_group = (kind == "file" && meta.nlink() > 1)
                .then(|| inodes.entry(meta.ino()).or_insert(rel.clone()).clone());
            out.insert(
                rel,
                Entry {
                    kind,
                    mode: meta.mode() & 0o7777,
                    owner: if owners {
                        (meta.uid(), meta.gid())
                    } else {
                        (0, 0)
                    },
                    mtime: meta.mtime(),
                    link: ft
                        .is_symlink()
                        .then(|| std::fs::read_link(&path).unwrap().to_string_lossy().into()),
                    content: ft.is_file().then(|| std::fs::read(&path).unwrap()),
                    inode_group,
                },
            );
        }
    }
    out
}

#[test]
fn output_local_and_tar_hold_the_image_filesystem() {
    if !common::can_run_sandboxes() {
        return;
    }
    let tmp = TempDir::new("rootfs-out");
    let root = common::store_with_busybox(&tmp);
    let ctx = tmp.0.join("ctx");
    write(
        &ctx,
        &[
            (
                "Dockerfile",
                "FROM busybox\n\
                 COPY --chmod=640 --chown=7:8 a.txt /app/\n\
                 RUN rm /bin/vi && ln /app/a.txt /app/hard && ln -s ../app/a.txt /etc/a-link \
                 && mkdir -p /deep/er && rm -rf /deep && mkdir /deep && touch /deep/new\n",
            ),
            ("a.txt", "alpha\n"),
        ],
    );
    let local = tmp.0.join("local-out");
    // An existing destination is merged into: stale files stay, clashing ones are replaced.
    write(
        &local,
        &[("stale.txt", "old\n"), ("app", "a file where a dir goes\n")],
    );
    let tar_file = tmp.0.join("rootfs.tar");
    ok(
        &root,
        &[
            "build",
            "-t",
            "out:1",
            "--output",
            &format!("type=local,dest={}", local.display()),
            "--output",
            &format!("type=tar,dest={}", tar_file.display()),
            ctx.to_str().unwrap(),
        ],
    );
    // Stdout as the destination: only tar bytes there, no image id.
    let piped = ok(
        &root,
        &[
            "build",
            "--output",
            "type=tar,dest=-",
            ctx.to_str().unwrap(),
        ],
    );
    assert_eq!(piped.stdout, std::fs::read(&tar_file).unwrap());

    // The reference: umoci's unpack of the image the same build stored.
    let layout = format!("{}:1", root.join("v1/content").display());
    let rootfs = unpack(&layout, &tmp).join("rootfs");
    let want = tree(&rootfs, true);
    assert!(!want.contains_key("bin/vi"));
    assert!(want.contains_key("deep/new") && !want.contains_key("deep/er"));
    assert_eq!(want["app/a.txt"].owner, (7, 8));
    assert_eq!(want["app/hard"].inode_group.as_deref(), Some("app/a.txt"));

    // type=local: the same tree, every entry owned by the user who ran the build.
    assert_eq!(
        std::fs::read_to_string(local.join("stale.txt")).unwrap(),
        "old\n"
    );
    std::fs::remove_file(local.join("stale.txt")).unwrap();
    let me = (
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw(),
    );
    let got = tree(&local, true);
    for (path, entry) in &got {
        assert_eq!(entry.owner, me, "{path}");
    }
    assert_eq!(tree(&local, false), tree(&rootfs, false));

    // type=tar: GNU tar extracts the same tree, owners included.
    let extracted = tmp.0.join("tar-out");
    std::fs::create_dir_all(&extracted).unwrap();
    common::tool(
        "tar",
        &[
            "-xpf",
            tar_file.to_str().unwrap(),
            "--numeric-owner",
            "-C",
            extracted.to_str().unwrap(),
        ],
    );
    assert_eq!(tree(&extracted, true), want);
    let listing = common::tool("tar", &["-tvf", tar_file.to_str().unwrap()]);
    assert!(listing.contains("app/hard link to app/a.txt"), "{listing}");
    let names = common::tool("tar", &["-tf", tar_file.to_str().unwrap()]);
    assert!(
        names
            .lines()
            .all(|n| !n.starts_with("./") && !n.starts_with('/')),
        "{names}"
    );

    let bad = strata(
        &root,
        &["build", "--output", "type=local", ctx.to_str().unwrap()],
    );
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("needs dest=DIR"),
        "{}",
        text(&bad.stderr)
    );
}

/// Runs `strata --root ROOT ARGS` with `input` on stdin.
fn strata_with_stdin(root: &Path, args: &[&str], input: &[u8]) -> std::process::Output {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

/// Entries left in the store's staging area (per-process directories).
fn staged_entries(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(owners) = std::fs::read_dir(root.join("v1/tmp")) else {
        return out;
    };
    for owner in owners.flatten() {
        if let Ok(inner) = std::fs::read_dir(owner.path()) {
            for e in inner.flatten() {
                if let Ok(deeper) = std::fs::read_dir(e.path()) {
                    out.extend(deeper.flatten().map(|d| d.path().display().to_string()));
                }
            }
        }
    }
    out
}

#[test]
fn context_tar_on_stdin_in_every_compression() {
    let tmp = TempDir::new("stdin-tar");
    let ctx = tmp.0.join("ctx");
    write(
        &ctx,
        &[
            ("Dockerfile", "FROM scratch\nCOPY . /src/\n"),
            ("sub/Alt.Dockerfile", "FROM scratch\nCOPY app.txt /alt/\n"),
            ("app.txt", "app\n"),
            ("ignored.txt", "no\n"),
            (".dockerignore", "ignored.txt\n"),
        ],
    );
    let root = tmp.0.join("root");
    let stat_files = || {
        std::fs::read_dir(root.join("v1/context-stat"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    for (flag, tag) in [
        ("-cf", "plain"),
        ("-czf", "gzip"),
        ("-cjf", "bzip2"),
        ("-cJf", "xz"),
        ("--zstd -cf", "zstd"),
    ] {
        let archive = tmp.0.join(format!("ctx-{tag}.tar"));
        let mut args: Vec<&str> = flag.split(' ').collect();
        let archive_str = archive.to_str().unwrap().to_string();
        args.push(&archive_str);
        args.extend(["-C", ctx.to_str().unwrap(), "."]);
        common::tool("tar", &args);
        let bytes = std::fs::read(&archive).unwrap();
        let name = format!("stdin:{tag}");
        let out = strata_with_stdin(&root, &["build", "-t", &name, "-"], &bytes);
        assert!(out.status.success(), "{tag}: {}", text(&out.stderr));
        let layout = format!("{}:{tag}", root.join("v1/content").display());
        let _ = std::fs::remove_dir_all(tmp.0.join("unpacked"));
        let rootfs = unpack(&layout, &tmp).join("rootfs");
        assert_eq!(
            std::fs::read_to_string(rootfs.join("src/app.txt")).unwrap(),
            "app\n",
            "{tag}"
        );
        assert!(rootfs.join("src/sub/Alt.Dockerfile").exists(), "{tag}");
        assert!(!rootfs.join("src/ignored.txt").exists(), "{tag}");
        // The unpacked context and its stat cache are gone after the build.
        assert_eq!(staged_entries(&root), Vec::<String>::new(), "{tag}");
        assert_eq!(stat_files(), 0, "{tag}");
    }

    // -f names a file inside the archive.
    let bytes = std::fs::read(tmp.0.join("ctx-gzip.tar")).unwrap();
    let out = strata_with_stdin(
        &root,
        &["build", "-t", "stdin:alt", "-f", "sub/Alt.Dockerfile", "-"],
        &bytes,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(tmp.0.join("unpacked"));
    let rootfs = unpack(&format!("{}:alt", root.join("v1/content").display()), &tmp).join("rootfs");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("alt/app.txt")).unwrap(),
        "app\n"
    );
    let out = strata_with_stdin(&root, &["build", "-f", "../Dockerfile", "-"], &bytes);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("relative path inside the archive"),
        "{}",
        text(&out.stderr)
    );

    // Still a Dockerfile when stdin is not an archive.
    let out = strata_with_stdin(&root, &["build", "-"], b"FROM scratch\nENV A=1\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn a_hostile_context_tar_stays_inside_its_context() {
    let tmp = TempDir::new("stdin-hostile");
    let root = tmp.0.join("root");
    // Built by hand: GNU tar would strip the `..` and the leading `/`.
    let mut tar = Vec::new();
    let mut entry = |name: &str, kind: u8, link: &str, data: &[u8]| {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[108..115].copy_from_slice(b"0000000");
        h[116..123].copy_from_slice(b"0000000");
        h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
        h[136..147].copy_from_slice(b"00000000000");
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        tar.extend_from_slice(&h);
        tar.extend_from_slice(data);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    };
    let outside = tmp.0.join("outside.txt");
    let climb = format!("../../../../../../..{}", outside.display());
    entry(&climb, b'0', "", b"climbed\n");
    entry(
        &format!("{}", tmp.0.join("abs.txt").display()),
        b'0',
        "",
        b"abs\n",
    );
    entry("escape", b'2', tmp.0.to_str().unwrap(), b"");
    entry("escape/through-link.txt", b'0', "", b"link\n");
    entry("Dockerfile", b'0', "", b"FROM scratch\nCOPY . /ctx/\n");
    tar.resize(tar.len() + 1024, 0);
    let out = strata_with_stdin(&root, &["build", "-t", "hostile:1", "-"], &tar);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Nothing was written beside the store.
    assert!(!outside.exists());
    assert!(!tmp.0.join("abs.txt").exists());
    assert!(!tmp.0.join("through-link.txt").exists());
    // Everything landed inside the context instead.
    let rootfs =
        unpack(&format!("{}:1", root.join("v1/content").display()), &tmp).join("rootfs/ctx");
    let mut found = Vec::new();
    for e in walk_files(&rootfs) {
        found.push(e.strip_prefix(&rootfs).unwrap().display().to_string());
    }
    assert!(
        found.iter().any(|f| f.ends_with("outside.txt")),
        "{found:?}"
    );
    assert!(found.iter().any(|f| f.ends_with("abs.txt")), "{found:?}");
    assert!(
        found.iter().any(|f| f.ends_with("through-link.txt")),
        "{found:?}"
    );
}

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

/// A `git daemon` serving `base` on a free loopback port; killed when dropped.
struct GitDaemon {
    child: std::process::Child,
    port: u16,
}

impl GitDaemon {
    fn start(base: &Path) -> GitDaemon {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // git-daemon itself: `git daemon` would run it as a child that outlives a kill.
        let exec_path = git(base, &["--exec-path"]);
        let child = std::process::Command::new(Path::new(&exec_path).join("git-daemon"))
            .args(["--export-all", "--reuseaddr", "--listen=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("git daemon");
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return GitDaemon { child, port };
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
        panic!("git daemon did not start on port {port}");
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs git in `dir` with a fixed identity; its trimmed stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@e",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

/// Whether the git CLI is here; CI must have it.
fn have_git() -> bool {
    let ok = std::process::Command::new("git")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok || std::env::var_os("CI").is_none(), "CI must have git");
    if !ok {
        eprintln!("skipped: needs git");
    }
    ok
}

#[test]
fn add_git_checks_out_refs_subdirs_and_keeps_git_dirs() {
    if !have_git() {
        return;
    }
    let tmp = TempDir::new("add-git");
    let work = tmp.0.join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q"]);
    write(&work, &[("a.txt", "first\n"), ("sub/b.txt", "in sub\n")]);
    write(&work, &[("run.sh", "#!/bin/sh\necho hi\n")]);
    std::fs::set_permissions(work.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "one"]);
    git(&work, &["tag", "-a", "v1", "-m", "release one"]);
    let first = git(&work, &["rev-parse", "HEAD"]);
    let repos = tmp.0.join("repos");
    std::fs::create_dir_all(&repos).unwrap();
    git(
        &tmp.0,
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            repos.join("proj.git").to_str().unwrap(),
        ],
    );
    let daemon = GitDaemon::start(&repos);
    let remote = format!("git://127.0.0.1:{}/proj.git", daemon.port);

    let ctx = tmp.0.join("ctx");
    let root = tmp.0.join("root");
    let dockerfile = std::fs::read_to_string(testdata("add-git/Dockerfile")).unwrap();
    write(&ctx, &[("Dockerfile", &dockerfile)]);
    let c = ctx.to_str().unwrap();
    let args = [
        format!("REMOTE={remote}"),
        format!("FIRST={first}"),
        format!("FIRST_SHORT={}", &first[..12]),
    ];
    let build = |tag: &str| {
        let mut argv = vec!["build", "--progress", "rawjson", "-t", tag];
        for a in &args {
            argv.extend(["--build-arg", a.as_str()]);
        }
        argv.push(c);
        ok(&root, &argv)
    };
    let one = build("g:1");
    let id1 = text(&one.stdout).trim().to_string();
    let rootfs = unpack(&format!("{}:1", root.join("v1/content").display()), &tmp).join("rootfs");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("src/a.txt")).unwrap(),
        "first\n"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("src/sub/b.txt")).unwrap(),
        "in sub\n"
    );
    let mode = std::fs::metadata(rootfs.join("src/run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111, "{mode:o}");
    assert!(!rootfs.join("src/.git").exists());
    // `#v1:sub`: the tag's subdirectory, its contents at the destination.
    assert_eq!(
        std::fs::read_to_string(rootfs.join("sub/b.txt")).unwrap(),
        "in sub\n"
    );
    assert!(!rootfs.join("sub/a.txt").exists());
    assert_eq!(
        std::fs::read_to_string(rootfs.join("pinned/a.txt")).unwrap(),
        "first\n"
    );
    // --keep-git-dir: a repository git itself reads, at the commit, origin the remote.
    let kept = rootfs.join("kept");
    assert_eq!(git(&kept, &["rev-parse", "HEAD"]), first);
    assert_eq!(git(&kept, &["remote", "get-url", "origin"]), remote);
    assert_eq!(git(&kept, &["status", "--porcelain"]), "");
    let _ = std::fs::remove_dir_all(tmp.0.join("unpacked"));

    // The refs did not move: nothing runs, same image.
    let two = build("g:2");
    assert_eq!(ran(&two), Vec::<String>::new(), "{:?}", events(&two));
    assert_eq!(text(&two.stdout).trim(), id1);

    // main moves: its checkout is redone and holds the new commit.
    write(&work, &[("a.txt", "second\n")]);
    git(&work, &["commit", "-q", "-am", "two"]);
    git(
        &work,
        &[
            "push",
            "-q",
            repos.join("proj.git").to_str().unwrap(),
            "main",
        ],
    );
    let three = build("g:3");
    assert!(
        ran(&three).iter().any(|n| n.contains("#main /src/")),
        "{:?}",
        ran(&three)
    );
    let rootfs = unpack(&format!("{}:3", root.join("v1/content").display()), &tmp).join("rootfs");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("src/a.txt")).unwrap(),
        "second\n"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("pinned/a.txt")).unwrap(),
        "first\n"
    );
    assert_eq!(
        git(&rootfs.join("kept"), &["rev-parse", "HEAD"]),
        git(&work, &["rev-parse", "HEAD"])
    );

    // A checksum that does not match, and a ref the remote lacks, fail with their text.
    for (line, want) in [
        (
            format!("ADD --checksum=0123456789ab {remote}#main /x/"),
            "expected checksum to match 0123456789ab".to_string(),
        ),
        (
            format!("ADD {remote}#nosuch /x/"),
            format!("repository {remote} does not contain ref nosuch"),
        ),
    ] {
        write(&ctx, &[("Dockerfile", &format!("FROM scratch\n{line}\n"))]);
        let out = strata(&root, &["build", "--progress", "plain", c]);
        assert!(!out.status.success(), "{line}");
        let err = text(&out.stderr);
        assert!(err.contains(&want), "{line}: {err}");
    }
}

#[test]
fn base_images_load_from_oci_layouts_oci_archives_and_docker_archives() {
    let tmp = TempDir::new("load-formats");
    let (layout, _) =
        common::busybox::busybox_layout(&tmp.0.join("src"), "busybox:latest").unwrap();
    let source = format!("oci:{}:latest", layout.display());
    let oci_dir = tmp.0.join("oci-dir");
    let oci_tar = tmp.0.join("oci.tar");
    let docker_tar = tmp.0.join("docker.tar");
    // Made by skopeo, not by Strata: what other tools hand over.
    common::tool(
        "skopeo",
        &[
            "copy",
            "--quiet",
            &source,
            &format!("oci:{}:example.com/base/dir:1", oci_dir.display()),
        ],
    );
    common::tool(
        "skopeo",
        &[
            "copy",
            "--quiet",
            &source,
            &format!(
                "oci-archive:{}:example.com/base/archive:1",
                oci_tar.display()
            ),
        ],
    );
    common::tool(
        "skopeo",
        &[
            "copy",
            "--quiet",
            &source,
            &format!(
                "docker-archive:{}:example.com/base/docker:1",
                docker_tar.display()
            ),
        ],
    );
    let ctx = tmp.0.join("ctx");
    write(&ctx, &[("hello.txt", "hi\n")]);
    for (input, name) in [
        (&oci_dir, "example.com/base/dir:1"),
        (&oci_tar, "example.com/base/archive:1"),
        (&docker_tar, "example.com/base/docker:1"),
    ] {
        let root = tmp.0.join(format!(
            "root-{}",
            input.file_name().unwrap().to_string_lossy()
        ));
        let loaded = ok(&root, &["load", "-i", input.to_str().unwrap()]);
        assert!(
            text(&loaded.stdout).contains(&format!("Loaded image: {name}")),
            "{input:?}: {}",
            text(&loaded.stdout)
        );
        write(
            &ctx,
            &[(
                "Dockerfile",
                &format!("FROM {name}\nCOPY hello.txt /hello.txt\n"),
            )],
        );
        let out = tmp.0.join(format!(
            "out-{}",
            input.file_name().unwrap().to_string_lossy()
        ));
        ok(
            &root,
            &[
                "build",
                "-t",
                "from-loaded:1",
                "--output",
                &format!("type=local,dest={}", out.display()),
                ctx.to_str().unwrap(),
            ],
        );
        // The base's files under the new step's.
        assert!(out.join("bin/busybox").is_file(), "{input:?}");
        assert_eq!(
            std::fs::read_to_string(out.join("hello.txt")).unwrap(),
            "hi\n"
        );
        // skopeo reads the result, with the base's layer first.
        let image = format!("oci:{}:1", root.join("v1/content").display());
        let inspect: serde_json::Value =
            serde_json::from_str(&common::tool("skopeo", &["inspect", &image])).unwrap();
        assert_eq!(inspect["Layers"].as_array().unwrap().len(), 2, "{inspect}");
    }
}

#[test]
fn build_contexts_name_images_from_oci_layouts_and_the_store() {
    let tmp = TempDir::new("build-context");
    let (layout, _) =
        common::busybox::busybox_layout(&tmp.0.join("src"), "busybox:latest").unwrap();
    let ctx_layout = tmp.0.join("ctx-layout");
    common::tool(
        "skopeo",
        &[
            "copy",
            "--quiet",
            &format!("oci:{}:latest", layout.display()),
            &format!("oci:{}:v1", ctx_layout.display()),
        ],
    );
    let root = tmp.0.join("root");
    let ctx = tmp.0.join("ctx");
    write(
        &ctx,
        &[
            (
                "Dockerfile",
                "FROM base\nCOPY hello.txt /hello.txt\nCOPY --from=tools /bin/busybox /tools/bb\n",
            ),
            ("hello.txt", "hi\n"),
        ],
    );
    // `tools` comes from the store under another name.
    let archive = tmp.0.join("busybox.tar");
    let (src_layout, manifest) =
        common::busybox::busybox_layout(&tmp.0.join("src2"), "busybox:latest").unwrap();
    std::fs::write(
        &archive,
        common::busybox::docker_archive(&src_layout, &manifest, &["busybox:latest"]).unwrap(),
    )
    .unwrap();
    ok(&root, &["load", "-i", archive.to_str().unwrap()]);
    let out = tmp.0.join("out");
    ok(
        &root,
        &[
            "build",
            "-t",
            "ctx:1",
            "--build-context",
            &format!("base=oci-layout://{}:v1", ctx_layout.display()),
            "--build-context",
            "tools=docker-image://busybox:latest",
            "--output",
            &format!("type=local,dest={}", out.display()),
            ctx.to_str().unwrap(),
        ],
    );
    assert!(out.join("bin/busybox").is_file());
    assert!(out.join("tools/bb").is_file());
    assert_eq!(
        std::fs::read_to_string(out.join("hello.txt")).unwrap(),
        "hi\n"
    );
    // The layout's image was used by digest, never tagged.
    let listed = text(&ok(&root, &["images"]).stdout);
    assert!(!listed.contains("base"), "{listed}");

    // A tag the layout lacks, and a kind of context not supported, are named.
    for (spec, want) in [
        (
            format!("base=oci-layout://{}:v2", ctx_layout.display()),
            "has no image tagged \"v2\"",
        ),
        (
            "base=./somedir".to_string(),
            "only docker-image:// and oci-layout://",
        ),
    ] {
        let res = strata(
            &root,
            &["build", "--build-context", &spec, ctx.to_str().unwrap()],
        );
        assert!(!res.status.success(), "{spec}");
        assert!(
            text(&res.stderr).contains(want),
            "{spec}: {}",
            text(&res.stderr)
        );
    }
}
