//! Line-oriented progress: `plain`, `rawjson` and `quiet`.
//!
//! `plain` is buildx's `--progress=plain`: each vertex gets a number `#N` the first time it
//! shows up, then `#N name`, its output lines as `#N 0.123 line` (seconds since the vertex
//! started), and `#N CACHED`, `#N DONE 0.2s`, `#N ERROR: …` or `#N CANCELED`. `rawjson`
//! prints one JSON object per event; `quiet` prints nothing.

use std::collections::HashMap;
use std::io::Write;
use std::time::Instant;
use strata_solver::progress::{Event, EventKind, Stream};
use strata_solver::Digest;

use super::Mode;

/// Per-vertex state of the plain renderer.
#[derive(Debug)]
struct VertexState {
    number: usize,
    started: Option<Instant>,
    /// Output not yet ended by a newline.
    partial: Vec<u8>,
}

/// Turns events into text on `out`.
#[derive(Debug)]
pub struct Renderer<W: Write> {
    mode: Mode,
    out: W,
    vertices: HashMap<Digest, VertexState>,
}

impl<W: Write> Renderer<W> {
    /// A renderer writing to `out`.
    pub fn new(mode: Mode, out: W) -> Self {
        Self {
            mode,
            out,
            vertices: HashMap::new(),
        }
    }

    /// Renders one event. Write errors (a closed pipe) are ignored: progress is advisory.
    pub fn event(&mut self, event: &Event) {
        let _ = match self.mode {
            Mode::Quiet => Ok(()),
            Mode::Rawjson => self.json(event),
            Mode::Auto | Mode::Tty | Mode::Plain => self.plain(event),
        };
    }

    fn state(&mut self, event: &Event) -> (&mut VertexState, bool) {
        let next = self.vertices.len() + 1;
        let mut new = false;
        let state = self.vertices.entry(event.vertex).or_insert_with(|| {
            new = true;
            VertexState {
                number: next,
                started: None,
                partial: Vec::new(),
            }
        });
        (state, new)
    }

    fn plain(&mut self, event: &Event) -> std::io::Result<()> {
        let (state, new) = self.state(event);
        let n = state.number;
        let mut text = String::new();
        if new {
            text.push_str(&format!("#{n} {}\n", event.name));
        }
        match &event.kind {
            EventKind::Cached => text.push_str(&format!("#{n} CACHED\n")),
            EventKind::Started => state.started = Some(event.at),
            EventKind::Log { data, .. } => {
                let since = state
                    .started
                    .map_or(0.0, |s| event.at.duration_since(s).as_secs_f64());
                state.partial.extend_from_slice(data);
                while let Some(pos) = state.partial.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = state.partial.drain(..=pos).collect();
                    let line = String::from_utf8_lossy(&line[..line.len() - 1]);
                    text.push_str(&format!("#{n} {since:.3} {line}\n"));
                }
            }
            EventKind::Completed { duration } => {
                text.push_str(&flush_partial(state, n));
                text.push_str(&format!("#{n} DONE {:.1}s\n", duration.as_secs_f64()));
            }
            EventKind::Failed { error } => {
                text.push_str(&flush_partial(state, n));
                text.push_str(&format!("#{n} ERROR: {error}\n"));
            }
            EventKind::Canceled => text.push_str(&format!("#{n} CANCELED\n")),
        }
        // A blank line between vertices, as buildx separates its blocks.
        if matches!(
            event.kind,
            EventKind::Cached
                | EventKind::Completed { .. }
                | EventKind::Failed { .. }
                | EventKind::Canceled
        ) {
            text.push('\n');
        }
        self.out.write_all(text.as_bytes())
    }

    fn json(&mut self, event: &Event) -> std::io::Result<()> {
        let (state, _) = self.state(event);
        let n = state.number;
        let (kind, extra) = match &event.kind {
            EventKind::Cached => ("cached", serde_json::Value::Null),
            EventKind::Started => ("started", serde_json::Value::Null),
            EventKind::Log { stream, data } => (
                "log",
                serde_json::json!({
                    "stream": if *stream == Stream::Stdout { 1 } else { 2 },
                    "data": String::from_utf8_lossy(data),
                }),
            ),
            EventKind::Completed { duration } => (
                "completed",
                serde_json::json!({ "duration": duration.as_secs_f64() }),
            ),
            EventKind::Failed { error } => ("error", serde_json::json!({ "error": error })),
            EventKind::Canceled => ("canceled", serde_json::Value::Null),
        };
        let line = serde_json::json!({
            "vertex": format!("blake3:{}", event.vertex.to_hex()),
            "number": n,
            "name": &*event.name,
            "event": kind,
            "detail": extra,
        });
        writeln!(self.out, "{line}")
    }
}

fn flush_partial(state: &mut VertexState, n: usize) -> String {
    if state.partial.is_empty() {
        return String::new();
    }
    let line = String::from_utf8_lossy(&state.partial).into_owned();
    state.partial.clear();
    format!("#{n} {line}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::test_event as event;
    use std::time::Duration;

    #[test]
    fn plain_output_looks_like_buildx() {
        let t0 = Instant::now();
        let mut r = Renderer::new(Mode::Plain, Vec::new());
        r.event(&event(1, "[1/2] FROM busybox", EventKind::Cached, t0));
        r.event(&event(2, "[2/2] RUN echo hi", EventKind::Started, t0));
        let log = EventKind::Log {
            stream: Stream::Stdout,
            data: b"hi\npart".to_vec(),
        };
        r.event(&event(
            2,
            "[2/2] RUN echo hi",
            log,
            t0 + Duration::from_millis(120),
        ));
        let done = EventKind::Completed {
            duration: Duration::from_millis(210),
        };
        r.event(&event(2, "[2/2] RUN echo hi", done, t0));
        let text = String::from_utf8(r.out).unwrap();
        assert_eq!(
            text,
            "#1 [1/2] FROM busybox\n#1 CACHED\n\n#2 [2/2] RUN echo hi\n#2 0.120 hi\n#2 part\n#2 DONE 0.2s\n\n"
        );
    }

    #[test]
    fn rawjson_is_one_object_per_line() {
        let mut r = Renderer::new(Mode::Rawjson, Vec::new());
        r.event(&event(
            3,
            "x",
            EventKind::Failed {
                error: "boom".into(),
            },
            Instant::now(),
        ));
        let text = String::from_utf8(r.out).unwrap();
        let value: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(value["event"], "error");
        assert_eq!(value["detail"]["error"], "boom");
    }
}
