//! Lowering: golden dumps of the graph and image config for each Dockerfile under
//! `testdata/lower/<case>/` (with an optional `options.json` and `.dockerignore`), plus
//! checks of the rules the dumps only show (dedup, unused stages, CMD reset, errors).

use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use strata_frontend::instructions::{parse_platform, parse_stages, resolve, ResolveOptions};
use strata_frontend::lower::{dump, lower, BaseImageConfig, Image, LowerOptions, Lowered};
use strata_solver::op::{FileAction, MountKind, Op, SourceOp};

fn case_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/lower")
        .join(case)
}

fn amd64() -> strata_frontend::instructions::Platform {
    parse_platform("linux/amd64").unwrap()
}

/// Options of a case: `options.json` (all keys optional) and `.dockerignore`.
fn case_options(dir: &Path) -> (ResolveOptions, LowerOptions) {
    let json: Value = std::fs::read_to_string(dir.join("options.json"))
        .map(|s| serde_json::from_str(&s).expect("options.json"))
        .unwrap_or(Value::Null);
    let strings = |key: &str| -> BTreeMap<String, String> {
        json.get(key)
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let flag = |key: &str| json.get(key).and_then(Value::as_bool).unwrap_or(false);
    let mut lower = LowerOptions {
        build_args: strings("build_args"),
        labels: strings("labels"),
        build_platform: amd64(),
        target_platform: json
            .get("platform")
            .and_then(Value::as_str)
            .map(|p| parse_platform(p).unwrap()),
        multi_platform: flag("multi_platform"),
        allow_insecure: flag("allow_insecure"),
        allow_network_host: flag("allow_network_host"),
        no_cache_filter: json
            .get("no_cache_filter")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        ..LowerOptions::default()
    };
    if let Some(images) = json.get("images").and_then(Value::as_object) {
        for (name, image) in images {
            let config: Image =
                serde_json::from_value(image.get("config").cloned().unwrap_or(Value::Null))
                    .expect("image config");
            lower.base_images.insert(
                name.clone(),
                BaseImageConfig {
                    digest: image
                        .get("digest")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    image: config,
                },
            );
        }
    }
    if let Ok(ignore) = std::fs::read_to_string(dir.join(".dockerignore")) {
        lower.dockerignore = ignore
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect();
    }
    let resolve = ResolveOptions {
        target: json
            .get("target")
            .and_then(Value::as_str)
            .map(str::to_string),
        build_args: lower.build_args.clone(),
        build_platform: amd64(),
        target_platform: lower.target_platform.clone(),
        escape: '\\',
        base_images: lower.resolve_base_images(),
    };
    (resolve, lower)
}

fn lower_source(
    src: &str,
    mut resolve_options: ResolveOptions,
    mut options: LowerOptions,
) -> Result<Lowered, String> {
    let file = strata_frontend::parser::parse(src.as_bytes()).map_err(|e| e.to_string())?;
    let (stages, meta) = parse_stages(&file).map_err(|e| e.to_string())?;
    resolve_options.escape = file.escape;
    options.escape = file.escape;
    let resolution = resolve(&stages, &meta, &resolve_options).map_err(|e| e.to_string())?;
    lower(&resolution, &options).map_err(|e| e.to_string())
}

fn lower_case(case: &str) -> Lowered {
    let dir = case_dir(case);
    let src = std::fs::read_to_string(dir.join("Dockerfile")).expect("Dockerfile");
    let (resolve_options, options) = case_options(&dir);
    lower_source(&src, resolve_options, options).unwrap_or_else(|e| panic!("{case}: {e}"))
}

fn simple(src: &str) -> Result<Lowered, String> {
    let options = LowerOptions {
        build_platform: amd64(),
        ..LowerOptions::default()
    };
    let resolve_options = ResolveOptions {
        build_platform: amd64(),
        ..ResolveOptions::default()
    };
    lower_source(src, resolve_options, options)
}

/// Every vertex of the graph is needed by the target: nothing unused was lowered.
fn assert_no_stray_vertices(l: &Lowered) {
    assert_eq!(l.graph.closure(l.target).len(), l.graph.len());
}

macro_rules! snapshot_case {
    ($name:ident) => {
        #[test]
        fn $name() {
            let lowered = lower_case(stringify!($name));
            assert_no_stray_vertices(&lowered);
            insta::assert_snapshot!(stringify!($name), dump(&lowered));
        }
    };
}

snapshot_case!(add);
snapshot_case!(entrypoint);
snapshot_case!(heredoc);
snapshot_case!(link);
snapshot_case!(metadata);
snapshot_case!(mounts);
snapshot_case!(multistage);
snapshot_case!(onbuild);
snapshot_case!(platform);
snapshot_case!(scratch);

#[test]
fn every_case_has_a_snapshot_test() {
    let cases = [
        "add",
        "entrypoint",
        "heredoc",
        "link",
        "metadata",
        "mounts",
        "multistage",
        "onbuild",
        "platform",
        "scratch",
    ];
    let mut found: Vec<String> = std::fs::read_dir(case_dir(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    assert_eq!(found, cases);
}

fn names(l: &Lowered) -> Vec<String> {
    l.graph
        .closure(l.target)
        .iter()
        .map(|v| l.graph.vertex(*v).meta.name.clone())
        .collect()
}

fn ops(l: &Lowered) -> Vec<Op> {
    l.graph
        .closure(l.target)
        .iter()
        .map(|v| l.graph.vertex(*v).op.clone())
        .collect()
}

#[test]
fn unused_stages_have_no_vertex() {
    let l = lower_case("multistage");
    assert_no_stray_vertices(&l);
    assert!(
        names(&l).iter().all(|n| !n.contains("unused")),
        "{:#?}",
        names(&l)
    );
    assert!(l.stages.iter().all(|s| s.name != "unused"));
}

#[test]
fn onbuild_triggers_fire_once() {
    let l = lower_case("onbuild");
    // The image's triggers ran in `app` and are not in its config; `lib`'s own triggers are
    // in `lib`'s config, ran in the last stage, and are not in the final config.
    let app = &l.stages[0];
    assert_eq!(app.name, "app");
    assert!(app.config.config.on_build.is_empty());
    assert_eq!(
        l.stages[1].config.config.on_build,
        vec!["COPY --from=app /out /from-app", "RUN echo triggered"]
    );
    assert!(l.config.config.on_build.is_empty());
    let n = names(&l);
    assert!(n.contains(&"[app 2/4] ONBUILD COPY . /app/src".to_string()));
    assert!(n.contains(&"[stage-2 2/3] ONBUILD RUN echo triggered".to_string()));
}

#[test]
fn identical_steps_in_two_stages_are_one_vertex() {
    let l = simple(
        "FROM alpine AS a\nRUN echo same\nFROM alpine AS b\nRUN echo same\nFROM scratch\nCOPY --from=a /x /a\nCOPY --from=b /x /b\n",
    )
    .unwrap();
    let runs: Vec<_> = ops(&l)
        .into_iter()
        .filter(|op| matches!(op, Op::Exec(_)))
        .collect();
    assert_eq!(runs.len(), 1);
    assert_eq!(l.stages[0].vertex, l.stages[1].vertex);
    // The shared vertex keeps the first stage's name.
    assert!(names(&l).contains(&"[a 2/2] RUN echo same".to_string()));
}

#[test]
fn each_copy_reads_only_its_own_paths() {
    let one = simple("FROM scratch\nCOPY a /a\n").unwrap();
    let two = simple("FROM scratch\nCOPY a /a\nCOPY b c/ /bc/\n").unwrap();
    let locals = |l: &Lowered| -> Vec<Vec<String>> {
        ops(l)
            .into_iter()
            .filter_map(|op| match op {
                Op::Source(SourceOp::Local { include, .. }) => Some(include),
                _ => None,
            })
            .collect()
    };
    assert_eq!(locals(&one), vec![vec!["a".to_string()]]);
    assert_eq!(
        locals(&two),
        vec![
            vec!["a".to_string()],
            vec!["b".to_string(), "c".to_string()]
        ]
    );
    // The first COPY is the same vertex whatever else the Dockerfile copies.
    let first = |l: &Lowered| {
        let id = l.graph.closure(l.target)[1];
        l.graph.vertex(id).digest
    };
    assert_eq!(first(&one), first(&two));
    let whole = simple("FROM scratch\nCOPY . /src\n").unwrap();
    assert_eq!(locals(&whole), vec![Vec::<String>::new()]);
}

#[test]
fn entrypoint_resets_inherited_cmd() {
    let l = lower_case("entrypoint");
    assert_eq!(l.config.config.entrypoint, vec!["/bin/sh", "-c", "run me"]);
    assert!(l.config.config.cmd.is_empty());
    let kept = simple("FROM alpine\nCMD [\"a\"]\nENTRYPOINT [\"b\"]\n").unwrap();
    assert_eq!(kept.config.config.cmd, vec!["a"]);
    let reset =
        simple("FROM alpine AS base\nCMD [\"a\"]\nFROM base\nENTRYPOINT [\"b\"]\n").unwrap();
    assert!(reset.config.config.cmd.is_empty());
    // `ENTRYPOINT []` clears an inherited entrypoint (and the CMD).
    let cleared =
        simple("FROM alpine AS base\nENTRYPOINT [\"e\"]\nCMD [\"c\"]\nFROM base\nENTRYPOINT []\n")
            .unwrap();
    assert!(cleared.config.config.entrypoint.is_empty());
    assert!(cleared.config.config.cmd.is_empty());
    assert_eq!(
        cleared.config.history.last().map(|h| h.created_by.as_str()),
        Some("ENTRYPOINT []")
    );
}

#[test]
fn shell_and_exec_forms() {
    let l = simple(
        "FROM alpine\nRUN echo \"$HOME\" 'x'\nSHELL [\"/bin/bash\", \"-eu\", \"-c\"]\nRUN a  b\nRUN [\"ls\", \"-l\"]\n",
    )
    .unwrap();
    let args: Vec<Vec<String>> = ops(&l)
        .into_iter()
        .filter_map(|op| match op {
            Op::Exec(e) => Some(e.args),
            _ => None,
        })
        .collect();
    assert_eq!(
        args,
        vec![
            vec!["/bin/sh", "-c", "echo \"$HOME\" 'x'"],
            vec!["/bin/bash", "-eu", "-c", "a  b"],
            vec!["ls", "-l"],
        ]
    );
}

#[test]
fn run_env_composition() {
    let l = simple(
        "FROM alpine\nENV A=1 PATH=/opt/bin\nARG B=2\nARG C\nENV A=3\nARG BUILDKIT_SBOM_SCAN_STAGE=true\nRUN env\n",
    )
    .unwrap();
    let Some(Op::Exec(exec)) = ops(&l).into_iter().find(|op| matches!(op, Op::Exec(_))) else {
        panic!("no exec")
    };
    // ENV and ARG values in BuildKit's order (a name set again moves last); unset ARGs and
    // the SBOM arguments are not in the environment.
    assert_eq!(exec.env, vec!["PATH=/opt/bin", "B=2", "A=3"]);
    assert_eq!(l.config.config.env, vec!["PATH=/opt/bin", "A=3"]);
    let history: Vec<&str> = l
        .config
        .history
        .iter()
        .map(|h| h.created_by.as_str())
        .collect();
    assert_eq!(
        history.last().copied(),
        Some("RUN |3 B=2 C= BUILDKIT_SBOM_SCAN_STAGE=true /bin/sh -c env # buildkit")
    );
}

#[test]
fn default_path_is_added() {
    let l = simple("FROM scratch\nRUN true\n").unwrap();
    let Some(Op::Exec(exec)) = ops(&l).into_iter().find(|op| matches!(op, Op::Exec(_))) else {
        panic!("no exec")
    };
    assert_eq!(
        exec.env,
        vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    );
    // On scratch the rootfs has no input.
    assert_eq!(exec.mounts[0].input, None);
    assert_eq!(exec.mounts[0].output, Some(0));
}

#[test]
fn copy_destinations_follow_workdir() {
    let l = simple(
        "FROM alpine\nWORKDIR /app\nCOPY a .\nCOPY b sub/\nCOPY c sub\nCOPY d /abs/\nARG E\nCOPY e $E\n",
    )
    .unwrap();
    let dests: Vec<String> = ops(&l)
        .into_iter()
        .filter_map(|op| match op {
            Op::File(f) => f.actions.into_iter().find_map(|a| match a {
                FileAction::Copy { dest, .. } => Some(dest),
                _ => None,
            }),
            _ => None,
        })
        .collect();
    assert_eq!(
        dests,
        vec!["/app/", "/app/sub/", "/app/sub", "/abs/", "/app/"]
    );
}

#[test]
fn workdir_root_makes_no_vertex() {
    let l = simple("FROM alpine\nWORKDIR /\nWORKDIR /a\nRUN pwd\n").unwrap();
    let n = names(&l);
    assert_eq!(
        n,
        vec![
            "[1/4] FROM docker.io/library/alpine:latest",
            "[2/4] WORKDIR /a",
            "[3/4] RUN pwd",
        ]
    );
    let history: Vec<(String, bool)> = l
        .config
        .history
        .iter()
        .map(|h| (h.created_by.clone(), h.empty_layer))
        .collect();
    assert_eq!(
        history,
        vec![
            ("WORKDIR /".to_string(), true),
            ("WORKDIR /a".to_string(), false),
            ("RUN /bin/sh -c pwd # buildkit".to_string(), false),
        ]
    );
}

#[test]
fn entitlements_and_bad_commands() {
    assert_eq!(
        simple("FROM alpine\nRUN --security=insecure true\n").unwrap_err(),
        "security.insecure is not allowed"
    );
    assert_eq!(
        simple("FROM alpine\nRUN --network=host true\n").unwrap_err(),
        "network.host is not allowed"
    );
    assert_eq!(
        simple("FROM alpine\nRUN []\n").unwrap_err(),
        "arguments are required"
    );
    assert!(simple("FROM alpine\nRUN --network=none true\n").is_ok());
}

#[test]
fn secret_and_ssh_defaults() {
    let l = simple(
        "FROM alpine\nRUN --mount=type=secret,id=tok --mount=type=secret,id=k,env=KEY --mount=type=ssh --mount=type=ssh,id=b true\n",
    )
    .unwrap();
    let Some(Op::Exec(exec)) = ops(&l).into_iter().find(|op| matches!(op, Op::Exec(_))) else {
        panic!("no exec")
    };
    let targets: Vec<&str> = exec.mounts.iter().map(|m| m.target.as_str()).collect();
    assert_eq!(
        targets,
        vec![
            "/",
            "/run/secrets/tok",
            "",
            "/run/buildkit/ssh_agent.0",
            "/run/buildkit/ssh_agent.1"
        ]
    );
    assert!(exec
        .env
        .contains(&"SSH_AUTH_SOCK=/run/buildkit/ssh_agent.0".to_string()));
    assert!(matches!(
        &exec.mounts[2].kind,
        MountKind::Secret { env: Some(e), mode: 0o400, .. } if e == "KEY"
    ));
    // Every mount source registers a state in BuildKit, so the lone stage keeps its name.
    assert!(
        names(&l)
            .iter()
            .any(|n| n.starts_with("[stage-0 2/2] RUN --mount=type=secret")),
        "{:?}",
        names(&l)
    );
}

#[test]
fn never_panics_on_generated_dockerfiles() {
    const PARTS: [&str; 48] = [
        "FROM ",
        "scratch",
        "alpine",
        " AS ",
        "b",
        "ARG ",
        "X=",
        "${X:-y}",
        "RUN ",
        "--mount=",
        "type=cache,",
        "type=secret,",
        "type=ssh,",
        "type=tmpfs,",
        "target=",
        "from=b,",
        "/",
        ".",
        "x",
        "COPY ",
        "ADD ",
        "--from=",
        "0",
        "--link ",
        "--parents ",
        "--chmod=",
        "u+x",
        "755",
        "https://e.com/a.tar",
        "https://e.com/a.git#main:sub",
        "<<EOF",
        "\n#!/bin/sh\nEOF\n",
        "\nEOF\n",
        "EXPOSE ",
        "80/udp",
        "ONBUILD ",
        "ENV ",
        "a=b",
        "WORKDIR ",
        "ENTRYPOINT ",
        "CMD ",
        "[]",
        "[\"a\"]",
        "SHELL [\"x\"]",
        "HEALTHCHECK CMD true",
        "USER ",
        "\"",
        "\n",
    ];
    let mut seed: u64 = 0x10_5eed;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    let mut lowered = 0;
    for _ in 0..3000 {
        let mut src = String::from("FROM alpine AS a\n");
        for _ in 0..(next() % 30) {
            src.push_str(PARTS[next() % PARTS.len()]);
        }
        let options = LowerOptions {
            allow_insecure: true,
            allow_network_host: true,
            build_platform: amd64(),
            base_images: HashMap::new(),
            ..LowerOptions::default()
        };
        let resolve_options = ResolveOptions {
            build_platform: amd64(),
            ..ResolveOptions::default()
        };
        if lower_source(&src, resolve_options, options).is_ok() {
            lowered += 1;
        }
    }
    assert!(lowered > 100, "only {lowered} generated files lowered");
}
