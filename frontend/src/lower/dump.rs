//! A stable text form of a lowering result, for snapshot tests and debugging: every vertex
//! the target needs, inputs before users, numbered in that order (`#0`, `#1`, …), each with
//! its progress name, lines, inputs and op (as JSON, byte strings shown as text); then the
//! image config as JSON, with each history entry's layer vertex.
//!
//! Digests are left out on purpose: they change whenever an op's encoding changes, which
//! would churn every snapshot without saying anything about the lowering.

use super::Lowered;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt::Write;
use strata_solver::{Graph, VertexId};

/// The graph part of [`dump`].
pub fn dump_graph(graph: &Graph, target: VertexId) -> String {
    let order = graph.closure(target);
    let number: HashMap<VertexId, usize> = order.iter().enumerate().map(|(i, v)| (*v, i)).collect();
    let mut out = String::new();
    for (i, id) in order.iter().enumerate() {
        let v = graph.vertex(*id);
        let _ = write!(out, "#{i} {:?}", v.meta.name);
        if let Some((a, b)) = v.meta.lines {
            let _ = write!(out, " lines {a}-{b}");
        }
        if !v.inputs.is_empty() {
            let inputs: Vec<String> = v
                .inputs
                .iter()
                .map(|input| {
                    let n = number.get(&input.vertex).copied().unwrap_or(usize::MAX);
                    if input.output == 0 {
                        format!("#{n}")
                    } else {
                        format!("#{n}.{}", input.output)
                    }
                })
                .collect();
            let _ = write!(out, " <- {}", inputs.join(", "));
        }
        if v.meta.ignore_cache {
            out.push_str(" ignore-cache");
        }
        out.push('\n');
        if !v.meta.proxy_env.is_empty() {
            let _ = writeln!(out, "  proxy_env: {:?}", v.meta.proxy_env);
        }
        let mut op = serde_json::to_value(&v.op).unwrap_or(Value::Null);
        bytes_as_text(&mut op);
        let text = serde_json::to_string_pretty(&op).unwrap_or_default();
        for line in text.lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

/// The whole result: graph, then the target's image config and history layers.
pub fn dump(lowered: &Lowered) -> String {
    let mut out = dump_graph(&lowered.graph, lowered.target);
    let order = lowered.graph.closure(lowered.target);
    let number: HashMap<VertexId, usize> = order.iter().enumerate().map(|(i, v)| (*v, i)).collect();
    let _ = writeln!(
        out,
        "target: #{}",
        number.get(&lowered.target).copied().unwrap_or(usize::MAX)
    );
    for stage in &lowered.stages {
        let vertex = match stage.vertex {
            Some(v) => format!("#{}", number.get(&v).copied().unwrap_or(usize::MAX)),
            None => "scratch".to_string(),
        };
        let _ = writeln!(out, "stage {} {:?}: {vertex}", stage.index, stage.name);
    }
    out.push_str("config:\n");
    let json = serde_json::to_string_pretty(&lowered.config).unwrap_or_default();
    for line in json.lines() {
        let _ = writeln!(out, "  {line}");
    }
    out.push_str("history layers:\n");
    for (i, h) in lowered.config.history.iter().enumerate() {
        if let Some(layer) = h.layer {
            let _ = writeln!(
                out,
                "  {i} #{} {:?}",
                number.get(&layer).copied().unwrap_or(usize::MAX),
                h.created_by
            );
        }
    }
    out
}

/// Replaces arrays of byte values under a `data` key with their text.
fn bytes_as_text(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "data" {
                    if let Value::Array(items) = v {
                        let bytes: Option<Vec<u8>> = items
                            .iter()
                            .map(|b| b.as_u64().and_then(|n| u8::try_from(n).ok()))
                            .collect();
                        if let Some(bytes) = bytes {
                            *v = Value::String(String::from_utf8_lossy(&bytes).into_owned());
                            continue;
                        }
                    }
                }
                bytes_as_text(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(bytes_as_text),
        _ => {}
    }
}
