//! The solver driven by a fake worker: what runs, what is cached, in which order, how many at
//! once, and what a failure does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use strata_solver::op::{
    ExecOp, Mount, MountKind, NetworkMode, Op, SecurityMode, SourceOp, VertexMeta,
};
use strata_solver::progress::EventKind;
use strata_solver::{BoxError, Digest, Graph, Job, SolveOptions, Solver, VertexId, Worker};

/// Records what it is asked to do. A vertex's "result" is its name joined with its inputs'.
#[derive(Default)]
struct FakeWorker {
    cache: Mutex<HashMap<Digest, String>>,
    content: Mutex<HashMap<String, u8>>,
    runs: Mutex<Vec<String>>,
    delays: HashMap<String, Duration>,
    fail: Option<String>,
    running: AtomicUsize,
    max_running: AtomicUsize,
    canceled: AtomicUsize,
}

struct CancelGuard<'a>(&'a AtomicUsize, bool);
impl Drop for CancelGuard<'_> {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Worker for FakeWorker {
    type Ref = String;

    async fn content_key(
        &self,
        graph: &Graph,
        vertex: VertexId,
    ) -> Result<Option<Digest>, BoxError> {
        let name = &graph.vertex(vertex).meta.name;
        Ok(self
            .content
            .lock()
            .unwrap()
            .get(name)
            .map(|&b| Digest([b; 32])))
    }

    async fn load(&self, _: &Graph, _: VertexId, key: Digest) -> Result<Option<String>, BoxError> {
        Ok(self.cache.lock().unwrap().get(&key).cloned())
    }

    async fn execute(&self, job: Job<'_, String>) -> Result<String, BoxError> {
        let name = job.graph.vertex(job.vertex).meta.name.clone();
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        let mut guard = CancelGuard(&self.canceled, false);
        if let Some(d) = self.delays.get(&name) {
            tokio::time::sleep(*d).await;
        }
        guard.1 = true;
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.runs.lock().unwrap().push(name.clone());
        if self.fail.as_deref() == Some(name.as_str()) {
            return Err(
                format!("process \"{name}\" did not complete successfully: exit code: 3").into(),
            );
        }
        let result = format!("{name}({})", job.inputs.join(","));
        self.cache.lock().unwrap().insert(job.key, result.clone());
        Ok(result)
    }
}

fn meta(name: &str) -> VertexMeta {
    VertexMeta {
        name: name.into(),
        lines: Some((1, 1)),
        ..Default::default()
    }
}

fn exec(cmd: &str) -> Op {
    Op::Exec(ExecOp {
        args: vec!["sh".into(), "-c".into(), cmd.into()],
        env: vec![],
        cwd: "/".into(),
        user: String::new(),
        network: NetworkMode::Default,
        security: SecurityMode::Sandbox,
        hostname: None,
        mounts: vec![Mount {
            input: Some(0),
            selector: "/".into(),
            target: "/".into(),
            readonly: false,
            output: Some(0),
            kind: MountKind::Bind,
        }],
    })
}

fn local(name: &str) -> Op {
    Op::Source(SourceOp::Local {
        name: name.into(),
        include: vec![],
        exclude: vec![],
        follow_paths: vec![],
    })
}

/// base → a → b (target); base → unused; ctx feeds b through a merge.
fn chain() -> (Arc<Graph>, VertexId) {
    let mut g = Graph::new();
    let base = g
        .add(Op::Source(SourceOp::Scratch), vec![], meta("base"))
        .unwrap();
    let _unused = g
        .add(exec("unused"), vec![base.into()], meta("unused"))
        .unwrap();
    let a = g.add(exec("a"), vec![base.into()], meta("a")).unwrap();
    let ctx = g.add(local("context"), vec![], meta("ctx")).unwrap();
    let b = g
        .add(Op::Merge, vec![a.into(), ctx.into()], meta("b"))
        .unwrap();
    (Arc::new(g), b)
}

fn runs(w: &FakeWorker) -> Vec<String> {
    std::mem::take(&mut *w.runs.lock().unwrap())
}

#[tokio::test]
async fn runs_only_what_the_target_needs_then_caches_it_all() {
    let worker = Arc::new(FakeWorker::default());
    let solver = Solver::new(worker.clone());
    let (graph, target) = chain();
    let first = solver
        .solve(graph.clone(), target, SolveOptions::default())
        .await
        .unwrap();
    assert_eq!(first.result, "b(a(base()),ctx())");
    let mut ran = runs(&worker);
    ran.sort();
    assert_eq!(ran, ["a", "b", "base", "ctx"]);

    // Nothing changed: nothing runs, and only the target itself is looked up.
    let second = solver
        .solve(graph.clone(), target, SolveOptions::default())
        .await
        .unwrap();
    assert_eq!(second.result, first.result);
    assert!(second.executed.is_empty());
    assert_eq!(second.cached, vec![target]);
    assert!(runs(&worker).is_empty());
}

#[tokio::test]
async fn a_content_change_reruns_that_vertex_and_its_users_only() {
    let worker = Arc::new(FakeWorker::default());
    let solver = Solver::new(worker.clone());
    let (graph, target) = chain();
    solver
        .solve(graph.clone(), target, SolveOptions::default())
        .await
        .unwrap();
    runs(&worker);

    worker.content.lock().unwrap().insert("ctx".into(), 7);
    let again = solver
        .solve(graph.clone(), target, SolveOptions::default())
        .await
        .unwrap();
    let mut ran = runs(&worker);
    ran.sort();
    assert_eq!(
        ran,
        ["b", "ctx"],
        "a stays cached: it does not read the context"
    );
    assert_eq!(again.cached.len(), 1);
}

#[tokio::test]
async fn no_cache_runs_everything() {
    let worker = Arc::new(FakeWorker::default());
    let solver = Solver::new(worker.clone());
    let (graph, target) = chain();
    solver
        .solve(graph.clone(), target, SolveOptions::default())
        .await
        .unwrap();
    runs(&worker);
    let options = SolveOptions {
        no_cache: true,
        ..Default::default()
    };
    let again = solver.solve(graph, target, options).await.unwrap();
    assert_eq!(again.executed.len(), 4);
}

#[tokio::test]
async fn identical_steps_in_two_stages_run_once() {
    let worker = Arc::new(FakeWorker::default());
    let mut g = Graph::new();
    let base = g
        .add(Op::Source(SourceOp::Scratch), vec![], meta("base"))
        .unwrap();
    let s1 = g
        .add(
            exec("make"),
            vec![base.into()],
            meta("[stage1 1/1] RUN make"),
        )
        .unwrap();
    let s2 = g
        .add(
            exec("make"),
            vec![base.into()],
            meta("[stage2 1/1] RUN make"),
        )
        .unwrap();
    let target = g
        .add(Op::Merge, vec![s1.into(), s2.into()], meta("merge"))
        .unwrap();
    Solver::new(worker.clone())
        .solve(Arc::new(g), target, SolveOptions::default())
        .await
        .unwrap();
    assert_eq!(
        runs(&worker)
            .iter()
            .filter(|n| n.contains("RUN make"))
            .count(),
        1
    );
}

/// Four independent stages: they run at the same time, up to the parallelism limit.
fn four_stages(worker: &mut FakeWorker) -> (Arc<Graph>, VertexId) {
    let mut g = Graph::new();
    let base = g
        .add(Op::Source(SourceOp::Scratch), vec![], meta("base"))
        .unwrap();
    let mut stages = Vec::new();
    for i in 1..=4 {
        let name = format!("s{i}");
        worker
            .delays
            .insert(name.clone(), Duration::from_millis(100));
        stages.push(
            g.add(exec(&name), vec![base.into()], meta(&name))
                .unwrap()
                .into(),
        );
    }
    let target = g.add(Op::Merge, stages, meta("final")).unwrap();
    (Arc::new(g), target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_vertices_overlap_up_to_the_limit() {
    for (limit, expected) in [(4, 4), (2, 2), (1, 1)] {
        let mut worker = FakeWorker::default();
        let (graph, target) = four_stages(&mut worker);
        let worker = Arc::new(worker);
        let options = SolveOptions {
            max_parallelism: limit,
            ..Default::default()
        };
        Solver::new(worker.clone())
            .solve(graph, target, options)
            .await
            .unwrap();
        assert_eq!(
            worker.max_running.load(Ordering::SeqCst),
            expected,
            "limit {limit}"
        );
    }
}

#[tokio::test]
async fn the_first_failure_cancels_the_rest_and_names_the_vertex() {
    let mut worker = FakeWorker::default();
    let (graph, target) = four_stages(&mut worker);
    worker.delays.insert("s1".into(), Duration::ZERO);
    worker.delays.insert("s2".into(), Duration::from_secs(30));
    worker.fail = Some("s1".into());
    let worker = Arc::new(worker);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let options = SolveOptions {
        max_parallelism: 4,
        progress: Some(tx),
        ..Default::default()
    };
    let err = Solver::new(worker.clone())
        .solve(graph, target, options)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "s1: process \"s1\" did not complete successfully: exit code: 3"
    );
    assert_eq!(err.lines(), Some((1, 1)));
    assert!(!runs(&worker).contains(&"final".to_string()));
    assert_eq!(
        worker.canceled.load(Ordering::SeqCst),
        3,
        "s2..s4 were stopped mid-run"
    );
    let mut kinds = HashMap::new();
    while let Ok(e) = rx.try_recv() {
        kinds.insert(e.name.to_string(), e.kind);
    }
    assert!(matches!(kinds["s1"], EventKind::Failed { .. }));
    assert_eq!(kinds["s2"], EventKind::Canceled);
}

#[tokio::test]
async fn progress_reports_cached_and_completed_vertices() {
    let worker = Arc::new(FakeWorker::default());
    let solver = Solver::new(worker.clone());
    let (graph, target) = chain();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    solver
        .solve(
            graph.clone(),
            target,
            SolveOptions {
                progress: Some(tx),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut completed = 0;
    while let Ok(e) = rx.try_recv() {
        completed += usize::from(matches!(e.kind, EventKind::Completed { .. }));
    }
    assert_eq!(completed, 4);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    solver
        .solve(
            graph,
            target,
            SolveOptions {
                progress: Some(tx),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // Every vertex of the closure is reported cached, inputs first, and nothing runs.
    let events: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    assert_eq!(events.len(), 4);
    assert!(
        events.iter().all(|e| e.kind == EventKind::Cached),
        "{events:?}"
    );
    assert_eq!(&*events[3].name, "b");
}
