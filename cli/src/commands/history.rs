//! `strata history IMAGE`: the image's history, newest first, as `docker history` prints
//! it — `IMAGE  CREATED  CREATED BY  SIZE  COMMENT`; the top row carries the image id, the
//! others `<missing>` (their intermediate images are not stored), SIZE is the size of the
//! layer the step made (`0B` for a step without one).

use crate::human;
use anyhow::{Context, Result};
use std::path::Path;
use std::process::ExitCode;
use strata_worker::image::details::target_descriptor;
use strata_worker::image::{find_image, host_platform, read_image};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image, by name or id.
    image: String,
    /// Don't truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Print sizes and dates in human readable format.
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set)]
    human: bool,
}

/// Width of CREATED BY before it is cut with `…`, as docker cuts it.
const CREATED_BY_WIDTH: usize = 45;

pub fn run(args: Args, root: Option<&Path>) -> Result<ExitCode> {
    let store = crate::root::open(root)?;
    let record = find_image(&store, &args.image)?;
    let image = read_image(&store, &target_descriptor(&record.target), &host_platform())
        .with_context(|| format!("cannot read image {}", args.image))?;
    let id = image.config_digest.to_string();
    let short_id = if args.no_trunc {
        id.clone()
    } else {
        id.trim_start_matches("sha256:").chars().take(12).collect()
    };
    let mut layers = image.layers().map(|l| l.size);
    let mut rows: Vec<Vec<String>> = image
        .config
        .history
        .iter()
        .map(|entry| {
            let size = if entry.empty_layer {
                0
            } else {
                layers.next().unwrap_or(0)
            };
            let created_by = entry.created_by.replace(['\t', '\n'], " ");
            let created_by = if args.no_trunc || created_by.chars().count() <= CREATED_BY_WIDTH {
                created_by
            } else {
                let mut cut: String = created_by.chars().take(CREATED_BY_WIDTH - 1).collect();
                cut.push('…');
                cut
            };
            let created = match human::timestamp(entry.created.as_deref()) {
                Some(t) if args.human => human::ago(t),
                Some(_) => entry.created.clone().unwrap_or_default(),
                None => "N/A".to_owned(),
            };
            let size = if args.human {
                human::size(size)
            } else {
                size.to_string()
            };
            vec![
                "<missing>".to_owned(),
                created,
                created_by,
                size,
                entry.comment.clone(),
            ]
        })
        .collect();
    rows.reverse();
    if let Some(top) = rows.first_mut() {
        top[0] = short_id.clone();
    }
    if args.quiet {
        println!("{short_id}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = vec![["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
        .map(str::to_owned)
        .to_vec()];
    table.extend(rows);
    print!("{}", human::table(&table));
    Ok(ExitCode::SUCCESS)
}
