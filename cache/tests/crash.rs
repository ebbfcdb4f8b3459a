//! Crash safety: what a dead process leaves behind is removed, and a `kill -9` at any point
//! leaves a store that opens, is consistent and works.

mod common;

use std::fs;
use std::time::Duration;

use common::{check_consistent, key, make_snapshot, names, spawn_helper, value, Rng, TempRoot};
use strata_cache::{PruneOptions, Store};

/// Not a test: the entry point of helper processes (returns at once otherwise).
#[test]
fn helper_process() {
    common::helper_main();
}

#[test]
fn open_removes_what_dead_processes_left_in_tmp() {
    let root = TempRoot::new("leftovers");
    let committed = {
        let store = Store::open(root.path()).unwrap();
        let lease = store.lease();
        let base = make_snapshot(&store, None, &lease, "f", b"kept");
        store
            .cache()
            .put(&key(1), &value(Some(&base.id), &[], "kept"))
            .unwrap();
        base.id
    };
    let tmp = root.path().join("v1/tmp");
    // A dead owner: its lock file (nobody holds it) and staging with a half-written blob, a
    // prepared snapshot and a tree being deleted.
    let dead = "00aa00aa00aa00aa";
    fs::write(
        tmp.join(format!("{dead}.lock")),
        "strata-leases 1\ns 0123456789abcdef\n",
    )
    .unwrap();
    fs::create_dir_all(tmp.join(dead).join("snapshots/0123456789abcdef/diff/usr")).unwrap();
    fs::create_dir_all(tmp.join(dead).join("snapshots/0123456789abcdef/work")).unwrap();
    fs::write(tmp.join(dead).join("tmp-1234"), vec![0u8; 1000]).unwrap();
    fs::create_dir_all(tmp.join(dead).join("trash-99/diff")).unwrap();
    // Junk from who knows what, and a staging dir whose lock file is gone.
    fs::write(tmp.join("stray-file"), b"x").unwrap();
    fs::create_dir(tmp.join("11bb11bb11bb11bb")).unwrap();
    // A snapshot directory renamed into place by a commit that died before its record.
    let orphan = root.path().join("v1/snapshots/fedcba9876543210");
    fs::create_dir_all(orphan.join("diff")).unwrap();
    // index.json lost by a crash between an image commit and its rewrite.
    fs::remove_file(root.path().join("v1/content/index.json")).unwrap();

    let store = Store::open(root.path()).unwrap();
    let id = store.owner_id().to_owned();
    assert_eq!(names(&tmp), vec![id.clone(), format!("{id}.lock")]);
    assert!(root.path().join("v1/content/index.json").is_file());
    // The committed data is intact and usable.
    let record = store.cache().get(&key(1), None).unwrap().unwrap();
    assert_eq!(record.value.snapshot.as_ref(), Some(&committed));
    assert_eq!(
        fs::read(store.snapshots().diff_dir(&committed).join("f")).unwrap(),
        b"kept"
    );
    check_consistent(&store, false);
    // The orphan is not a snapshot; a prune removes it.
    assert!(store
        .snapshots()
        .get(&"fedcba9876543210".parse().unwrap())
        .unwrap()
        .is_none());
    let report = store
        .prune(&PruneOptions {
            older_than: Some(Duration::from_secs(3600)),
            ..PruneOptions::default()
        })
        .unwrap();
    assert_eq!(report.orphans, 1, "{report:?}");
    assert!(!orphan.exists());
    assert!(store.cache().get(&key(1), None).unwrap().is_some());
    check_consistent(&store, true);
}

#[test]
fn a_live_process_keeps_its_tmp_entries_across_other_opens() {
    let root = TempRoot::new("live-tmp");
    let first = Store::open(root.path()).unwrap();
    let lease = first.lease();
    let prepared = first.snapshots().prepare(None, &lease).unwrap();
    fs::write(prepared.diff().join("f"), b"in progress").unwrap();
    // Another process opens (and sweeps) the root meanwhile.
    let second = Store::open(root.path()).unwrap();
    second
        .prune(&PruneOptions {
            all: true,
            ..PruneOptions::default()
        })
        .unwrap();
    drop(second);
    assert_eq!(fs::read(prepared.diff().join("f")).unwrap(), b"in progress");
    let record = first.snapshots().commit(prepared, None).unwrap();
    assert!(first.snapshots().diff_dir(&record.id).join("f").is_file());
}

#[test]
fn kill_9_at_random_points_leaves_a_working_store() {
    let root = TempRoot::new("kill9");
    // This process holds the base for the whole test, like a long build would.
    let holder = Store::open(root.path()).unwrap();
    let held = holder.lease();
    let base = make_snapshot(&holder, None, &held, "base", b"base").id;
    let mut rng = Rng::new(9);
    let mut last_key = None;
    for round in 0..8u64 {
        // Workers die mid-ingest, mid-commit or mid-transaction; pruners mid-prune.
        let role = if round % 2 == 0 { "worker" } else { "pruner" };
        let mut victim = spawn_helper(
            "helper_process",
            role,
            root.path(),
            round % 4,
            &base,
            60_000,
        );
        std::thread::sleep(Duration::from_millis(150 + rng.below(400)));
        victim.kill().unwrap();
        let status = victim.wait().unwrap();
        assert!(
            !status.success(),
            "round {round}: the {role} finished before being killed"
        );

        let store = Store::open(root.path()).unwrap();
        let mut left = names(&store.layout().tmp_dir());
        left.retain(|n| !n.starts_with(holder.owner_id()));
        let id = store.owner_id().to_owned();
        assert_eq!(
            left,
            vec![id.clone(), format!("{id}.lock")],
            "round {round}: leftovers in tmp"
        );
        check_consistent(&store, false);
        // And it works: a full write/read cycle.
        let lease = store.lease();
        let snap = make_snapshot(&store, Some(&base), &lease, "after", b"crash");
        let k = key(5_000_000 + round);
        store
            .cache()
            .put(&k, &value(Some(&snap.id), &[], "after"))
            .unwrap();
        assert!(store.cache().get(&k, Some(&lease)).unwrap().is_some());
        last_key = Some(k);
    }
    let store = Store::open(root.path()).unwrap();
    store
        .prune(&PruneOptions {
            older_than: Some(Duration::from_secs(3600)),
            ..PruneOptions::default()
        })
        .unwrap();
    check_consistent(&store, true);
    assert!(store
        .cache()
        .get(&last_key.unwrap(), None)
        .unwrap()
        .is_some());
    drop(held);
}

/// Rewrites every unsynced mark of a closed store as if made under another boot.
fn pretend_rebooted(root: &std::path::Path) {
    use redb::ReadableTable;
    let table: redb::TableDefinition<&str, &str> = redb::TableDefinition::new("unsynced_snapshots");
    let db = redb::Database::open(root.join("v1/db.redb")).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut marks = tx.open_table(table).unwrap();
        let ids: Vec<String> = marks
            .iter()
            .unwrap()
            .map(|e| e.unwrap().0.value().to_owned())
            .collect();
        assert!(!ids.is_empty(), "the dead process left no unsynced mark");
        for id in ids {
            marks.insert(id.as_str(), "an-earlier-boot").unwrap();
        }
    }
    tx.commit().unwrap();
}

#[test]
fn snapshots_unsynced_before_a_reboot_are_dropped_and_same_boot_ones_kept() {
    for rebooted in [false, true] {
        let root = TempRoot::new(if rebooted {
            "unsynced-reboot"
        } else {
            "unsynced-same"
        });
        let base = {
            let store = Store::open(root.path()).unwrap();
            let lease = store.lease();
            let base = make_snapshot(&store, None, &lease, "base", b"durable");
            store
                .cache()
                .put(&key(1), &value(Some(&base.id), &[], "base"))
                .unwrap();
            base.id
            // Dropped here: flushed, so `base` is durable.
        };
        let helper = spawn_helper("helper_process", "commit-and-die", root.path(), 2, &base, 0);
        let out = helper.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "the helper must die: {stdout}");
        let top = stdout
            .lines()
            .find_map(|l| l.split("HELPER committed ").nth(1))
            .unwrap_or_else(|| panic!("no commit in helper output: {stdout}"))
            .to_owned();
        if rebooted {
            pretend_rebooted(root.path());
        }

        let store = Store::open(root.path()).unwrap();
        let kept = store.cache().get(&key(2), None).unwrap();
        let snapshot_dir = root.path().join("v1/snapshots").join(&top);
        if rebooted {
            // Its files may be gone with the page cache: the step must run again.
            assert!(kept.is_none());
            assert!(!snapshot_dir.exists());
        } else {
            // Same boot: the page cache still holds the files; the next flush syncs them.
            assert_eq!(kept.unwrap().value.snapshot.unwrap().as_str(), top);
            assert!(snapshot_dir.join("diff/top").is_file());
            store.flush().unwrap();
        }
        // The durable base is untouched either way.
        let record = store.cache().get(&key(1), None).unwrap().unwrap();
        assert_eq!(record.value.snapshot.as_ref(), Some(&base));
        check_consistent(&store, true);
    }
}
