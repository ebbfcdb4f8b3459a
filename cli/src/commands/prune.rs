//! `strata prune [--all] [--keep-storage SIZE] [--filter until=DURATION]`: remove build cache
//! least recently used first; tagged images and what running builds hold are never touched.

use crate::{human, root};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;
use strata_cache::PruneOptions;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also remove cache mounts (`RUN --mount=type=cache` directories).
    #[arg(short, long)]
    all: bool,
    /// Keep this much cache (e.g. `10GB`, `512MB`).
    #[arg(long, value_parser = parse_size)]
    keep_storage: Option<u64>,
    /// `until=24h`: only remove cache not used for that long.
    #[arg(long)]
    filter: Vec<String>,
}

/// `10GB`, `512MB`, `1.5GiB`, or plain bytes.
fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid size {text:?}"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("invalid size unit in {text:?}")),
    };
    Ok((value * scale) as u64)
}

/// Go-style durations as `docker builder prune --filter until=` takes them: `24h`, `90m`, `30s`.
fn parse_until(text: &str) -> Result<Duration> {
    let mut total = 0f64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let n: f64 = number
            .parse()
            .with_context(|| format!("invalid duration {text:?}"))?;
        number.clear();
        total += n * match c {
            'h' => 3600.0,
            'm' => 60.0,
            's' => 1.0,
            _ => bail!("invalid duration {text:?}"),
        };
    }
    if !number.is_empty() {
        bail!("invalid duration {text:?}: missing unit");
    }
    Ok(Duration::from_secs_f64(total))
}

pub fn run(args: Args, root_dir: Option<&Path>) -> Result<ExitCode> {
    let mut older_than = None;
    for filter in &args.filter {
        match filter.split_once('=') {
            Some(("until", value)) => older_than = Some(parse_until(value)?),
            _ => bail!("unsupported filter {filter:?} (supported: until=DURATION)"),
        }
    }
    let store = root::open(root_dir)?;
    let report = store.prune(&PruneOptions {
        all: args.all,
        keep_storage: args.keep_storage,
        older_than,
    })?;
    for warning in &report.warnings {
        eprintln!("WARNING: {warning}");
    }
    println!(
        "Deleted {} cache records, {} snapshots, {} blobs, {} cache mounts",
        report.cache_records, report.snapshots.count, report.blobs.count, report.cache_mounts.count
    );
    println!(
        "Total reclaimed space: {}",
        human::size(report.freed_bytes())
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("10GB").unwrap(), 10_000_000_000);
        assert_eq!(parse_size("1.5KiB").unwrap(), 1536);
        assert!(parse_size("ten").is_err());
        assert_eq!(parse_until("1h30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_until("24").is_err());
    }
}
