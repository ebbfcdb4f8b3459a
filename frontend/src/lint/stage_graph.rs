//! How stages depend on one another through `COPY --from` and `RUN --mount=from=`, checked as
//! BuildKit's `buildStageDependencyGraph` does (no variables in `--from`, no cycles), and
//! which stages the last one needs: only those get their base stage's ONBUILD triggers.

use super::flags;
use super::mounts;
use super::stages::Program;
use super::BuildError;
use crate::parser::Span;
use crate::shell::{EnvList, Lexer};
use std::collections::HashMap;

/// Stages by name (the last definition of a name wins) and by index.
#[derive(Debug)]
pub(crate) struct StageIndex<'p> {
    by_name: HashMap<&'p str, usize>,
    count: usize,
}

impl<'p> StageIndex<'p> {
    pub(crate) fn new(program: &'p Program<'_>) -> Self {
        let mut by_name = HashMap::new();
        for (i, stage) in program.stages.iter().enumerate() {
            if !stage.name.is_empty() {
                by_name.insert(stage.name.as_str(), i);
            }
        }
        Self {
            by_name,
            count: program.stages.len(),
        }
    }

    /// The stage `--from` names: a number is a stage index, anything else a name (case
    /// does not matter); `None` for an image.
    pub(crate) fn copy_source(&self, from: &str) -> Result<Option<usize>, BuildError> {
        if let Ok(index) = from.parse::<i64>() {
            return match usize::try_from(index) {
                Ok(i) if i < self.count => Ok(Some(i)),
                _ => Err(BuildError::new(format!("invalid stage index {index}"))),
            };
        }
        Ok(self.by_name(from))
    }

    /// The stage called `name`, case-insensitively.
    pub(crate) fn by_name(&self, name: &str) -> Option<usize> {
        self.by_name.get(name.to_lowercase().as_str()).copied()
    }
}

/// A dependency of one stage on another, with the instruction that makes it.
#[derive(Debug, Clone, Copy)]
struct Dependency {
    stage: usize,
    span: Span,
}

/// Checks the dependencies and returns, per stage, whether the last stage needs it.
pub(crate) fn reachable(
    program: &Program<'_>,
    index: &StageIndex<'_>,
    base_stages: &[Option<usize>],
    lexer: &Lexer,
) -> Result<Vec<bool>, BuildError> {
    let mut deps: Vec<Vec<Dependency>> = Vec::with_capacity(program.stages.len());
    for stage in &program.stages {
        let mut stage_deps = Vec::new();
        for node in &stage.commands {
            match node.command().as_str() {
                "copy" => {
                    let Some(from) = flags::value(node, "from").filter(|f| !f.is_empty()) else {
                        continue;
                    };
                    let unexpanded = lexer
                        .process_word(from, &EnvList::new())
                        .map_err(|e| BuildError::new(e.with_word(from)))?;
                    if unexpanded != from {
                        return Err(BuildError::new(
                            "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround".to_string(),
                        ));
                    }
                    if let Some(s) = index.copy_source(from)? {
                        stage_deps.push(Dependency {
                            stage: s,
                            span: node.span,
                        });
                    }
                }
                "run" => {
                    for mount in flags::values(node, "mount") {
                        // The last `from=` of a mount is the one that counts.
                        let from = mounts::fields(mount).into_iter().rev().find_map(|f| {
                            let (key, value) = f.split_once('=')?;
                            key.eq_ignore_ascii_case("from").then(|| value.to_string())
                        });
                        if let Some(s) = from.and_then(|f| index.by_name(&f)) {
                            stage_deps.push(Dependency {
                                stage: s,
                                span: node.span,
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        deps.push(stage_deps);
    }
    check_cycles(program, &deps)?;

    let mut reachable = vec![false; program.stages.len()];
    let mut todo: Vec<usize> = program.stages.len().checked_sub(1).into_iter().collect();
    while let Some(i) = todo.pop() {
        if std::mem::replace(&mut reachable[i], true) {
            continue;
        }
        todo.extend(base_stages.get(i).copied().flatten());
        todo.extend(deps[i].iter().map(|d| d.stage));
    }
    Ok(reachable)
}

/// BuildKit's `validateCircularDependency`, iteratively so that no input exhausts the stack.
fn check_cycles(program: &Program<'_>, deps: &[Vec<Dependency>]) -> Result<(), BuildError> {
    let mut visited = vec![false; deps.len()];
    for start in 0..deps.len() {
        if visited[start] {
            continue;
        }
        // (stage, next dependency to look at); `on_path` mirrors the stack.
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        let mut on_path = vec![false; deps.len()];
        visited[start] = true;
        on_path[start] = true;
        while let Some(&mut (stage, ref mut next)) = stack.last_mut() {
            let Some(dep) = deps[stage].get(*next).copied() else {
                on_path[stage] = false;
                stack.pop();
                continue;
            };
            *next += 1;
            if on_path[dep.stage] {
                let name = match program.stages[start].name.as_str() {
                    "" => format!("stage-{start}"),
                    n => n.to_string(),
                };
                return Err(BuildError::at(
                    format!("circular dependency detected on stage: {name}"),
                    dep.span,
                ));
            }
            if !visited[dep.stage] {
                visited[dep.stage] = true;
                on_path[dep.stage] = true;
                stack.push((dep.stage, 0));
            }
        }
    }
    Ok(())
}
