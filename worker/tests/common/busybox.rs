//! A busybox base image built from the host's Debian `busybox-static`, written with
//! `strata-oci` (nothing is pulled: no network is needed). Shared by the worker's and the
//! CLI's tests and by the `make-busybox-image` example, through `#[path]`.
//!
//! The root filesystem: `/bin/busybox`, one symlink per applet where `busybox --list-full`
//! puts it (`/bin/sh`, `/usr/bin/env`…, all pointing at `/bin/busybox`), `/etc/passwd`,
//! `/etc/group`, `/tmp` (1777) and `/root` (0700). The image: one gzip layer, a config with
//! `PATH` and `CMD ["sh"]`, fixed timestamps, so the same busybox gives the same digests.

#![allow(dead_code)]

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use strata_oci::archive::{self, BlobSink, ExportImage, OciDir};
use strata_oci::config::{ContainerConfig, History, ImageConfig, RootFs};
use strata_oci::layer::{write_layer, SourceKind, WriteOptions};
use strata_oci::manifest::{ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME};
use strata_oci::{media_type, Compression, Descriptor, ImageIndex, ImageManifest};

/// Where Debian's busybox-static installs the binary.
pub fn busybox_binary() -> PathBuf {
    for candidate in ["/bin/busybox", "/usr/bin/busybox"] {
        if Path::new(candidate).is_file() {
            return PathBuf::from(candidate);
        }
    }
    panic!("busybox not found: apt-get install busybox-static");
}

/// Fills `dir` (created if needed) with a busybox root filesystem.
pub fn busybox_rootfs(dir: &Path) -> io::Result<()> {
    let binary = busybox_binary();
    fs::create_dir_all(dir.join("bin"))?;
    fs::copy(&binary, dir.join("bin/busybox"))?;
    fs::set_permissions(dir.join("bin/busybox"), fs::Permissions::from_mode(0o755))?;
    let list = Command::new(&binary).arg("--list-full").output()?;
    if !list.status.success() {
        return Err(io::Error::other("busybox --list-full failed"));
    }
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "bin/busybox" || applet.contains("..") {
            continue;
        }
        let path = dir.join(applet);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        if fs::symlink_metadata(&path).is_err() {
            symlink("/bin/busybox", &path)?;
        }
    }
    fs::create_dir_all(dir.join("etc"))?;
    fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    fs::write(dir.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    for (name, mode) in [("tmp", 0o1777), ("root", 0o700)] {
        fs::create_dir_all(dir.join(name))?;
        fs::set_permissions(dir.join(name), fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// The `linux/<arch>` of this machine in OCI terms.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Writes `rootfs` as a one-layer image named `name` (a full reference such as
/// `docker.io/library/busybox:latest`) into the OCI layout `layout` (created if needed).
/// Its `index.json` entry carries the tag as `ref.name` (what `skopeo oci:DIR:TAG` reads)
/// and the full name. Returns the manifest descriptor (without annotations).
pub fn write_image_layout(rootfs: &Path, layout: &Path, name: &str) -> io::Result<Descriptor> {
    let mut dir = OciDir::create(layout).map_err(io::Error::other)?;
    let options = WriteOptions {
        compression: Compression::gzip(),
        source: SourceKind::Plain,
        // Files are created now; clamping their times to the image's date makes the layer,
        // and so every digest, the same on every run.
        mtime_clamp: Some(1_704_067_200),
        ..WriteOptions::default()
    };
    let mut pending = dir.begin_blob()?;
    let layer = write_layer(rootfs, &options, &mut pending).map_err(io::Error::other)?;
    dir.commit_blob(pending, &layer.digest, layer.size)?;

    let created = Some("2024-01-01T00:00:00Z".to_owned());
    let config = ImageConfig {
        architecture: host_arch().to_owned(),
        os: "linux".to_owned(),
        created: created.clone(),
        config: ContainerConfig {
            env: vec![
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
            ],
            cmd: vec!["sh".to_owned()],
            ..ContainerConfig::default()
        },
        rootfs: RootFs {
            diff_ids: vec![layer.diff_id],
            ..RootFs::default()
        },
        history: vec![History {
            created,
            created_by: "busybox-static root filesystem".to_owned(),
            ..History::default()
        }],
        ..ImageConfig::default()
    };
    let config_bytes = config.to_json().map_err(io::Error::other)?;
    let config_descriptor = put(&mut dir, media_type::OCI_CONFIG, &config_bytes)?;
    let manifest = ImageManifest::oci(config_descriptor, vec![layer.oci_descriptor()]);
    let manifest_bytes = manifest.to_json().map_err(io::Error::other)?;
    let descriptor = put(&mut dir, media_type::OCI_MANIFEST, &manifest_bytes)?;

    let mut entry = descriptor.clone();
    let tag = archive::split_tag(name).1.unwrap_or("latest");
    entry
        .annotations
        .insert(ANNOTATION_REF_NAME.to_owned(), tag.to_owned());
    entry
        .annotations
        .insert(ANNOTATION_IMAGE_NAME.to_owned(), name.to_owned());
    dir.write_index(&ImageIndex::oci(vec![entry]))
        .map_err(io::Error::other)?;
    Ok(descriptor)
}

fn put(dir: &mut OciDir, media_type: &str, bytes: &[u8]) -> io::Result<Descriptor> {
    let descriptor = Descriptor::for_bytes(media_type, bytes);
    let mut pending = dir.begin_blob()?;
    pending.write_all(bytes)?;
    dir.commit_blob(pending, &descriptor.digest, descriptor.size)?;
    Ok(descriptor)
}

/// A `docker save` archive of the image `manifest` of `layout`, named `names`.
pub fn docker_archive(layout: &Path, manifest: &Descriptor, names: &[&str]) -> io::Result<Vec<u8>> {
    let dir = OciDir::open(layout).map_err(io::Error::other)?;
    let image = ExportImage {
        manifest: manifest.clone(),
        names: names.iter().map(|n| (*n).to_owned()).collect(),
    };
    archive::write_docker_archive(Vec::new(), &dir, &[image]).map_err(io::Error::other)
}

/// Builds the busybox root filesystem in `work/rootfs` and its image layout in
/// `work/layout`; returns the layout and the manifest descriptor.
pub fn busybox_layout(work: &Path, name: &str) -> io::Result<(PathBuf, Descriptor)> {
    let rootfs = work.join("rootfs");
    let layout = work.join("layout");
    busybox_rootfs(&rootfs)?;
    let manifest = write_image_layout(&rootfs, &layout, name)?;
    Ok((layout, manifest))
}
