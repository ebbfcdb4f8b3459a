//! Several stores on one root at once: threads with their own `Store` (each its own owner
//! and database handle, exactly like a process) and real processes, while a pruner runs.
//! Every operation must succeed (the API has no retries to document) and the store must be
//! consistent afterwards.

mod common;

use std::time::{Duration, Instant};

use common::{check_consistent, hammer, make_snapshot, prune_loop, spawn_helper, TempRoot};
use strata_cache::{PruneOptions, Store};

/// Not a test: the entry point of helper processes (returns at once otherwise).
#[test]
fn helper_process() {
    common::helper_main();
}

#[test]
fn threads_with_their_own_stores_share_a_root_safely() {
    let root = TempRoot::new("threads");
    let store = Store::open(root.path()).unwrap();
    let lease = store.lease();
    let base = make_snapshot(&store, None, &lease, "base", b"base").id;

    let until = Instant::now() + Duration::from_millis(2500);
    let workers: Vec<_> = (0..3u64)
        .map(|w| {
            let root = root.path().to_owned();
            let base = base.clone();
            std::thread::spawn(move || hammer(&root, w, &base, until, u64::MAX))
        })
        .collect();
    let pruner = {
        let root = root.path().to_owned();
        std::thread::spawn(move || prune_loop(&root, until))
    };
    let mut total = 0;
    for worker in workers {
        let stats = worker.join().expect("worker failed");
        assert!(stats.iterations > 0);
        total += stats.iterations;
    }
    let rounds = pruner.join().expect("pruner failed");
    eprintln!("threads: {total} iterations, {rounds} prune rounds");
    assert!(rounds > 0);

    check_consistent(&store, false);
    drop(lease);
    store.prune(&PruneOptions::default()).unwrap();
    check_consistent(&store, true);
}

#[test]
fn processes_share_a_root_safely_while_one_prunes() {
    let root = TempRoot::new("processes");
    let store = Store::open(root.path()).unwrap();
    let lease = store.lease();
    let base = make_snapshot(&store, None, &lease, "base", b"base").id;

    let millis = 2500;
    let mut children: Vec<_> = (0..3u64)
        .map(|w| spawn_helper("helper_process", "worker", root.path(), w, &base, millis))
        .collect();
    children.push(spawn_helper(
        "helper_process",
        "pruner",
        root.path(),
        9,
        &base,
        millis,
    ));
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "helper failed: {}\n{stdout}\n{stderr}",
            out.status
        );
        let line = stdout
            .lines()
            .find_map(|l| l.find("HELPER").map(|at| &l[at..]))
            .unwrap_or_else(|| panic!("helper printed no summary:\n{stdout}\n{stderr}"));
        eprintln!("{line}");
    }

    // Every helper closed cleanly: only this store remains in tmp.
    let tmp = store.layout().tmp_dir();
    let id = store.owner_id().to_owned();
    assert_eq!(common::names(&tmp), vec![id.clone(), format!("{id}.lock")]);
    check_consistent(&store, false);
    drop(lease);
    store.prune(&PruneOptions::default()).unwrap();
    check_consistent(&store, true);
}
