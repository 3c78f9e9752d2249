//! Feed reads on a large database (issue 18's read targets): the latency of a feed's
//! first page, a deep page (after the 500th item), a `trigger_data` filter's first page
//! and the unread badge, for users who hold many items, over keep-alive HTTP like a web
//! front end.
//!
//! Seeding (unless `--no-seed`): `--triggers T` triggers of `--users U` identified users
//! each (so every user holds T items; 1,000 × 1,000 = 1,000,000 items), then
//! `--heavy H` single-recipient triggers to one user (`heavy`, H items). Trigger `t`
//! carries `data.project = "p{t % 10}"`, so the selective filter matches one item in ten.
//!
//! By default the real server runs in-process on a fresh database in a temp dir
//! (`--db PATH` keeps it, or reuses it with `--no-seed`). `--url URL` measures a server
//! started elsewhere instead (any build: started with `TIDINGS_SECRET_KEY=sk_bench`),
//! which is how two builds are compared on copies of one database.
//!
//! `--engine postgres` (issue 19) runs the in-process server on PostgreSQL instead: a
//! fresh database of its own, created through `--database-url URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, used only to create and drop it) and
//! dropped at the end. `--passes N` measures every read N times over (after one seeding)
//! and reports the median of each percentile, with every pass's figures beside it.
//! `--analyze-secs N` (PostgreSQL) runs `ANALYZE` every N seconds while seeding and once
//! after it, as autovacuum would on a server that has it on (see `support::Analyzer`).
//!
//! Run: `cargo bench --bench reads -- --triggers 1000 --users 1000 --heavy 10000`
//! (≈ 1 min of seeding in release); prints a table and writes `bench-results/reads.json`.

#[path = "support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Analyzer, Api, Engine, PgDatabase, SECRET, analyze_every_from_args};
use tidings::{Application, Settings};

struct Args {
    url: Option<String>,
    db: Option<PathBuf>,
    seed: bool,
    triggers: usize,
    users: usize,
    heavy: usize,
    requests: usize,
    passes: usize,
    out: PathBuf,
    engine: Engine,
    /// `--pg-database NAME` (PostgreSQL): use database NAME on the server, created if
    /// missing and kept afterwards, so that later runs can measure it with `--no-seed`.
    pg_database: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: None,
        db: None,
        seed: true,
        triggers: 120,
        users: 100,
        heavy: 600,
        requests: 100,
        passes: 1,
        out: PathBuf::from("bench-results/reads.json"),
        engine: Engine::from_args()?,
        pg_database: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = || {
            argv.get(i + 1)
                .cloned()
                .ok_or(format!("{} needs a value", argv[i]))
        };
        let number = |v: String| v.parse::<usize>().map_err(|_| format!("not a number: {v}"));
        match argv[i].as_str() {
            "--url" => args.url = Some(value()?),
            "--db" => args.db = Some(PathBuf::from(value()?)),
            "--out" => args.out = PathBuf::from(value()?),
            "--triggers" => args.triggers = number(value()?)?,
            "--users" => args.users = number(value()?)?,
            "--heavy" => args.heavy = number(value()?)?,
            "--requests" => args.requests = number(value()?)?,
            "--passes" => args.passes = number(value()?)?.max(1),
            "--pg-database" => args.pg_database = Some(value()?),
            // Read by `Engine::from_args` and `analyze_every_from_args`.
            "--engine" | "--database-url" | "--analyze-secs" => {}
            "--no-seed" => {
                args.seed = false;
                i += 1;
                continue;
            }
            // `cargo bench` passes `--bench`; anything else unknown is ignored likewise.
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    Ok(args)
}

/// The URL of database `name` on the server of `admin_url`, creating the database when
/// it does not exist (`--pg-database`).
fn kept_database(admin_url: &str, name: &str) -> Result<String, String> {
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("--pg-database {name}: letters, digits and _ only"));
    }
    let mut url = url::Url::parse(admin_url).map_err(|e| format!("{admin_url}: {e}"))?;
    url.set_path(&format!("/{name}"));
    let (query, create) = (
        format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"),
        format!("CREATE DATABASE {name}"),
    );
    support::on_thread(admin_url, move |client| {
        if client.query(&query, &[])?.is_empty() {
            client.batch_execute(&create)?;
        }
        Ok(())
    })?;
    Ok(url.to_string())
}

fn user(i: usize) -> String {
    format!("reader-{i}")
}

const HEAVY: &str = "heavy";

/// Sends one trigger, waiting out 429s (the seeding sends more than the default rate).
async fn trigger(api: &Api, body: &Value) -> Result<(), String> {
    loop {
        match api
            .try_call(reqwest::Method::POST, "/v1/workflows/reads/trigger", body)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.contains("429") => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => return Err(e),
        }
    }
}

async fn seed(api: &Api, args: &Args) -> Result<(), String> {
    api.try_call(
        reqwest::Method::PUT,
        "/v1/workflows/reads",
        &json!({"workflow": {"name": "Reads", "steps": [{
            "ref": "in_app_feed_1", "type": "channel", "channel_key": "in-app-feed",
            "channel_type": "in_app_feed",
            "template": {"markdown_body": "Hi {{ recipient.name }}: **{{ actor.name }}** commented on {{ data.page }}",
                         "action_url": "{{ data.url }}"}}]}}),
    )
    .await?;
    let mut users: Vec<Value> = (0..args.users)
        .map(|i| json!({"id": user(i), "name": format!("Reader {i}")}))
        .collect();
    users.push(json!({"id": HEAVY, "name": "Heavy"}));
    for chunk in users.chunks(1000) {
        api.try_call(
            reqwest::Method::POST,
            "/v1/users/bulk/identify",
            &json!({"users": chunk}),
        )
        .await?;
    }
    let started = Instant::now();
    let recipients: Vec<String> = (0..args.users).map(user).collect();
    let body = |t: usize, recipients: &[String]| {
        json!({"recipients": recipients, "actor": {"id": "bench-actor", "name": "Ada"},
               "data": {"page": "Quarterly report", "url": "https://example.com/docs/q3",
                        "project": format!("p{}", t % 10), "comment": "x".repeat(200)}})
    };
    // Fan-outs a few at a time (the backlog gate holds at most 1,000,000 queued items).
    for wave in (0..args.triggers).collect::<Vec<_>>().chunks(20) {
        let bodies: Vec<Value> = wave.iter().map(|&t| body(t, &recipients)).collect();
        let sends = bodies.iter().map(|b| trigger(api, b));
        for r in futures_util::future::join_all(sends).await {
            r?;
        }
    }
    let heavy = [HEAVY.to_owned()];
    for wave in (0..args.heavy).collect::<Vec<_>>().chunks(64) {
        let bodies: Vec<Value> = wave.iter().map(|&t| body(t, &heavy)).collect();
        let sends = bodies.iter().map(|b| trigger(api, b));
        for r in futures_util::future::join_all(sends).await {
            r?;
        }
    }
    // Every run writes its recipients in order: the last user and the heavy user hold
    // all their items when the fan-out is done.
    let last = user(args.users.saturating_sub(1));
    let deadline = Instant::now() + Duration::from_secs(3600);
    for (who, expected) in [(last.as_str(), args.triggers), (HEAVY, args.heavy)] {
        while (api.try_feed_total(who).await? as usize) < expected {
            if Instant::now() > deadline {
                return Err(format!("{who} never got its {expected} items"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    println!(
        "seeded {} items in {:.1} s",
        args.triggers * args.users + args.heavy,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// One pass's figures of one read, in ms: (p50, p99, max).
type Percentiles = (f64, f64, f64);

/// One read's figures over the passes: key, table row label, items held, each pass's.
type Figures = (String, String, usize, Vec<Percentiles>);

/// Request `i`'s path, for one kind of read.
type PathOf<'a> = Box<dyn Fn(usize) -> String + 'a>;

/// `requests` sequential GETs of `path(i)`, in ms: (p50, p99, max).
async fn measure(
    api: &Api,
    requests: usize,
    path: impl Fn(usize) -> String,
) -> Result<Percentiles, String> {
    let mut times = Vec::with_capacity(requests);
    for i in 0..requests {
        let path = path(i);
        let started = Instant::now();
        let body = api
            .try_call(reqwest::Method::GET, &path, &Value::Null)
            .await?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
        if body["entries"].as_array().is_none() {
            return Err(format!("{path}: no entries in {body}"));
        }
    }
    times.sort_by(f64::total_cmp);
    Ok((
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times.last().copied().unwrap_or(0.0),
    ))
}

/// The cursor after the first `items` items of `who`'s feed (pages of 50).
async fn cursor_after(api: &Api, who: &str, items: usize) -> Result<String, String> {
    let mut after: Option<String> = None;
    for _ in 0..items.div_ceil(50) {
        let path = match &after {
            None => format!("/v1/users/{who}/feeds/in-app-feed?page_size=50"),
            Some(a) => format!("/v1/users/{who}/feeds/in-app-feed?page_size=50&after={a}"),
        };
        let body = api
            .try_call(reqwest::Method::GET, &path, &Value::Null)
            .await?;
        after = body["page_info"]["after"].as_str().map(str::to_owned);
        if after.is_none() {
            return Err(format!("{who}'s feed ended before {items} items"));
        }
    }
    after.ok_or_else(|| "no cursor".to_owned())
}

async fn run(args: Args) -> Result<Value, String> {
    let temp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut local = None;
    let mut database = None;
    let mut kept_url: Option<String> = None;
    let api = match &args.url {
        Some(url) => Api {
            base: url.trim_end_matches('/').to_owned(),
            client: reqwest::Client::new(),
        },
        None => {
            let db = args
                .db
                .clone()
                .unwrap_or_else(|| temp.path().join("reads.db"));
            let mut settings = Settings::for_database(db);
            if let Engine::Postgres { admin_url } = &args.engine {
                match &args.pg_database {
                    Some(name) => {
                        let url = kept_database(admin_url, name)?;
                        settings.database_url = Some(url.clone());
                        kept_url = Some(url);
                    }
                    None => {
                        let created = PgDatabase::create(admin_url)?;
                        settings.database_url = Some(created.url.clone());
                        database = Some(created);
                    }
                }
            }
            settings.workflows = temp.path().join("no-workflows");
            settings.secret_key = Some(SECRET.into());
            settings.log_filter = Some("warn".into());
            let app = Application::build(settings)
                .await
                .map_err(|e| format!("server start: {e}"))?;
            let api = Api::new(app.port());
            let handle = app.handle();
            local = Some((handle, tokio::spawn(app.run_until_stopped())));
            api
        }
    };
    if args.seed {
        let db_url = database.as_ref().map(|db| db.url.clone()).or(kept_url);
        let analyzer = db_url
            .as_ref()
            .zip(analyze_every_from_args())
            .map(|(url, every)| Analyzer::start(url, every));
        seed(&api, &args).await?;
        if let (Some(analyzer), Some(url)) = (analyzer, &db_url) {
            let runs = analyzer.finish();
            support::on_thread(url, |c| c.batch_execute("ANALYZE"))?;
            println!(
                "{} tables analyzed while seeding, and the database once after",
                runs
            );
        }
    }
    let n = args.requests;
    let users = args.users.max(1);
    // Per read, in order: every pass's (p50, p99, max).
    let mut figures: Vec<Figures> = Vec::new();
    for pass in 0..args.passes {
        // Each user of the fan-out holds `triggers` items; `heavy` holds `--heavy`.
        for (label, who_of, held) in [
            ("user", None, args.triggers),
            ("heavy user", Some(HEAVY), args.heavy),
        ] {
            if held == 0 {
                continue;
            }
            let who = |i: usize| who_of.map_or_else(|| user((i * 7919) % users), str::to_owned);
            let feed = |i: usize| format!("/v1/users/{}/feeds/in-app-feed", who(i));
            // After item 500, or as deep as a smaller feed allows (a whole page of 50 left).
            let deep_at = 500.min(held.saturating_sub(50)) / 50 * 50;
            if deep_at == 0 {
                return Err(format!("{label}: {held} items are too few for a deep page"));
            }
            let mut deep = Vec::new();
            for i in 0..n.min(20) {
                deep.push(cursor_after(&api, &who(i), deep_at).await?);
            }
            let cases: Vec<(&str, PathOf)> = vec![
                (
                    "first page (50)",
                    Box::new(|i| format!("{}?page_size=50", feed(i))),
                ),
                (
                    "deep page (after item 500, or the deepest full page)",
                    Box::new(|i| {
                        format!("{}?page_size=50&after={}", feed(i), deep[i % deep.len()])
                    }),
                ),
                (
                    "trigger_data filter, all match",
                    Box::new(|i| {
                        format!(
                            "{}?page_size=50&trigger_data=%7B%22page%22%3A%22Quarterly%20report%22%7D",
                            feed(i)
                        )
                    }),
                ),
                (
                    "trigger_data filter, 1 in 10",
                    Box::new(|i| {
                        format!(
                            "{}?page_size=50&trigger_data=%7B%22project%22%3A%22p3%22%7D",
                            feed(i)
                        )
                    }),
                ),
                (
                    "unread count (page_size=1, meta)",
                    Box::new(|i| format!("{}?page_size=1", feed(i))),
                ),
            ];
            for (case, path) in &cases {
                let measured = measure(&api, n, path).await?;
                let key = format!("{label}: {case}");
                match figures.iter_mut().find(|f| f.0 == key) {
                    Some(f) => f.3.push(measured),
                    None => figures.push((
                        key,
                        format!("{label} ({held} items) | {case}"),
                        held,
                        vec![measured],
                    )),
                }
            }
        }
        if args.passes > 1 {
            eprintln!("pass {} of {} measured", pass + 1, args.passes);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut results = serde_json::Map::new();
    println!(
        "| who | read | p50 ms | p99 ms | max ms |{}\n|---|---|---|---|---|{}",
        if args.passes > 1 {
            " p99 of each pass |"
        } else {
            ""
        },
        if args.passes > 1 { "---|" } else { "" }
    );
    for (key, row, held, passes) in figures {
        let p50 = median(passes.iter().map(|f| f.0).collect());
        let p99 = median(passes.iter().map(|f| f.1).collect());
        let max = median(passes.iter().map(|f| f.2).collect());
        let each: Vec<String> = passes.iter().map(|f| format!("{:.2}", f.1)).collect();
        println!(
            "| {row} | {p50:.2} | {p99:.2} | {max:.2} |{}",
            if args.passes > 1 {
                format!(" {} |", each.join(" / "))
            } else {
                String::new()
            }
        );
        let each: Vec<Value> = passes
            .iter()
            .map(|(p50, p99, max)| json!({"p50_ms": p50, "p99_ms": p99, "max_ms": max}))
            .collect();
        results.insert(
            key,
            json!({"items_held": held, "p50_ms": p50, "p99_ms": p99, "max_ms": max, "passes": each}),
        );
    }
    if let Some((handle, server)) = local {
        handle.stop(true).await;
        let _ = server.await;
    }
    drop(database);
    Ok(
        json!({"benchmark": "reads", "engine": args.engine.name(), "requests_each": n,
              "analyze_secs": analyze_every_from_args().map(|d| d.as_secs_f64()),
              "passes": args.passes, "triggers": args.triggers,
              "users": args.users, "heavy": args.heavy, "results": results}),
    )
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = parse_args()?;
    let out = args.out.clone();
    let report = run(args).await?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    std::fs::write(
        &out,
        serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    println!("wrote {}", out.display());
    Ok(())
}
