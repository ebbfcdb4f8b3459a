//! Progress rendering: the solver's events shown the way buildx shows them.
//!
//! Main items: [`Mode`] (`--progress`), [`print`] (drains the event channel of a build).
//! `plain`, `rawjson` and `quiet` write lines as events arrive ([`plain::Renderer`]); `tty`
//! redraws a live block of per-step lines with running timers ([`tty::Tty`]), ticking ten
//! times a second while steps run.

mod plain;
mod tty;

use std::time::{Duration, Instant};
use strata_solver::progress::Event;
use tokio::sync::mpsc::UnboundedReceiver;

pub use plain::Renderer;

/// How progress is shown (`--progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// `tty` on a terminal, `plain` otherwise.
    Auto,
    /// Live per-step lines with timers, redrawn in place.
    Tty,
    /// buildx's plain text.
    Plain,
    /// One JSON object per event.
    Rawjson,
    /// Nothing.
    Quiet,
}

/// How often the tty view redraws while steps run (buildx redraws at about this rate).
const TICK: Duration = Duration::from_millis(100);

/// Renders every event of `rx` on stderr until the sender side is dropped.
pub async fn print(mode: Mode, mut rx: UnboundedReceiver<Event>) {
    if mode != Mode::Tty {
        let mut renderer = Renderer::new(mode, std::io::stderr());
        while let Some(event) = rx.recv().await {
            renderer.event(&event);
        }
        return;
    }
    let mut view = tty::Tty::new(std::io::stderr(), Instant::now());
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            event = rx.recv() => match event {
                Some(event) => view.event(&event),
                None => break,
            },
            _ = ticks.tick() => view.draw(Instant::now(), false),
        }
    }
    view.draw(Instant::now(), true);
}

/// A progress event for the renderers' tests.
#[cfg(test)]
pub(crate) fn test_event(
    vertex: u8,
    name: &str,
    kind: strata_solver::progress::EventKind,
    at: Instant,
) -> Event {
    Event {
        vertex: strata_solver::Digest([vertex; 32]),
        name: std::sync::Arc::from(name),
        at,
        kind,
    }
}
