//! The live terminal view (`--progress tty`), modelled on buildx's:
//!
//! ```text
//! [+] Building 2.4s (3/5)
//!  => CACHED [stage-0 1/3] FROM docker.io/library/busybox        0.0s
//!  => [stage-0 2/3] RUN sleep 2                                  1.2s
//!  => => # a line of its output
//! ```
//!
//! Each frame rewrites the block drawn before it (cursor up, clear), so lines are cut to the
//! terminal width: a wrapped line would break the count of lines to go back over. While
//! steps run, the block keeps to the terminal height by leaving out the oldest finished
//! steps; the last frame lists every step, then the output of failed steps.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::time::{Duration, Instant};
use strata_solver::progress::{Event, EventKind};
use strata_solver::Digest;

/// Output lines kept per running step (buildx shows the last six).
const LOG_LINES: usize = 6;
/// Output lines of a failed step printed after the last frame.
const ERROR_LINES: usize = 20;

#[derive(Debug, PartialEq)]
enum Status {
    Waiting,
    Running(Instant),
    Cached,
    Done(Duration),
    Failed(Duration, String),
    Canceled,
}

#[derive(Debug)]
struct Step {
    name: String,
    status: Status,
    /// The last complete output lines, and a line still being written.
    logs: VecDeque<String>,
    partial: Vec<u8>,
    /// Every line for the error report (bounded).
    tail: VecDeque<String>,
}

impl Step {
    fn finished(&self) -> bool {
        !matches!(self.status, Status::Waiting | Status::Running(_))
    }
}

/// The live view; [`Tty::event`] updates it, [`Tty::draw`] shows it.
#[derive(Debug)]
pub struct Tty<W: Write> {
    out: W,
    started: Instant,
    order: Vec<Digest>,
    steps: HashMap<Digest, Step>,
    /// Lines of the frame on screen, to move back over.
    drawn: usize,
    /// Size used when the output is not a terminal (tests).
    fixed_size: Option<(usize, usize)>,
}

impl<W: Write> Tty<W> {
    /// A view writing to `out`, timing the build from `started`.
    pub fn new(out: W, started: Instant) -> Self {
        Self {
            out,
            started,
            order: Vec::new(),
            steps: HashMap::new(),
            drawn: 0,
            fixed_size: None,
        }
    }

    /// Applies one event; drawing waits for the next tick.
    pub fn event(&mut self, event: &Event) {
        if !self.steps.contains_key(&event.vertex) {
            self.order.push(event.vertex);
        }
        let step = self.steps.entry(event.vertex).or_insert_with(|| Step {
            name: event.name.to_string(),
            status: Status::Waiting,
            logs: VecDeque::new(),
            partial: Vec::new(),
            tail: VecDeque::new(),
        });
        match &event.kind {
            EventKind::Cached => step.status = Status::Cached,
            EventKind::Started => step.status = Status::Running(event.at),
            EventKind::Log { data, .. } => {
                step.partial.extend_from_slice(data);
                while let Some(pos) = step.partial.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = step.partial.drain(..=pos).collect();
                    push_line(step, &line[..line.len() - 1]);
                }
            }
            EventKind::Completed { duration } => step.status = Status::Done(*duration),
            EventKind::Failed { error } => {
                let ran = match step.status {
                    Status::Running(since) => event.at.saturating_duration_since(since),
                    _ => Duration::ZERO,
                };
                let partial = std::mem::take(&mut step.partial);
                if !partial.is_empty() {
                    push_line(step, &partial);
                }
                step.status = Status::Failed(ran, error.clone());
            }
            EventKind::Canceled => step.status = Status::Canceled,
        }
    }

    /// Redraws the block at `now`; `last` draws the closing frame and the failed steps' output.
    pub fn draw(&mut self, now: Instant, last: bool) {
        let (width, height) = self.size();
        let lines = self.frame(now, width, if last { usize::MAX } else { height }, last);
        let mut text = String::new();
        if self.drawn > 0 {
            // Back to the first column of the first line drawn last time.
            text.push_str(&format!("\x1b[{}F", self.drawn));
        }
        for line in &lines {
            text.push_str(line);
            text.push_str("\x1b[K\n");
        }
        text.push_str("\x1b[J");
        self.drawn = lines.len();
        if last {
            text.push_str(&self.error_report());
        }
        // Progress is advisory: a closed terminal must not fail the build.
        let _ = self.out.write_all(text.as_bytes());
        let _ = self.out.flush();
    }

    fn size(&self) -> (usize, usize) {
        if let Some(size) = self.fixed_size {
            return size;
        }
        match rustix::termios::tcgetwinsize(std::io::stderr()) {
            Ok(ws) if ws.ws_col > 0 && ws.ws_row > 0 => (ws.ws_col.into(), ws.ws_row.into()),
            _ => (80, 24),
        }
    }

    /// The lines of one frame, each at most `width - 1` columns, at most `height - 1` lines.
    fn frame(&self, now: Instant, width: usize, height: usize, last: bool) -> Vec<String> {
        let done = self.steps.values().filter(|s| s.finished()).count();
        let elapsed = now.saturating_duration_since(self.started).as_secs_f64();
        let mut header = format!("[+] Building {elapsed:.1}s ({done}/{})", self.steps.len());
        if last {
            header.push_str(" FINISHED");
        }
        let mut body: Vec<(bool, String)> = Vec::new();
        for digest in &self.order {
            let step = &self.steps[digest];
            let (prefix, secs) = match &step.status {
                Status::Waiting => ("", None),
                Status::Running(since) => ("", Some(now.saturating_duration_since(*since))),
                Status::Cached => ("CACHED ", Some(Duration::ZERO)),
                Status::Done(d) => ("", Some(*d)),
                Status::Failed(d, _) => ("ERROR ", Some(*d)),
                Status::Canceled => ("CANCELED ", None),
            };
            let timer = secs.map_or(String::new(), |d| format!("{:.1}s", d.as_secs_f64()));
            body.push((
                step.finished(),
                fit_columns(&format!(" => {prefix}{}", step.name), &timer, width),
            ));
            if matches!(step.status, Status::Running(_)) {
                for log in &step.logs {
                    body.push((false, fit(&format!(" => => # {log}"), width)));
                }
            }
        }
        // Keep to the terminal: leave out the oldest finished steps first.
        let room = height.saturating_sub(2);
        let mut excess = body.len().saturating_sub(room);
        body.retain(|(finished, _)| {
            if excess > 0 && *finished {
                excess -= 1;
                return false;
            }
            true
        });
        let skip = body.len().saturating_sub(room);
        std::iter::once(fit(&header, width))
            .chain(body.into_iter().skip(skip).map(|(_, line)| line))
            .collect()
    }

    /// buildx's block after the progress: each failed step's last output lines.
    fn error_report(&self) -> String {
        let mut text = String::new();
        for digest in &self.order {
            let step = &self.steps[digest];
            if let Status::Failed(..) = step.status {
                text.push_str(&format!("------\n > {}:\n", step.name));
                for line in &step.tail {
                    text.push_str(line);
                    text.push('\n');
                }
                text.push_str("------\n");
            }
        }
        text
    }
}

fn push_line(step: &mut Step, line: &[u8]) {
    // Control characters would move the cursor and break the frame.
    let line: String = String::from_utf8_lossy(line)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if step.logs.len() == LOG_LINES {
        step.logs.pop_front();
    }
    step.logs.push_back(line.clone());
    if step.tail.len() == ERROR_LINES {
        step.tail.pop_front();
    }
    step.tail.push_back(line);
}

/// `text` cut to `width - 1` characters.
fn fit(text: &str, width: usize) -> String {
    text.chars().take(width.saturating_sub(1)).collect()
}

/// `left` and `right` on one line of `width - 1` columns, `right` flush right.
fn fit_columns(left: &str, right: &str, width: usize) -> String {
    let width = width.saturating_sub(1);
    let right_len = right.chars().count();
    let room = width.saturating_sub(right_len + 1);
    let left: String = left.chars().take(room).collect();
    let pad = width.saturating_sub(left.chars().count() + right_len);
    format!("{left}{}{right}", " ".repeat(pad))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::test_event as event;
    use strata_solver::progress::Stream;

    fn view(t0: Instant) -> Tty<Vec<u8>> {
        let mut tty = Tty::new(Vec::new(), t0);
        tty.fixed_size = Some((60, 10));
        tty
    }

    #[test]
    fn running_steps_show_live_timers_and_their_last_lines() {
        let t0 = Instant::now();
        let mut tty = view(t0);
        tty.event(&event(1, "[1/2] FROM busybox", EventKind::Cached, t0));
        tty.event(&event(2, "[2/2] RUN sleep 2", EventKind::Started, t0));
        let log = EventKind::Log {
            stream: Stream::Stdout,
            data: b"one\ntwo\npart".to_vec(),
        };
        tty.event(&event(2, "[2/2] RUN sleep 2", log, t0));
        let frame = tty.frame(t0 + Duration::from_millis(1250), 60, 10, false);
        assert_eq!(
            frame,
            [
                "[+] Building 1.2s (1/2)",
                " => CACHED [1/2] FROM busybox                          0.0s",
                " => [2/2] RUN sleep 2                                  1.2s",
                " => => # one",
                " => => # two",
            ]
        );
        // A later tick moves the running timer only.
        let frame = tty.frame(t0 + Duration::from_millis(2050), 60, 10, false);
        assert!(frame[2].ends_with("2.0s"), "{frame:?}");
        assert!(frame[1].ends_with("0.0s"));
    }

    #[test]
    fn redraw_moves_back_over_the_previous_frame() {
        let t0 = Instant::now();
        let mut tty = view(t0);
        tty.event(&event(1, "[1/1] RUN true", EventKind::Started, t0));
        tty.draw(t0, false);
        let first = String::from_utf8(std::mem::take(&mut tty.out)).unwrap();
        assert!(!first.contains("\x1b[2F"), "{first:?}");
        let done = EventKind::Completed {
            duration: Duration::from_millis(300),
        };
        tty.event(&event(1, "[1/1] RUN true", done, t0));
        tty.draw(t0 + Duration::from_millis(400), true);
        let second = String::from_utf8(tty.out).unwrap();
        assert!(
            second.starts_with("\x1b[2F[+] Building 0.4s (1/1) FINISHED"),
            "{second:?}"
        );
        assert!(second.contains(" => [1/1] RUN true"), "{second:?}");
        assert!(second.contains("0.3s\x1b[K\n"), "{second:?}");
    }

    #[test]
    fn frame_keeps_to_the_terminal_and_width() {
        let t0 = Instant::now();
        let mut tty = view(t0);
        for v in 1..=20u8 {
            tty.event(&event(
                v,
                &format!("[{v}/21] COPY f{v} ."),
                EventKind::Cached,
                t0,
            ));
        }
        let long = format!("[21/21] RUN {}", "x".repeat(200));
        tty.event(&event(21, &long, EventKind::Started, t0));
        let frame = tty.frame(t0, 40, 10, false);
        assert_eq!(frame.len(), 9);
        assert!(frame.iter().all(|l| l.chars().count() <= 39), "{frame:?}");
        // The running step stays; the oldest cached ones went.
        assert!(frame[8].starts_with(" => [21/21] RUN xxx"), "{frame:?}");
        assert!(frame[8].ends_with("0.0s"));
        assert!(frame[1].contains("[14/21]"), "{frame:?}");
        // The last frame lists every step.
        assert_eq!(tty.frame(t0, 40, usize::MAX, true).len(), 22);
    }

    #[test]
    fn failed_steps_print_their_output_after_the_last_frame() {
        let t0 = Instant::now();
        let mut tty = view(t0);
        let name = "[1/1] RUN echo oops; exit 3";
        tty.event(&event(1, name, EventKind::Started, t0));
        let log = EventKind::Log {
            stream: Stream::Stderr,
            data: b"oops\x1b[2J".to_vec(),
        };
        tty.event(&event(1, name, log, t0));
        let failed = EventKind::Failed {
            error: "exit code: 3".into(),
        };
        tty.event(&event(1, name, failed, t0 + Duration::from_millis(100)));
        tty.draw(t0 + Duration::from_millis(100), true);
        let text = String::from_utf8(tty.out).unwrap();
        assert!(
            text.contains(" => ERROR [1/1] RUN echo oops; exit 3"),
            "{text:?}"
        );
        assert!(
            text.ends_with("------\n > [1/1] RUN echo oops; exit 3:\noops [2J\n------\n"),
            "{text:?}"
        );
    }
}
