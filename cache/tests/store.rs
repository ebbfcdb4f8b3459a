//! The store's behaviour, one concept at a time, on real temporary roots.

mod common;

use std::fs;
use std::time::Duration;

use common::{check_consistent, key, make_image, make_snapshot, names, value, TempRoot};
use strata_cache::{
    CacheError, CacheMountError, ContentError, Digest, ImageError, LayoutError, LeaseError,
    PruneOptions, SnapshotError, Store, StoreError,
};

#[test]
fn open_creates_the_versioned_layout_and_refuses_newer_ones() {
    let root = TempRoot::new("layout");
    let store = Store::open(root.path()).unwrap();
    let v1 = root.path().join("v1");
    for dir in ["content/blobs/sha256", "snapshots", "mounts/cache", "tmp"] {
        assert!(v1.join(dir).is_dir(), "{dir}");
    }
    assert!(v1.join("db.redb").is_file());
    assert!(v1.join("content/oci-layout").is_file());
    assert!(v1.join("content/index.json").is_file());
    // Only this store's own lock file and staging directory are in tmp.
    let id = store.owner_id().to_owned();
    assert_eq!(
        names(&v1.join("tmp")),
        vec![id.clone(), format!("{id}.lock")]
    );
    drop(store);
    assert!(names(&v1.join("tmp")).is_empty());

    fs::create_dir(root.path().join("v2")).unwrap();
    let err = Store::open(root.path()).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Layout(LayoutError::NewerVersion { found: 2, .. })
        ),
        "{err}"
    );
    assert!(err
        .to_string()
        .contains("newer than the supported version 1"));
}

#[test]
fn blobs_are_verified_deduplicated_and_never_partial() {
    let root = TempRoot::new("blobs");
    let store = Store::open(root.path()).unwrap();
    let lease = store.lease();
    let data = vec![42u8; 3 * 1024 * 1024 + 17];
    let digest = Digest::of(&data);

    let info = store
        .content()
        .ingest(&data[..], Some(digest), &lease)
        .unwrap();
    assert_eq!((info.digest, info.size), (digest, data.len() as u64));
    assert_eq!(fs::read(store.content().path(&digest)).unwrap(), data);
    assert_eq!(store.content().size(&digest).unwrap(), data.len() as u64);

    // Known digest already present: the stream is not even read.
    let again = store
        .content()
        .ingest(common::UnreadReader, Some(digest), &lease)
        .unwrap();
    assert_eq!(again, info);
    // Unknown digest: hashed, found present, temp discarded.
    let again = store.content().ingest(&data[..], None, &lease).unwrap();
    assert_eq!(again, info);

    // Mismatch: error, nothing stored, staging empty.
    let wrong = Digest::of(b"something else");
    let err = store
        .content()
        .ingest(&b"tampered"[..], Some(wrong), &lease)
        .unwrap_err();
    assert!(
        matches!(err, ContentError::DigestMismatch { expected, size: 8, .. } if expected == wrong),
        "{err}"
    );
    assert!(err
        .to_string()
        .starts_with("digest mismatch: expected sha256:"));
    assert!(!store.content().contains(&wrong));
    assert!(!store.content().contains(&Digest::of(b"tampered")));
    let staging = store.layout().tmp_dir().join(store.owner_id());
    assert!(names(&staging).is_empty(), "{:?}", names(&staging));

    // A failing source leaves nothing either.
    struct Failing(usize);
    impl std::io::Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("network reset"));
            }
            self.0 -= 1;
            buf[0] = 1;
            Ok(1)
        }
    }
    let err = store
        .content()
        .ingest(Failing(5), None, &lease)
        .unwrap_err();
    assert!(matches!(err, ContentError::Source { read: 5, .. }), "{err}");
    assert!(names(&staging).is_empty());
    assert_eq!(store.content().list().unwrap().len(), 1);

    // Staged blobs are invisible until published together; dropped ones leave nothing.
    let (a, b, c) = (&b"layer a"[..], &b"layer b"[..], &b"layer c"[..]);
    let staged_a = store.content().stage(a, &lease).unwrap();
    let staged_b = store.content().stage(b, &lease).unwrap();
    let staged_c = store.content().stage(c, &lease).unwrap();
    assert_eq!(staged_a.info().digest, Digest::of(a));
    assert!(!store.content().contains(&Digest::of(a)));
    assert_eq!(names(&staging).len(), 3);
    drop(staged_c);
    let published = store
        .content()
        .publish(vec![staged_a, staged_b], &lease)
        .unwrap();
    assert_eq!(
        published.iter().map(|i| i.digest).collect::<Vec<_>>(),
        [Digest::of(a), Digest::of(b)]
    );
    assert_eq!(fs::read(store.content().path(&Digest::of(b))).unwrap(), b);
    assert!(!store.content().contains(&Digest::of(c)));
    assert!(names(&staging).is_empty(), "{:?}", names(&staging));
    assert_eq!(store.content().list().unwrap().len(), 3);
    assert!(store
        .content()
        .publish(Vec::new(), &lease)
        .unwrap()
        .is_empty());

    assert!(matches!(
        store.content().open(&wrong),
        Err(ContentError::NotFound { .. })
    ));
    check_consistent(&store, true);
}

#[test]
fn snapshots_are_invisible_until_committed_and_chain_nearest_first() {
    let root = TempRoot::new("snapshots");
    let store = Store::open(root.path()).unwrap();
    let lease = store.lease();

    let base = make_snapshot(&store, None, &lease, "a", b"1");
    assert_eq!(base.parent, None);
    assert!(base.size > 0);
    let mid = make_snapshot(&store, Some(&base.id), &lease, "b", b"2");

    let prepared = store.snapshots().prepare(Some(&mid.id), &lease).unwrap();
    let top_id = prepared.id().clone();
    assert_eq!(
        prepared.lowerdirs(),
        &[
            store.snapshots().diff_dir(&mid.id),
            store.snapshots().diff_dir(&base.id)
        ]
    );
    assert!(prepared.diff().is_dir() && prepared.work().is_dir());
    // Not visible anywhere yet.
    assert_eq!(store.snapshots().get(&top_id).unwrap(), None);
    assert!(!store.snapshots().diff_dir(&top_id).exists());
    assert_eq!(store.snapshots().list().unwrap().len(), 2);
    fs::create_dir(prepared.diff().join("dir")).unwrap();
    fs::write(prepared.diff().join("dir/file"), vec![0u8; 10_000]).unwrap();
    let diff_id = Digest::of(b"tar");
    let top = store.snapshots().commit(prepared, Some(diff_id)).unwrap();
    assert_eq!(top.diff_id, Some(diff_id));
    assert!(top.size >= 10_000);
    assert_eq!(store.snapshots().get(&top_id).unwrap().unwrap(), top);
    assert_eq!(
        fs::read(store.snapshots().diff_dir(&top_id).join("dir/file"))
            .unwrap()
            .len(),
        10_000
    );
    let lower = store.snapshots().lowerdirs(&top_id).unwrap();
    assert_eq!(
        lower,
        vec![
            store.snapshots().diff_dir(&top_id),
            store.snapshots().diff_dir(&mid.id),
            store.snapshots().diff_dir(&base.id)
        ]
    );

    // Dropped and aborted preparations leave nothing.
    let dropped = store.snapshots().prepare(None, &lease).unwrap();
    let dropped_dir = dropped.diff();
    drop(dropped);
    assert!(!dropped_dir.exists());
    let aborted = store.snapshots().prepare(Some(&base.id), &lease).unwrap();
    store.snapshots().abort(aborted).unwrap();

    // A parent that does not exist.
    let ghost = "00000000000000aa".parse().unwrap();
    assert!(matches!(
        store.snapshots().prepare(Some(&ghost), &lease),
        Err(SnapshotError::ParentNotFound { .. })
    ));

    // Layer blob mapping.
    let blob = store.content().write(b"layer tar", &lease).unwrap();
    store
        .snapshots()
        .set_layer_blob(&top_id, &blob.digest)
        .unwrap();
    assert_eq!(
        store.snapshots().by_layer_blob(&blob.digest).unwrap(),
        Some(top_id.clone())
    );
    assert!(matches!(
        store
            .snapshots()
            .set_layer_blob(&top_id, &Digest::of(b"absent")),
        Err(SnapshotError::BlobNotFound { .. })
    ));

    // Both directions in one transaction: all or nothing.
    let second = store.content().write(b"second layer tar", &lease).unwrap();
    store
        .snapshots()
        .set_layer_blob_cached(
            &mid.id,
            &second.digest,
            &key(7),
            &value(Some(&mid.id), &[second.digest], "layer"),
        )
        .unwrap();
    assert_eq!(
        store.snapshots().by_layer_blob(&second.digest).unwrap(),
        Some(mid.id.clone())
    );
    let cached = store.cache().get(&key(7), None).unwrap().unwrap();
    assert_eq!(cached.value.blobs, [second.digest]);
    assert_eq!(cached.value.snapshot.as_ref(), Some(&mid.id));
    let absent = Digest::of(b"absent too");
    assert!(matches!(
        store.snapshots().set_layer_blob_cached(
            &mid.id,
            &second.digest,
            &key(8),
            &value(Some(&mid.id), &[absent], "layer")
        ),
        Err(SnapshotError::BlobNotFound { digest, .. }) if digest == absent
    ));
    assert!(store.cache().get(&key(8), None).unwrap().is_none());

    // Removal: refused with children or a live lease; a leaf goes with its cache records.
    store
        .cache()
        .put(&key(1), &value(Some(&top_id), &[], "x"))
        .unwrap();
    assert!(matches!(
        store.snapshots().remove(&mid.id),
        Err(SnapshotError::HasChildren { children: 1, .. }) | Err(SnapshotError::InUse { .. })
    ));
    assert!(matches!(
        store.snapshots().remove(&top_id),
        Err(SnapshotError::InUse { .. })
    ));
    drop(lease);
    store.snapshots().remove(&top_id).unwrap();
    assert_eq!(store.snapshots().get(&top_id).unwrap(), None);
    assert!(!store.snapshots().diff_dir(&top_id).exists());
    assert_eq!(store.cache().get(&key(1), None).unwrap(), None);
    assert_eq!(store.snapshots().by_layer_blob(&blob.digest).unwrap(), None);
    assert!(matches!(
        store.snapshots().remove(&top_id),
        Err(SnapshotError::NotFound { .. })
    ));
    check_consistent(&store, true);
}

#[test]
fn cache_records_round_trip_and_reference_only_what_exists() {
    let root = TempRoot::new("cache");
    let store = Store::open(root.path()).unwrap();
    let lease = store.lease();
    let snap = make_snapshot(&store, None, &lease, "f", b"x");
    let blob = store.content().write(b"config", &lease).unwrap();

    assert_eq!(store.cache().get(&key(7), None).unwrap(), None);
    let stored = store
        .cache()
        .put(&key(7), &value(Some(&snap.id), &[blob.digest], "payload"))
        .unwrap();
    let found = store.cache().get(&key(7), None).unwrap().unwrap();
    assert_eq!(found, stored);
    assert_eq!(found.value.payload, b"payload");
    assert_eq!(store.cache().len().unwrap(), 1);

    // A record without snapshot (a metadata-only step).
    store
        .cache()
        .put(&key(8), &value(None, &[], "meta"))
        .unwrap();

    let ghost = "00000000000000bb".parse().unwrap();
    assert!(matches!(
        store.cache().put(&key(9), &value(Some(&ghost), &[], "")),
        Err(CacheError::SnapshotNotFound { .. })
    ));
    assert!(matches!(
        store
            .cache()
            .put(&key(9), &value(None, &[Digest::of(b"nope")], "")),
        Err(CacheError::BlobNotFound { .. })
    ));

    // A lookup with a lease leases the snapshot and blobs.
    let build = store.lease();
    store.cache().get(&key(7), Some(&build)).unwrap().unwrap();
    let held = build.resources();
    assert_eq!(held.len(), 2, "{held:?}");

    // A lookup soon after the last use writes nothing...
    std::thread::sleep(Duration::from_millis(5));
    store.cache().get(&key(7), None).unwrap();
    store.flush().unwrap();
    let unchanged = store.cache().get(&key(7), None).unwrap().unwrap();
    assert_eq!(unchanged.last_used, stored.last_used);
    // ...and one past the granularity is written by flush.
    store.set_last_used_granularity(Duration::from_millis(1));
    std::thread::sleep(Duration::from_millis(5));
    store.cache().get(&key(7), None).unwrap();
    store.flush().unwrap();
    let after = store.cache().get(&key(7), None).unwrap().unwrap();
    assert!(after.last_used > stored.last_used);
    assert_eq!(after.created, stored.created);
    let snap_after = store.snapshots().get(&snap.id).unwrap().unwrap();
    assert!(snap_after.last_used > snap.last_used);

    assert!(store.cache().remove(&key(7)).unwrap());
    assert!(!store.cache().remove(&key(7)).unwrap());
    check_consistent(&store, true);
}

#[test]
fn images_tag_list_resolve_and_write_the_oci_index() {
    let root = TempRoot::new("images");
    let store = Store::open(root.path()).unwrap();
    let lease = store.lease();
    let (app, _) = make_image(&store, &lease, "app");
    let (other, _) = make_image(&store, &lease, "other");

    assert_eq!(store.images().tag("example.com/app:1", &app).unwrap(), None);
    store.images().tag("example.com/app:latest", &app).unwrap();
    store.images().tag("other", &other).unwrap();
    let previous = store.images().tag("other", &app).unwrap().unwrap();
    assert_eq!(previous.target, other);
    store.images().tag("other", &other).unwrap();

    let names: Vec<String> = store
        .images()
        .list()
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(
        names,
        ["example.com/app:1", "example.com/app:latest", "other"]
    );

    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(store.layout().content_dir().join("index.json")).unwrap())
            .unwrap();
    assert_eq!(index["schemaVersion"], 2);
    let first = &index["manifests"][0];
    assert_eq!(first["digest"], app.manifest.to_string());
    assert_eq!(
        first["annotations"]["org.opencontainers.image.ref.name"],
        "1"
    );

    // By name, by manifest or config digest prefix, with or without sha256:.
    assert_eq!(store.images().resolve("other").unwrap().target, other);
    let manifest_hex = app.manifest.hex();
    assert_eq!(
        store.images().resolve(&manifest_hex[..12]).unwrap().target,
        app
    );
    let config_hex = other.config.unwrap().hex();
    assert_eq!(
        store
            .images()
            .resolve(&format!("sha256:{}", &config_hex[..8]))
            .unwrap()
            .target,
        other
    );
    assert!(matches!(
        store.images().resolve("nope"),
        Err(ImageError::NotFound { .. })
    ));
    // Every hex digest starts with one of 16 digits: find a digit shared by both images.
    let shared = (b'0'..=b'f').map(|c| (c as char).to_string()).find(|p| {
        [app.manifest.hex(), app.config.unwrap().hex()]
            .iter()
            .any(|h| h.starts_with(p.as_str()))
            && [other.manifest.hex(), other.config.unwrap().hex()]
                .iter()
                .any(|h| h.starts_with(p.as_str()))
    });
    if let Some(prefix) = shared {
        assert!(matches!(
            store.images().resolve(&prefix),
            Err(ImageError::Ambiguous { count: 2, .. })
        ));
    }

    assert!(matches!(
        store.images().tag("bad\nname", &app),
        Err(ImageError::InvalidName { .. })
    ));
    let mut missing = app.clone();
    missing.manifest = Digest::of(b"not stored");
    assert!(matches!(
        store.images().tag("x", &missing),
        Err(ImageError::BlobNotFound { .. })
    ));

    assert!(store.images().untag("other").unwrap().is_some());
    assert!(store.images().untag("other").unwrap().is_none());
    assert_eq!(store.images().list().unwrap().len(), 2);
    check_consistent(&store, true);
}

#[test]
fn cache_mounts_are_created_once_and_protected_while_leased() {
    let root = TempRoot::new("mounts");
    let store = Store::open(root.path()).unwrap();
    let lease = store.lease();
    let dir = store
        .cache_mounts()
        .get_or_create("/root/.cache/go-build", &lease)
        .unwrap();
    assert!(dir.is_dir());
    fs::write(dir.join("obj"), b"compiled").unwrap();
    let again = store
        .cache_mounts()
        .get_or_create("/root/.cache/go-build", &lease)
        .unwrap();
    assert_eq!(dir, again);
    assert_eq!(fs::read(again.join("obj")).unwrap(), b"compiled");
    let list = store.cache_mounts().list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].name, "/root/.cache/go-build");

    assert!(matches!(
        store.cache_mounts().remove("/root/.cache/go-build"),
        Err(CacheMountError::InUse { .. })
    ));
    assert!(matches!(
        store.cache_mounts().get_or_create("", &lease),
        Err(CacheMountError::InvalidName { .. })
    ));
    drop(lease);
    assert!(store
        .cache_mounts()
        .remove("/root/.cache/go-build")
        .unwrap());
    assert!(!dir.exists());
    assert!(!store
        .cache_mounts()
        .remove("/root/.cache/go-build")
        .unwrap());
}

#[test]
fn leases_check_existence() {
    let root = TempRoot::new("leases");
    let store = Store::open(root.path()).unwrap();
    let lease = store.lease();
    assert!(matches!(
        lease.add_snapshot(&"00000000000000cc".parse().unwrap()),
        Err(LeaseError::SnapshotNotFound { .. })
    ));
    assert!(matches!(
        lease.add_blob(&Digest::of(b"x")),
        Err(LeaseError::BlobNotFound { .. })
    ));
    let other = Store::open(root.path()).unwrap();
    let foreign = other.lease();
    assert!(matches!(
        store.content().write(b"x", &foreign),
        Err(ContentError::ForeignLease { .. })
    ));
}

/// Builds a store with: an image (3 blobs), an old and a new cache record on a shared base
/// snapshot, a leased record, a cache mount, an unreferenced blob, a committed but
/// unreferenced snapshot. Returns the pieces.
struct PruneFixture {
    root: TempRoot,
    store: Store,
    image_blobs: Vec<Digest>,
    base: strata_cache::SnapshotId,
    old: strata_cache::SnapshotId,
    new: strata_cache::SnapshotId,
    held: strata_cache::SnapshotId,
    loose_blob: Digest,
    record_blob: Digest,
}

fn prune_fixture(name: &str) -> PruneFixture {
    let root = TempRoot::new(name);
    let store = Store::open(root.path()).unwrap();
    let setup = store.lease();
    let (image, image_blobs) = make_image(&store, &setup, "img");
    store.images().tag("img:1", &image).unwrap();
    let base = make_snapshot(&store, None, &setup, "base", &vec![1u8; 50_000]).id;
    let old = make_snapshot(&store, Some(&base), &setup, "old", &vec![2u8; 20_000]).id;
    let record_blob = store
        .content()
        .write(&vec![9u8; 30_000], &setup)
        .unwrap()
        .digest;
    store
        .cache()
        .put(&key(1), &value(Some(&old), &[record_blob], "old"))
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let new = make_snapshot(&store, Some(&base), &setup, "new", &vec![3u8; 20_000]).id;
    store
        .cache()
        .put(&key(2), &value(Some(&new), &[], "new"))
        .unwrap();
    let held = make_snapshot(&store, Some(&base), &setup, "held", b"h").id;
    store
        .cache()
        .put(&key(3), &value(Some(&held), &[], "held"))
        .unwrap();
    make_snapshot(&store, None, &setup, "loose", b"l");
    let loose_blob = store.content().write(b"loose blob", &setup).unwrap().digest;
    store.cache_mounts().get_or_create("pip", &setup).unwrap();
    drop(setup);
    PruneFixture {
        root,
        store,
        image_blobs,
        base,
        old,
        new,
        held,
        loose_blob,
        record_blob,
    }
}

#[test]
fn prune_removes_garbage_and_old_records_but_never_images_or_leases() {
    let f = prune_fixture("prune-older");
    let store = &f.store;
    // Another process holds the "held" snapshot.
    let other = Store::open(f.root.path()).unwrap();
    let build = other.lease();
    build.add_snapshot(&f.held).unwrap();

    let before = store.du().unwrap();
    assert_eq!(before.blobs.count, 5);
    assert_eq!(before.snapshots.count, 5);
    assert_eq!(before.cache_mounts.count, 1);
    assert_eq!(before.cache_records, 3);
    assert_eq!(before.images, 1);

    // Only what is unreferenced, plus records idle for 600 ms: the old one.
    let report = store
        .prune(&PruneOptions {
            older_than: Some(Duration::from_millis(600)),
            ..PruneOptions::default()
        })
        .unwrap();
    assert_eq!(report.cache_records, 1, "{report:?}");
    assert_eq!(report.snapshots.count, 2, "old + loose: {report:?}");
    assert_eq!(
        report.blobs.count, 2,
        "record blob + loose blob: {report:?}"
    );
    assert_eq!(report.cache_mounts.count, 0);
    assert!(report.freed_bytes() > 0);
    assert!(store.snapshots().get(&f.old).unwrap().is_none());
    assert!(!store.content().contains(&f.loose_blob));
    assert!(!store.content().contains(&f.record_blob));
    assert!(store.snapshots().get(&f.new).unwrap().is_some());
    for blob in &f.image_blobs {
        assert!(store.content().contains(blob));
    }
    check_consistent(store, true);

    // Everything prunable: the new record goes, the held one stays, image blobs stay, the
    // cache mount stays without `all`.
    let report = store.prune(&PruneOptions::default()).unwrap();
    assert_eq!(report.cache_records, 1, "{report:?}");
    assert_eq!(report.snapshots.count, 1, "{report:?}");
    assert!(store.snapshots().get(&f.held).unwrap().is_some());
    assert!(store.snapshots().get(&f.base).unwrap().is_some());
    assert!(store.cache().get(&key(3), None).unwrap().is_some());
    assert_eq!(store.cache_mounts().list().unwrap().len(), 1);
    for blob in &f.image_blobs {
        assert!(store.content().contains(blob));
    }

    // Once the other process's build ends, `all` takes everything but the image.
    drop(build);
    let report = store
        .prune(&PruneOptions {
            all: true,
            ..PruneOptions::default()
        })
        .unwrap();
    assert_eq!(report.cache_records, 1);
    assert_eq!(report.snapshots.count, 2, "held + base: {report:?}");
    assert_eq!(report.cache_mounts.count, 1);
    let after = store.du().unwrap();
    assert_eq!(after.snapshots.count, 0);
    assert_eq!(after.blobs.count, 3);
    assert_eq!(after.cache_records, 0);
    assert_eq!(after.cache_mounts.count, 0);
    check_consistent(store, true);

    // Untagging makes the image's blobs garbage.
    store.images().untag("img:1").unwrap();
    let report = store.prune(&PruneOptions::default()).unwrap();
    assert_eq!(report.blobs.count, 3);
    assert_eq!(store.du().unwrap().total_bytes(), 0);
}

#[test]
fn prune_keep_storage_removes_least_recently_used_first() {
    let f = prune_fixture("prune-keep");
    let store = &f.store;
    // Use the old record now: the "new" one becomes the least recently used (at a
    // granularity finer than the test's timeline).
    store.set_last_used_granularity(Duration::ZERO);
    store.cache().get(&key(1), None).unwrap();
    store.flush().unwrap();
    // An unreachable budget removes only garbage (the loose snapshot and blob).
    let report = store
        .prune(&PruneOptions {
            keep_storage: Some(u64::MAX),
            ..PruneOptions::default()
        })
        .unwrap();
    assert_eq!(report.cache_records, 0);
    assert_eq!(
        (report.snapshots.count, report.blobs.count),
        (1, 1),
        "{report:?}"
    );
    let usage = store.du().unwrap().total_bytes();
    // Ask to free a little: exactly one record goes, the least recently used ("new",
    // stored before "held").
    let report = store
        .prune(&PruneOptions {
            keep_storage: Some(usage - 1),
            ..PruneOptions::default()
        })
        .unwrap();
    assert_eq!(report.cache_records, 1, "{report:?}");
    assert!(store.cache().get(&key(2), None).unwrap().is_none());
    assert!(store.cache().get(&key(1), None).unwrap().is_some());
    assert!(store.cache().get(&key(3), None).unwrap().is_some());
    // A budget of zero removes every record (the image stays).
    store
        .prune(&PruneOptions {
            keep_storage: Some(0),
            ..PruneOptions::default()
        })
        .unwrap();
    assert_eq!(store.cache().len().unwrap(), 0);
    for blob in &f.image_blobs {
        assert!(store.content().contains(blob));
    }
    check_consistent(store, true);
}

#[test]
fn prune_keeps_all_blobs_when_an_image_manifest_is_unreadable() {
    let root = TempRoot::new("prune-badmanifest");
    let store = Store::open(root.path()).unwrap();
    let lease = store.lease();
    let manifest = store.content().write(b"not json", &lease).unwrap();
    store
        .images()
        .tag(
            "broken",
            &strata_cache::ImageTarget {
                manifest: manifest.digest,
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                size: manifest.size,
                config: None,
            },
        )
        .unwrap();
    store
        .content()
        .write(b"maybe a layer of it", &lease)
        .unwrap();
    drop(lease);
    let report = store.prune(&PruneOptions::default()).unwrap();
    assert_eq!(report.blobs.count, 0);
    assert_eq!(report.warnings.len(), 1, "{report:?}");
    assert_eq!(store.content().list().unwrap().len(), 2);
}

#[test]
fn a_snapshot_committed_with_its_cache_record_is_found_by_key() {
    let root = TempRoot::new("commit-cached");
    let store = Store::open(root.path()).unwrap();
    let lease = store.lease();
    let prepared = store.snapshots().prepare(None, &lease).unwrap();
    std::fs::write(prepared.diff().join("f"), b"x").unwrap();
    let record = store.snapshots().commit_cached(prepared, &key(42)).unwrap();
    let found = store.cache().get(&key(42), None).unwrap().unwrap();
    assert_eq!(found.value.snapshot.as_ref(), Some(&record.id));
    check_consistent(&store, true);
}
