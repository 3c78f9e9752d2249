//! Throughput benchmark (issue 10, item 1): feed items committed per second by Tidings
//! for T triggers of 1,000 recipients, beside the raw limit of the same disk — a minimal
//! feed-item table written directly with rusqlite (`raw`) — measured in the same round.
//! Ratios survive the noise of a shared machine better than absolute rates, so the
//! report leads with `ratio` (Tidings ÷ raw), the median over rounds.
//!
//! Run: `cargo bench --bench throughput` (tiny default: 5 triggers, 1 round, seconds; it
//! also runs under `cargo test` as a smoke test), or the figures:
//! `cargo bench --bench throughput -- --triggers 100 --rounds 3` (100k items) and
//! `-- --triggers 1000 --rounds 1` (1M items); `--page-size N` fixes the server's
//! fan-out pages at N (`fanout_page_size` and `fanout_solo_page_size`). Prints JSON and writes
//! `bench-results/throughput.json` (or `--out PATH`). `-- --costs 100000 --rounds 3` prints
//! what each row and index costs per item on the writer instead (see `costs`);
//! `-- --walk 10000 --rounds 5` the runner's CPU per recipient outside the database
//! (see `walk`). `--template shared` (rounds or `--walk`) uses a step template that reads
//! no recipient field, which the runner renders once per run. `--ids scattered` names the
//! recipients (in both Tidings and the raw table) in no key order, as random user ids
//! would be, instead of neighbours (see `tidings::recipient`).
//!
//! `--engine postgres` (issue 19) runs the rounds on PostgreSQL instead: the raw baseline
//! is the same table on PostgreSQL (`raw_pg`: one connection, 1,000-row multi-row INSERTs,
//! `synchronous_commit = on`) and Tidings runs with `--database-url`; each gets a fresh
//! database of its own per round, created through `--database-url URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, used only to create and drop them).
//! The report adds the `postgres` processes' CPU per item beside this process's.
//! `--analyze-secs N` runs `ANALYZE` on Tidings' database every N seconds during its run,
//! as autovacuum would on a server that has it on (see `support::Analyzer`).

mod costs;
mod raw;
mod raw_pg;
#[path = "../support/mod.rs"]
mod support;
mod tidings;
mod walk;

use serde_json::{Value, json};
use support::{Analyzer, Engine, PgDatabase, analyze_every_from_args};

struct Args {
    triggers: Vec<usize>,
    rounds: usize,
    out: String,
    /// `--costs N`: the per-row/per-index cost table over N items instead of the rounds.
    costs: Option<usize>,
    /// `--page-size N`: fixed fan-out pages of N (default: the server's adaptive pages).
    page_size: Option<usize>,
    /// `--walk N`: the walk's CPU per recipient over N recipients instead of the rounds.
    walk: Option<usize>,
    /// `--template shared`: the step's template reads no recipient field (see
    /// `tidings::markdown_body`).
    shared_template: bool,
    /// `--ids scattered`: recipient ids in no key order (`tidings::recipient`).
    scattered_ids: bool,
    /// `--engine sqlite|postgres` (with `--database-url`).
    engine: Engine,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        triggers: vec![5],
        rounds: 1,
        out: "bench-results/throughput.json".into(),
        costs: None,
        page_size: None,
        walk: None,
        shared_template: false,
        scattered_ids: false,
        engine: Engine::from_args()?,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--triggers" => {
                args.triggers = value
                    .split(',')
                    .map(|v| v.trim().parse().map_err(|_| format!("--triggers {value}")))
                    .collect::<Result<_, _>>()?;
                i += 1;
            }
            "--rounds" => {
                args.rounds = value.parse().map_err(|_| format!("--rounds {value}"))?;
                i += 1;
            }
            "--out" => {
                args.out = value;
                i += 1;
            }
            "--costs" => {
                args.costs = Some(value.parse().map_err(|_| format!("--costs {value}"))?);
                i += 1;
            }
            "--template" => {
                args.shared_template = match value.as_str() {
                    "shared" => true,
                    "recipient" => false,
                    _ => return Err(format!("--template {value}: shared or recipient")),
                };
                i += 1;
            }
            "--walk" => {
                args.walk = Some(value.parse().map_err(|_| format!("--walk {value}"))?);
                i += 1;
            }
            "--page-size" => {
                args.page_size = Some(value.parse().map_err(|_| format!("--page-size {value}"))?);
                i += 1;
            }
            "--ids" => {
                args.scattered_ids = match value.as_str() {
                    "scattered" => true,
                    "ordered" => false,
                    _ => return Err(format!("--ids {value}: ordered or scattered")),
                };
                i += 1;
            }
            "--engine" | "--database-url" => i += 1, // read by `Engine::from_args`
            "--tiny" => args.triggers = vec![5],
            // `cargo bench` passes `--bench`; `cargo test` may pass filters: ignored.
            _ => {}
        }
        i += 1;
    }
    if args.triggers.contains(&0) || args.rounds == 0 {
        return Err("--triggers and --rounds must be positive".into());
    }
    Ok(args)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

/// The raw baseline's rows per second (and, on PostgreSQL, the server's CPU µs per row),
/// on a fresh database: a SQLite file in `dir`, or a PostgreSQL database of its own.
async fn raw_rate(
    engine: &Engine,
    dir: &std::path::Path,
    items: usize,
) -> Result<(f64, Option<f64>), String> {
    let recipient = |i| tidings::recipient(i / tidings::RECIPIENTS, i % tidings::RECIPIENTS);
    match engine {
        Engine::Sqlite => {
            let raw_path = dir.join("raw.db");
            let rate =
                tokio::task::spawn_blocking(move || raw::rows_per_sec(&raw_path, items, recipient))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("raw baseline: {e}"))?;
            Ok((rate, None))
        }
        Engine::Postgres { admin_url } => {
            let db = PgDatabase::create(admin_url)?;
            let url = db.url.clone();
            let measured =
                tokio::task::spawn_blocking(move || raw_pg::rows_per_sec(&url, items, recipient))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("raw PostgreSQL baseline: {e}"))?;
            drop(db);
            Ok(measured)
        }
    }
}

/// One size: `rounds` rounds, each the raw baseline then Tidings on fresh databases.
async fn measure(
    engine: &Engine,
    triggers: usize,
    rounds: usize,
    page_size: Option<usize>,
    shared_template: bool,
) -> Result<Value, String> {
    let items = triggers * tidings::RECIPIENTS;
    let (mut raw_rates, mut tidings_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut cpu, mut pg_cpu, mut raw_pg_cpu) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (raw, raw_server_cpu) = raw_rate(engine, dir.path(), items).await?;
        raw_pg_cpu.extend(raw_server_cpu);
        let database = match engine {
            Engine::Sqlite => None,
            Engine::Postgres { admin_url } => Some(PgDatabase::create(admin_url)?),
        };
        let analyzer = database
            .as_ref()
            .zip(analyze_every_from_args())
            .map(|(db, every)| Analyzer::start(&db.url, every));
        let measured = tidings::items_per_sec(
            dir.path(),
            database.as_ref().map(|db| db.url.as_str()),
            triggers,
            page_size,
            shared_template,
        )
        .await?;
        if let Some(analyzer) = analyzer {
            eprintln!("({} tables analyzed during the run)", analyzer.finish());
        }
        drop(database);
        let rate = measured.rate;
        let server_cpu = match (raw_server_cpu, measured.pg_cpu_us_per_item) {
            (Some(raw), Some(tidings)) => {
                format!(", postgres cpu {tidings:.1} µs/item (raw {raw:.1} µs/row)")
            }
            _ => String::new(),
        };
        eprintln!(
            "{items} items, {} round {}: raw {raw:.0} rows/s, tidings {rate:.0} items/s, ratio {:.3}, \
             cpu {:.1} µs/item{server_cpu}",
            engine.name(),
            round + 1,
            rate / raw,
            measured.cpu_us_per_item.unwrap_or(f64::NAN)
        );
        cpu.extend(measured.cpu_us_per_item);
        pg_cpu.extend(measured.pg_cpu_us_per_item);
        raw_rates.push(raw);
        tidings_rates.push(rate);
        ratios.push(rate / raw);
    }
    let mut report = json!({
        "engine": engine.name(),
        "analyze_secs": analyze_every_from_args().map(|d| d.as_secs_f64()),
        "triggers": triggers,
        "recipients_per_trigger": tidings::RECIPIENTS,
        "items": items,
        "rounds": rounds,
        "fanout_page_size": page_size,
        "template": if shared_template { "shared" } else { "recipient" },
        "ids": if tidings::ids_scattered() { "scattered" } else { "ordered" },
        "tidings_items_per_sec": tidings_rates,
        "raw_rows_per_sec": raw_rates,
        "ratios": ratios,
        "tidings_items_per_sec_median": median(&tidings_rates),
        "raw_rows_per_sec_median": median(&raw_rates),
        "ratio_median": median(&ratios),
        "tidings_cpu_us_per_item": cpu,
        "tidings_cpu_us_per_item_median": median(&cpu),
    });
    if !pg_cpu.is_empty() {
        report["postgres_cpu_us_per_item"] = json!(pg_cpu);
        report["postgres_cpu_us_per_item_median"] = json!(median(&pg_cpu));
        report["raw_postgres_cpu_us_per_row"] = json!(raw_pg_cpu);
        report["raw_postgres_cpu_us_per_row_median"] = json!(median(&raw_pg_cpu));
    }
    Ok(report)
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = parse_args()?;
    if args.scattered_ids {
        tidings::scatter_ids();
    }
    let report = match (args.costs, args.walk) {
        (Some(items), _) => json!({"benchmark": "throughput --costs",
                              "costs": costs::report(items, args.rounds).await?}),
        (None, Some(recipients)) => json!({"benchmark": "throughput --walk",
            "walk": walk::report(recipients, args.rounds, &tidings::workflow(args.shared_template)["workflow"]).await?}),
        (None, None) => {
            let mut sizes = Vec::new();
            for &triggers in &args.triggers {
                sizes.push(
                    measure(
                        &args.engine,
                        triggers,
                        args.rounds,
                        args.page_size,
                        args.shared_template,
                    )
                    .await?,
                );
            }
            json!({"benchmark": "throughput", "sizes": sizes})
        }
    };
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    println!("{text}");
    if let Some(parent) = std::path::Path::new(&args.out).parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    std::fs::write(&args.out, text).map_err(|e| e.to_string())?;
    println!("wrote {}", args.out);
    Ok(())
}
