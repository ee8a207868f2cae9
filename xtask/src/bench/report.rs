//! The report of `cargo xtask bench`: builds `docs/benchmarks.md` from the
//! JSON lines of the harness `semiont-jobs-bench` (on the disk, and on
//! tmpfs as a diagnostic) and of the upstream harness, with medians over
//! runs, the issue's targets, and the profiles `cargo xtask bench`
//! captured.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// What a report is built from, and where it goes. Saved as arguments
/// (`--report PATH --ours FILE ... --fact k=v ...`) so `--report-only` can
/// build it again.
#[derive(Debug, Default)]
pub struct Inputs {
    /// The markdown file to write.
    pub out: PathBuf,
    /// JSON lines of the harness on the disk.
    pub ours: Vec<PathBuf>,
    /// JSON lines of the harness on tmpfs (a diagnostic column).
    pub ours_tmpfs: Vec<PathBuf>,
    /// JSON lines of the upstream harness.
    pub upstream: Option<PathBuf>,
    /// `key=value` facts about the run.
    pub fact: Vec<String>,
    /// A markdown file with the analysis to include.
    pub analysis: Option<PathBuf>,
    /// Profile outputs to append.
    pub profile: Vec<PathBuf>,
}

impl Inputs {
    /// The inputs as arguments, the form [`Inputs::parse`] reads.
    pub fn to_args(&self) -> Vec<String> {
        let path = |p: &Path| p.display().to_string();
        let mut args = vec!["--report".to_owned(), path(&self.out)];
        let mut add = |flag: &str, value: String| {
            args.push(flag.to_owned());
            args.push(value);
        };
        self.ours.iter().for_each(|p| add("--ours", path(p)));
        self.ours_tmpfs
            .iter()
            .for_each(|p| add("--ours-tmpfs", path(p)));
        self.upstream
            .iter()
            .for_each(|p| add("--upstream", path(p)));
        self.fact.iter().for_each(|f| add("--fact", f.clone()));
        self.analysis
            .iter()
            .for_each(|p| add("--analysis", path(p)));
        self.profile.iter().for_each(|p| add("--profile", path(p)));
        args
    }

    /// Reads [`Inputs::to_args`]'s form. A leading `bench` (the form saved
    /// when the report was `semiont-jobs bench --report`) is skipped.
    pub fn parse(args: &[String]) -> Result<Inputs, String> {
        let mut inputs = Inputs::default();
        let mut it = args.iter().skip_while(|a| *a == "bench");
        while let Some(flag) = it.next() {
            let value = it
                .next()
                .ok_or_else(|| format!("report argument {flag} needs a value"))?;
            match flag.as_str() {
                "--report" => inputs.out = value.into(),
                "--ours" => inputs.ours.push(value.into()),
                "--ours-tmpfs" => inputs.ours_tmpfs.push(value.into()),
                "--upstream" => inputs.upstream = Some(value.into()),
                "--fact" => inputs.fact.push(value.clone()),
                "--analysis" => inputs.analysis = Some(value.into()),
                "--profile" => inputs.profile.push(value.into()),
                other => return Err(format!("unknown report argument {other:?}")),
            }
        }
        if inputs.out.as_os_str().is_empty() {
            return Err("the report arguments name no output (--report PATH)".into());
        }
        Ok(inputs)
    }
}

/// Nearest-rank percentile (as the harnesses compute it).
fn percentile(xs: &[f64], p: f64) -> f64 {
    let mut s = xs.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.saturating_sub(1).min(s.len() - 1)]
}

/// The median (mean of the middle two for an even count); 0 when empty.
fn median(xs: &[f64]) -> f64 {
    let mut s = xs.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => s[n / 2],
        _ => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Upstream figures quoted by the issue, used when the harness did not run.
const UPSTREAM_NOWATCH_DRAIN: f64 = 2400.0;
/// The anchor README's drain of upstream as shipped with its data on the
/// disk, used when this run's as-shipped W1 did not reach its drain.
const UPSTREAM_SHIPPED_DRAIN_DISK: f64 = 94.0;

/// JSON lines read from files (lines that are not JSON objects are skipped).
pub(super) struct Rows(Vec<Value>);

impl Rows {
    /// No rows.
    pub(super) fn empty() -> Rows {
        Rows(Vec::new())
    }

    /// Every row.
    pub(super) fn all(&self) -> &[Value] {
        &self.0
    }

    /// Rows from values (tests).
    #[cfg(test)]
    pub(super) fn from_values(rows: Vec<Value>) -> Rows {
        Rows(rows)
    }

    pub(super) fn load(paths: &[PathBuf]) -> Result<Rows, String> {
        let mut rows = Vec::new();
        for p in paths {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            rows.extend(
                text.lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .filter(Value::is_object),
            );
        }
        Ok(Rows(rows))
    }

    pub(super) fn of<'a>(
        &'a self,
        workload: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Vec<&'a Value> {
        self.0
            .iter()
            .filter(|r| r["workload"] == workload && pred(r))
            .collect()
    }

    fn env(&self) -> Option<&Value> {
        self.0.iter().find(|r| r["workload"] == "env")
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The median of `key` over `rows` (rows without a number there are skipped).
pub(super) fn med(rows: &[&Value], key: &str) -> Option<f64> {
    let xs: Vec<f64> = rows.iter().filter_map(|r| r[key].as_f64()).collect();
    (!xs.is_empty()).then(|| median(&xs))
}

/// The largest `key` over `rows`.
pub(super) fn max(rows: &[&Value], key: &str) -> Option<f64> {
    rows.iter().filter_map(|r| r[key].as_f64()).reduce(f64::max)
}

/// The smallest `key` over `rows`.
pub(super) fn min(rows: &[&Value], key: &str) -> Option<f64> {
    rows.iter().filter_map(|r| r[key].as_f64()).reduce(f64::min)
}

/// The median of `key` with its spread over the runs: `0.52 (0.37–0.59)`.
pub(super) fn med_range(rows: &[&Value], key: &str) -> String {
    match (min(rows, key), max(rows, key)) {
        (Some(lo), Some(hi)) if rows.len() > 1 && lo != hi => {
            format!(
                "{} ({}–{})",
                num(med(rows, key)),
                num(Some(lo)),
                num(Some(hi))
            )
        }
        _ => num(med(rows, key)),
    }
}

/// `12,345` for rates and counts.
pub(super) fn int(x: Option<f64>) -> String {
    let Some(x) = x else { return "—".into() };
    let n = x.round() as i64;
    let s = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

/// Milliseconds (or any small quantity) with about three significant digits.
pub(super) fn num(x: Option<f64>) -> String {
    match x {
        None => "—".into(),
        Some(x) if x.abs() >= 100.0 => int(Some(x)),
        Some(x) if x.abs() >= 10.0 => format!("{x:.1}"),
        Some(x) if x.abs() >= 1.0 => format!("{x:.2}"),
        Some(0.0) => "0".into(),
        Some(x) if x.abs() >= 0.01 => format!("{x:.3}"),
        Some(x) => format!("{x:.5}"),
    }
}

/// `a / b` as `2.5×`.
fn times(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{}×", num(Some(a / b))),
        _ => "—".into(),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn yes(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "**met**",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

/// One line of the targets table.
struct Target {
    what: String,
    measured: String,
    met: Option<bool>,
}

/// Writes the report to `args.out`.
pub fn write(args: &Inputs) -> Result<(), String> {
    let out = &args.out;
    let ours = Rows::load(&args.ours)?;
    let tmpfs = Rows::load(&args.ours_tmpfs)?;
    let upstream = match &args.upstream {
        Some(p) if p.exists() => Rows::load(std::slice::from_ref(p))?,
        _ => Rows(Vec::new()),
    };
    let facts: BTreeMap<String, String> = args
        .fact
        .iter()
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let fact = |k: &str| facts.get(k).cloned().unwrap_or_else(|| "—".into());
    let mut md = String::new();
    let mut targets: Vec<Target> = Vec::new();
    let env = ours.env().cloned().unwrap_or(Value::Null);
    let up_env = upstream.env().cloned().unwrap_or(Value::Null);
    let s = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);

    // ------------------------------------------------------------- header
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "_Generated by `cargo xtask bench` ({}). Do not edit by hand: rerun the command. \
         Workload definitions: DESIGN §9; every figure is the median of the runs listed \
         in the tables' `runs` column._\n",
        s(&env["date"])
    );
    let _ = writeln!(md, "## Machine and conditions\n");
    let _ = writeln!(md, "| | |\n| --- | --- |");
    let _ = writeln!(md, "| date (UTC) | {} |", s(&env["date"]));
    let _ = writeln!(
        md,
        "| machine | {} cores ({}), {} GiB RAM, {} |",
        s(&env["nproc"]),
        s(&env["cpu"]),
        s(&env["mem_gib"]),
        s(&env["os"])
    );
    let _ = writeln!(md, "| rustc | {} |", fact("rustc"));
    let _ = writeln!(
        md,
        "| node (upstream harness) | {} |",
        if upstream.is_empty() {
            "not run".to_owned()
        } else {
            s(&up_env["node"])
        }
    );
    let _ = writeln!(
        md,
        "| data root (both) | `{}`: {}; mount options `{}` |",
        fact("data_root"),
        s(&env["data_fs"]),
        fact("mount_options")
    );
    let _ = writeln!(
        md,
        "| file create cost in the data root at start | {} µs (mean of 500 creates of a 400-byte file) |",
        num(env["create_probe_us"].as_f64())
    );
    let _ = writeln!(
        md,
        "| load average (1 min) at start / end | {} / {} |",
        fact("load_start"),
        fact("load_end")
    );
    let _ = writeln!(
        md,
        "| also running on the machine | {} |",
        fact("concurrent")
    );
    let _ = writeln!(
        md,
        "| wall time of `cargo xtask bench` | {} |",
        fact("elapsed")
    );
    let _ = writeln!(md);
    if let Some(cmds) = facts.get("commands") {
        let _ = writeln!(
            md,
            "Commands run (each repeated as the `runs` columns say):\n"
        );
        let _ = writeln!(md, "```text");
        for c in cmds.split(" ;; ") {
            let _ = writeln!(md, "{c}");
        }
        let _ = writeln!(md, "```\n");
    }
    if let Some(f) = facts.get("failures").filter(|f| !f.is_empty()) {
        let _ = writeln!(md, "Runs that failed (their figures are missing below):\n");
        for line in f.split(" ;; ") {
            let _ = writeln!(md, "- {line}");
        }
        let _ = writeln!(md);
    }
    if upstream.is_empty() {
        let _ = writeln!(
            md,
            "The upstream column is empty: {}.\n",
            facts
                .get("upstream_skipped")
                .map_or("the upstream harness did not run", String::as_str)
        );
    }

    // ------------------------------------------------------------- W1
    let w1 = |mode: &str| ours.of("W1", |r| r["durability"] == mode);
    let none = w1("none");
    let fsync = w1("fsync");
    let batch = w1("batch");
    let up_nowatch = upstream.of("W1-nowatch", |_| true);
    let up_shipped = upstream.of("W1", |_| true);
    let _ = writeln!(md, "## W1 throughput (one in-process loop)\n");
    let _ =
        writeln!(
        md,
        "Create N `noop` jobs one `create_job` at a time (`batch`: `create_jobs` of {} behind one \
         barrier each), then drain them with `claim_next_job → complete_job_at`. The floor is the \
         same lifecycles as bare `std::fs` calls in the same process just before (write + rename \
         into `pending/`; rename to `running/`; write + rename into `complete/`, unlink; with \
         `fdatasync` of each file and `fsync` of its directory when durable). Upstream: its \
         `JobQueue` + `JobWorker.processJob` transitions, as shipped (fs.watch on) and with the \
         watcher closed (its best case), no fsync at all.\n",
        int(batch.first().and_then(|r| r["batch_size"].as_f64()).or(Some(1000.0)))
    );
    let _ = writeln!(
        md,
        "| durability | N | runs | create jobs/s | drain jobs/s | floor drain jobs/s | drain / floor (min–max) | floor create jobs/s | duplicates | claim µs | complete µs | peak RSS MiB | create probe µs before floor / queue |"
    );
    let _ = writeln!(
        md,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for (mode, rows) in [("none", &none), ("fsync", &fsync), ("batch", &batch)] {
        if rows.is_empty() {
            continue;
        }
        let (fk, rk, ck) = if mode == "none" {
            (
                "floor_jobs_per_s",
                "drain_vs_floor",
                "floor_create_jobs_per_s",
            )
        } else {
            (
                "floor_durable_jobs_per_s",
                "drain_vs_floor_durable",
                "floor_durable_create_jobs_per_s",
            )
        };
        let _ = writeln!(
            md,
            "| {mode} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} |",
            int(med(rows, "n")),
            rows.len(),
            int(med(rows, "create_jobs_per_s")),
            int(med(rows, "drain_jobs_per_s")),
            int(med(rows, fk)),
            med_range(rows, rk),
            int(med(rows, ck)),
            int(max(rows, "duplicate_jobs")),
            num(med(rows, "claim_us_mean")),
            num(med(rows, "complete_us_mean")),
            num(med(rows, "peak_rss_mib")),
            num(med(rows, "create_probe_us_before_floor")),
            num(med(rows, "create_probe_us_before")),
        );
    }
    for (name, rows) in [
        ("upstream, watcher closed", &up_nowatch),
        ("upstream, as shipped", &up_shipped),
    ] {
        if rows.is_empty() {
            continue;
        }
        let timed_out = rows.iter().filter(|r| r["completed"] == false).count();
        let note = if timed_out > 0 {
            format!(
                " ({timed_out} run(s) timed out after {} s, in its {} phase)",
                int(med(rows, "timeout_s")),
                rows.iter()
                    .find_map(|r| r["timed_out_in"].as_str())
                    .unwrap_or("?")
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} | {}{note} | — | — | — | {} (executions {}) | — | — | {} | — |",
            int(med(rows, "n")),
            rows.len(),
            int(med(rows, "create_jobs_per_s")),
            int(med(rows, "drain_jobs_per_s")),
            int(med(rows, "duplicate_jobs")),
            int(med(rows, "executions")),
            num(med(rows, "peak_rss_mib")),
        );
    }
    let _ = writeln!(md);
    if let Some(over) = med(&none, "staged_floor_jobs_per_s") {
        let _ = writeln!(
            md,
            "Measured in the same runs (durability none, after the queue): the staged-move file \
             pattern as bare system calls — stage a new file, rename the job into its new \
             directory, then replace it by the staged file — drains **{} jobs/s** when the \
             replace is a `rename(2)` over the existing file (the store's step 3 before this \
             version), and **{} jobs/s** when it is `renameat2(RENAME_EXCHANGE)` followed by an \
             unlink of the old content (the store's step 3 now, which also keeps the old file as \
             a spare instead of creating and deleting one per move); the minimal floor drains {} \
             jobs/s and the queue {} jobs/s.\n",
            int(Some(over)),
            int(med(&none, "staged_exchange_floor_jobs_per_s")),
            int(med(&none, "floor_jobs_per_s")),
            int(med(&none, "drain_jobs_per_s")),
        );
    }
    let drain = med(&none, "drain_jobs_per_s");
    let up_best = med(&up_nowatch, "drain_jobs_per_s");
    // A run that timed out before it drained anything has no drain rate.
    let shipped_done: Vec<&Value> = up_shipped
        .iter()
        .copied()
        .filter(|r| r["drain_jobs_per_s"].as_f64().is_some_and(|d| d > 0.0))
        .collect();
    let up_default = med(&shipped_done, "drain_jobs_per_s");
    let _ = writeln!(
        md,
        "semiont-jobs (durability none) vs upstream: drain {} its best configuration, {} as shipped; create {} its best configuration.\n",
        times(drain, up_best),
        times(drain, up_default),
        times(med(&none, "create_jobs_per_s"), med(&up_nowatch, "create_jobs_per_s")),
    );
    let dr_floor = med(&none, "drain_vs_floor");
    targets.push(Target {
        what: "W1 drain (none) ≥ 60% of the floor measured in the same run".into(),
        measured: format!("{} of the floor", pct(dr_floor)),
        met: dr_floor.map(|r| r >= 0.6),
    });
    let best_ref = up_best.unwrap_or(UPSTREAM_NOWATCH_DRAIN);
    targets.push(Target {
        what: format!(
            "W1 drain (none) ≥ 2.5× upstream best configuration ({} jobs/s{})",
            int(Some(best_ref)),
            if up_best.is_some() {
                ", measured"
            } else {
                ", the issue's figure"
            }
        ),
        measured: format!("{} jobs/s = {}", int(drain), times(drain, Some(best_ref))),
        met: drain.map(|d| d >= 2.5 * best_ref),
    });
    let shipped_ref = up_default.unwrap_or(UPSTREAM_SHIPPED_DRAIN_DISK);
    targets.push(Target {
        what: format!(
            "W1 drain (none) ≥ 50× upstream as shipped ({} jobs/s{})",
            int(Some(shipped_ref)),
            if up_default.is_some() {
                ", measured"
            } else {
                ", the anchor README's disk figure: this run's as-shipped W1 drained nothing before its timeout"
            }
        ),
        measured: format!(
            "{} jobs/s = {}",
            int(drain),
            times(drain, Some(shipped_ref))
        ),
        met: drain.map(|d| d >= 50.0 * shipped_ref),
    });
    let dups = [&none, &fsync, &batch]
        .iter()
        .filter_map(|rows| max(rows, "duplicate_jobs"))
        .reduce(f64::max);
    targets.push(Target {
        what: "W1: 0 duplicates (every mode, every run)".into(),
        measured: int(dups),
        met: dups.map(|d| d == 0.0),
    });
    let fs_floor = med(&fsync, "drain_vs_floor_durable");
    targets.push(Target {
        what: "W1 durability fsync: drain ≥ 70% of the floor's durable rate".into(),
        measured: format!(
            "{} vs {} jobs/s = {}",
            int(med(&fsync, "drain_jobs_per_s")),
            int(med(&fsync, "floor_durable_jobs_per_s")),
            pct(fs_floor)
        ),
        met: fs_floor.map(|r| r >= 0.7),
    });
    let batch_create = med(&batch, "create_jobs_per_s");
    targets.push(Target {
        what: "W1 batch enqueue ≥ 5,000 jobs/s durable".into(),
        measured: format!("{} jobs/s", int(batch_create)),
        met: batch_create.map(|c| c >= 5000.0),
    });

    // ------------------------------------------------------------- W2
    let mut ms: Vec<u64> = ours
        .of("W2", |_| true)
        .iter()
        .filter_map(|r| r["m"].as_u64())
        .collect();
    ms.sort_unstable();
    ms.dedup();
    let _ = writeln!(md, "## W2 scale (M complete jobs on disk)\n");
    let _ = writeln!(
        md,
        "Each size in a fresh process, jobs written directly in the storage format; open = \
         `FsStore::open` (recovery pass + index build) + queue initialize, page cache warm (files \
         just written). `open, no snapshot`: the first open, which reads every job file (as after \
         a crash that left no index snapshot); closing it writes `index.snapshot`; `open`: the \
         next opens, which read only what the snapshot does not explain. RSS after the last open \
         (and after the first). `list` = `list(status=complete, limit=10)`; `get` = random ids; \
         cleanup deletes nothing. Times in ms.\n"
    );
    let _ = writeln!(
        md,
        "| M | runs | open | open, no snapshot | RSS MiB | RSS MiB, no snapshot | list | stats | get | cleanup | upstream list | upstream stats | upstream get | upstream cleanup |"
    );
    let _ = writeln!(
        md,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    let w2 = |m: u64| ours.of("W2", move |r| r["m"].as_u64() == Some(m));
    let up_w2 = |m: u64| upstream.of("W2", move |r| r["m"].as_u64() == Some(m));
    for &m in &ms {
        let r = w2(m);
        let u = up_w2(m);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            int(Some(m as f64)),
            r.len(),
            num(med(&r, "open_ms_with_snapshot").or(med(&r, "open_ms"))),
            num(med(&r, "open_ms_no_snapshot")),
            num(med(&r, "rss_mib")),
            num(med(&r, "rss_mib_after_no_snapshot_open")),
            num(med(&r, "list_ms")),
            num(med(&r, "stats_ms")),
            num(med(&r, "getjob_ms")),
            num(med(&r, "cleanup_ms")),
            num(med(&u, "list_ms")),
            num(med(&u, "stats_ms")),
            num(med(&u, "getjob_ms")),
            num(med(&u, "cleanup_ms")),
        );
    }
    let _ = writeln!(md);
    if let (Some(&lo), Some(&hi)) = (ms.first(), ms.last()) {
        let (l, h) = (w2(lo), w2(hi));
        let lbl = int(Some(hi as f64));
        for (key, name) in [("stats_ms", "stats"), ("list_ms", "list(limit 10)")] {
            let r = ratio(med(&h, key), med(&l, key));
            targets.push(Target {
                what: format!("W2 {name} at the largest M within 2× of its time at the smallest"),
                measured: format!(
                    "{} ms at {lbl} vs {} ms at {} ({})",
                    num(med(&h, key)),
                    num(med(&l, key)),
                    int(Some(lo as f64)),
                    times(med(&h, key), med(&l, key))
                ),
                met: r.map(|r| r <= 2.0 || med(&h, key).is_some_and(|x| x < 0.001)),
            });
        }
        let g = ratio(med(&h, "getjob_ms"), med(&l, "getjob_ms"));
        targets.push(Target {
            what: "W2 get is O(1) (within 2× of its time at the smallest M, or under 0.1 ms)"
                .into(),
            measured: format!(
                "{} ms at {lbl} vs {} ms at {}",
                num(med(&h, "getjob_ms")),
                num(med(&l, "getjob_ms")),
                int(Some(lo as f64))
            ),
            met: g.map(|r| r <= 2.0 || med(&h, "getjob_ms").is_some_and(|x| x < 0.1)),
        });
        let at_1m = w2(1_000_000);
        let open_1m = med(&at_1m, "open_ms_with_snapshot").or(med(&at_1m, "open_ms"));
        let open_1m_cold = med(&at_1m, "open_ms_no_snapshot");
        let rss_1m = med(&at_1m, "rss_mib");
        let per_job_open = med(&h, "open_ms").map(|x| x / hi as f64);
        let per_job_rss = match (med(&h, "rss_mib"), med(&l, "rss_mib")) {
            (Some(a), Some(b)) if hi > lo => Some((a - b) / (hi - lo) as f64),
            _ => None,
        };
        targets.push(Target {
            what: "W2 cold open of 1M jobs ≤ 5 s".into(),
            measured: match open_1m {
                Some(x) => format!(
                    "{} s with the index snapshot; {} s without one (every file read)",
                    num(Some(x / 1000.0)),
                    num(open_1m_cold.map(|c| c / 1000.0))
                ),
                None => format!(
                    "1M not run; {} ms/1k jobs at {lbl} → ~{} s extrapolated",
                    num(per_job_open.map(|x| x * 1000.0)),
                    num(per_job_open.map(|x| x * 1000.0))
                ),
            },
            met: open_1m
                .map(|x| x <= 5000.0)
                .or(per_job_open.map(|x| x * 1e6 <= 5000.0)),
        });
        targets.push(Target {
            what: "W2 RSS ≤ 150 MB at 1M jobs".into(),
            measured: match rss_1m {
                Some(x) => format!("{} MiB", num(Some(x))),
                None => format!(
                    "1M not run; {} bytes/job → ~{} MiB extrapolated",
                    int(per_job_rss.map(|x| x * 1024.0 * 1024.0)),
                    int(per_job_rss
                        .map(|x| x * 1e6)
                        .zip(med(&l, "rss_mib"))
                        .map(|(a, b)| a + b))
                ),
            },
            met: rss_1m.map(|x| x * 1.048_576 <= 150.0).or(per_job_rss
                .zip(med(&l, "rss_mib"))
                .map(|(a, b)| (a * 1e6 + b) * 1.048_576 <= 150.0)),
        });
    }

    // ------------------------------------------------------------- W3
    let modes_of = |rows: &[&Value]| {
        let mut m: Vec<String> = rows.iter().map(|r| s(&r["durability"])).collect();
        m.sort();
        m.dedup();
        // none first: the configuration comparable to upstream.
        m.sort_by_key(|x| x != "none");
        m
    };
    let all3 = ours.of("W3", |_| true);
    let up_w3x = upstream.of("W3x", |_| true);
    let up_w3 = upstream.of("W3", |_| true);
    let _ = writeln!(md, "## W3 latency (enqueue → execution start, ms)\n");
    let _ = writeln!(
        md,
        "One idle `semiont-jobs work --types noop` process (default 1 s fallback poll; it wakes on \
         the directory watcher's events); this process enqueues {} jobs one at a time, spaced \
         50–300 ms with the upstream harness's PRNG and seed; start = the worker's exec log \
         (wall clock, ns); the time runs from just before `create_job` (with fsync, that \
         includes the enqueue's own fsyncs). Upstream `W3x` is the same shape (worker in another \
         process); `W3` is its worker in the producer's process.\n",
        int(all3.first().and_then(|r| r["jobs"].as_f64()))
    );
    let _ = writeln!(
        md,
        "| | durability | runs | p50 | p99 | mean | max | p50 / p99 of all runs pooled |"
    );
    let _ = writeln!(md, "| --- | --- | --- | --- | --- | --- | --- | --- |");
    for mode in modes_of(&all3) {
        let w3 = ours.of("W3", |r| r["durability"] == mode.as_str());
        let pooled: Vec<f64> = w3
            .iter()
            .filter_map(|r| r["latencies_ms"].as_array())
            .flatten()
            .filter_map(Value::as_f64)
            .collect();
        let _ = writeln!(
            md,
            "| semiont-jobs | {mode} | {} | {} | {} | {} | {} | {} / {} ({} samples) |",
            w3.len(),
            num(med(&w3, "p50_ms")),
            num(med(&w3, "p99_ms")),
            num(med(&w3, "mean_ms")),
            num(max(&w3, "max_ms")),
            num(Some(percentile(&pooled, 50.0))),
            num(Some(percentile(&pooled, 99.0))),
            pooled.len(),
        );
        let (p50, p99) = (med(&w3, "p50_ms"), med(&w3, "p99_ms"));
        targets.push(Target {
            what: format!("W3 p50 ≤ 2 ms (durability {mode})"),
            measured: format!(
                "{} ms (upstream W3x {} ms)",
                num(p50),
                num(med(&up_w3x, "p50_ms"))
            ),
            met: p50.map(|x| x <= 2.0),
        });
        targets.push(Target {
            what: format!("W3 p99 ≤ 20 ms (durability {mode})"),
            measured: format!("{} ms", num(p99)),
            met: p99.map(|x| x <= 20.0),
        });
    }
    for (name, rows) in [
        ("upstream W3x (other process)", &up_w3x),
        ("upstream W3 (same process)", &up_w3),
    ] {
        if !rows.is_empty() {
            let _ = writeln!(
                md,
                "| {name} | none | {} | {} | {} | {} | {} | |",
                rows.len(),
                num(med(rows, "p50_ms")),
                num(med(rows, "p99_ms")),
                num(med(rows, "mean_ms")),
                num(max(rows, "max_ms")),
            );
        }
    }
    let _ = writeln!(md);

    // ------------------------------------------------------------- W4
    fn w4<'a>(rows: &'a Rows, p: u64, mode: &str) -> Vec<&'a Value> {
        rows.of("W4", move |r| {
            r["procs"].as_u64() == Some(p) && (mode.is_empty() || r["durability"] == mode)
        })
    }
    let all4 = ours.of("W4", |_| true);
    let mut ps: Vec<u64> = all4.iter().filter_map(|r| r["procs"].as_u64()).collect();
    ps.sort_unstable();
    ps.dedup();
    let _ = writeln!(
        md,
        "## W4 contention (P processes drain J pre-created jobs)\n"
    );
    let _ = writeln!(
        md,
        "P `semiont-jobs work --types noop --exit-when-idle` processes (log level warn) open the \
         data dir, say ready, and start together; executions per id from their exec logs; lost = \
         jobs not complete on disk afterwards; drain = go → last `completedAt`; wall = spawn → \
         last exit; jobs/s = J / drain. Upstream: 4 forked node processes polling its `JobQueue` \
         (no fsync).\n"
    );
    let _ = writeln!(
        md,
        "| | durability | P | J | runs | jobs/s | drain s | wall s | executions | duplicates | lost | per process |"
    );
    let _ = writeln!(
        md,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for mode in modes_of(&all4) {
        for &p in &ps {
            let r = w4(&ours, p, &mode);
            if r.is_empty() {
                continue;
            }
            let _ = writeln!(
                md,
                "| semiont-jobs | {mode} | {p} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                int(r.first().and_then(|x| x["jobs"].as_f64())),
                r.len(),
                int(med(&r, "jobs_per_s")),
                num(med(&r, "drain_s")),
                num(med(&r, "wall_s")),
                int(med(&r, "total_executions")),
                int(max(&r, "duplicates")),
                int(max(&r, "lost")),
                r.first()
                    .map_or("—".into(), |x| x["per_process_executions"].to_string()),
            );
        }
        let (one, two) = (
            med(&w4(&ours, 1, &mode), "jobs_per_s"),
            med(&w4(&ours, 2, &mode), "jobs_per_s"),
        );
        targets.push(Target {
            what: format!("W4 throughput with 2 processes ≥ 1.5× one process (durability {mode})"),
            measured: format!("{} vs {} jobs/s = {}", int(two), int(one), times(two, one)),
            met: ratio(two, one).map(|r| r >= 1.5),
        });
    }
    let up4 = upstream.of("W4", |_| true);
    if !up4.is_empty() {
        let rates: Vec<f64> = up4
            .iter()
            .filter_map(|r| Some(r["jobs"].as_f64()? / r["drain_s"].as_f64()?))
            .collect();
        let _ = writeln!(
            md,
            "| upstream | none | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            int(up4.first().and_then(|x| x["procs"].as_f64())),
            int(up4.first().and_then(|x| x["jobs"].as_f64())),
            up4.len(),
            int((!rates.is_empty()).then(|| median(&rates))),
            num(med(&up4, "drain_s")),
            num(med(&up4, "wall_s")),
            int(med(&up4, "total_executions")),
            int(max(&up4, "duplicates")),
            int(max(&up4, "lost")),
            up4.first()
                .map_or("—".into(), |x| x["per_process_executions"].to_string()),
        );
    }
    let _ = writeln!(md);
    let restarts: u64 = all4
        .iter()
        .filter_map(|r| r["start_failures"].as_u64())
        .sum();
    if restarts > 0 {
        let first = all4
            .iter()
            .find_map(|r| r["start_failure"].as_str())
            .unwrap_or("");
        let _ = writeln!(
            md,
            "**A bug this benchmark found:** in {restarts} of {} W4 units a worker process failed \
             to open the queue while the others opened it at the same instant, and the unit was \
             run again on fresh data (the figures above are from the successful attempts). \
             The error: `{first}`. See \"Where the time goes\" below.\n",
            all4.len() + restarts as usize
        );
    }
    let big = ps.iter().copied().max().unwrap_or(4);
    let r4 = w4(&ours, big, "");
    targets.push(Target {
        what: format!("W4 {big} processes: 0 duplicates, 0 lost (every mode, every run)"),
        measured: format!(
            "{} duplicates, {} lost (worst run)",
            int(max(&r4, "duplicates")),
            int(max(&r4, "lost"))
        ),
        met: max(&r4, "duplicates")
            .zip(max(&r4, "lost"))
            .map(|(d, l)| d == 0.0 && l == 0.0),
    });

    // ------------------------------------------------------------- targets
    let _ = writeln!(md, "## Targets\n");
    let _ = writeln!(md, "| target | measured (medians) | |");
    let _ = writeln!(md, "| --- | --- | --- |");
    for t in &targets {
        let _ = writeln!(md, "| {} | {} | {} |", t.what, t.measured, yes(t.met));
    }
    let _ = writeln!(md);

    // ------------------------------------------------------------- tmpfs
    if !tmpfs.is_empty() {
        let te = tmpfs.env().cloned().unwrap_or(Value::Null);
        let _ = writeln!(md, "## The same code on tmpfs (diagnostic)\n");
        let _ = writeln!(
            md,
            "Same commands with the data root on `{}` ({}): no block allocator, no discard, fsync \
             is free. What is left is the CPU cost of the code and of the system calls.\n",
            fact("tmpfs_root"),
            s(&te["data_fs"])
        );
        let _ = writeln!(
            md,
            "| W1 durability | N | runs | create jobs/s | drain jobs/s | floor drain jobs/s | drain / floor | claim µs | complete µs | watcher | pattern, rename over / exchange |"
        );
        let _ = writeln!(
            md,
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        );
        for mode in ["none", "fsync", "batch"] {
            for watch in [true, false] {
                let rows = tmpfs.of("W1", |r| r["durability"] == mode && r["fs_watch"] == watch);
                if rows.is_empty() {
                    continue;
                }
                let (fk, rk) = if mode == "none" {
                    ("floor_jobs_per_s", "drain_vs_floor")
                } else {
                    ("floor_durable_jobs_per_s", "drain_vs_floor_durable")
                };
                let _ = writeln!(
                    md,
                    "| {mode} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    int(med(&rows, "n")),
                    rows.len(),
                    int(med(&rows, "create_jobs_per_s")),
                    int(med(&rows, "drain_jobs_per_s")),
                    int(med(&rows, fk)),
                    num(med(&rows, rk)),
                    num(med(&rows, "claim_us_mean")),
                    num(med(&rows, "complete_us_mean")),
                    if watch { "on" } else { "off (`--no-watch`)" },
                    match med(&rows, "staged_floor_jobs_per_s") {
                        Some(x) => format!(
                            "{} / {}",
                            int(Some(x)),
                            int(med(&rows, "staged_exchange_floor_jobs_per_s"))
                        ),
                        None => "—".into(),
                    },
                );
            }
        }
        let _ = writeln!(md);
        let mut tps: Vec<u64> = tmpfs
            .of("W4", |_| true)
            .iter()
            .filter_map(|r| r["procs"].as_u64())
            .collect();
        tps.sort_unstable();
        tps.dedup();
        if !tps.is_empty() {
            let _ = writeln!(
                md,
                "| W4 | P | runs | jobs/s | drain s | duplicates | lost |"
            );
            let _ = writeln!(md, "| --- | --- | --- | --- | --- | --- | --- |");
            for p in tps {
                let r = w4(&tmpfs, p, "");
                let _ = writeln!(
                    md,
                    "| tmpfs ({}) | {p} | {} | {} | {} | {} | {} |",
                    r.first().map_or("—".into(), |x| s(&x["durability"])),
                    r.len(),
                    int(med(&r, "jobs_per_s")),
                    num(med(&r, "drain_s")),
                    int(max(&r, "duplicates")),
                    int(max(&r, "lost")),
                );
            }
            let _ = writeln!(md);
        }
        let t3 = tmpfs.of("W3", |_| true);
        if !t3.is_empty() {
            let _ = writeln!(
                md,
                "W3 on tmpfs: p50 {} ms, p99 {} ms ({} runs).\n",
                num(med(&t3, "p50_ms")),
                num(med(&t3, "p99_ms")),
                t3.len()
            );
        }
    }

    // ------------------------------------------------------------- analysis
    if let Some(p) = &args.analysis {
        let text =
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        let _ = writeln!(md, "{}\n", text.trim_end());
    }
    if !args.profile.is_empty() {
        let _ = writeln!(md, "## Profiles captured by this run\n");
        for p in &args.profile {
            let Ok(text) = std::fs::read_to_string(p) else {
                continue;
            };
            let name = p
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let _ = writeln!(md, "<details><summary><code>{name}</code></summary>\n");
            let _ = writeln!(md, "```text\n{}\n```\n", text.trim_end());
            let _ = writeln!(md, "</details>\n");
        }
    }
    if let Some(dir) = out.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
    }
    std::fs::write(out, md).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(())
}

fn pct(x: Option<f64>) -> String {
    x.map_or("—".into(), |x| format!("{:.0}%", x * 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_markdown_from_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let ours = dir.path().join("ours.jsonl");
        let lines = [
            r#"{"workload":"env","date":"2026-01-01T00:00:00.000Z","nproc":2,"cpu":"x","mem_gib":1,"os":"Linux","data_fs":"ext4","create_probe_us":50}"#,
            r#"{"workload":"W1","durability":"none","n":100,"create_jobs_per_s":1000,"drain_jobs_per_s":900,"floor_jobs_per_s":1000,"drain_vs_floor":0.9,"floor_create_jobs_per_s":2000,"duplicate_jobs":0}"#,
            r#"{"workload":"W2","m":1000,"open_ms":10,"rss_mib":8,"list_ms":0.2,"stats_ms":0.0001,"getjob_ms":0.01,"cleanup_ms":0.003}"#,
            r#"{"workload":"W3","jobs":20,"p50_ms":1.5,"p99_ms":4,"mean_ms":1.7,"max_ms":4,"latencies_ms":[1.5,4]}"#,
            r#"{"workload":"W4","durability":"none","procs":1,"jobs":100,"jobs_per_s":100,"drain_s":1,"wall_s":1.2,"total_executions":100,"duplicates":0,"lost":0}"#,
            r#"{"workload":"W4","durability":"none","procs":2,"jobs":100,"jobs_per_s":160,"drain_s":0.6,"wall_s":0.8,"total_executions":100,"duplicates":0,"lost":0}"#,
        ];
        std::fs::write(&ours, lines.join("\n")).unwrap();
        let doc = dir.path().join("docs").join("benchmarks.md");
        let inputs = Inputs {
            out: doc.clone(),
            ours: vec![ours],
            fact: vec!["rustc=rustc 1.0".into()],
            ..Inputs::default()
        };
        // Through the saved form, as `--report-only` reads it back.
        let inputs = Inputs::parse(&inputs.to_args()).unwrap();
        write(&inputs).unwrap();
        let md = std::fs::read_to_string(&doc).unwrap();
        for needle in [
            "# Benchmarks",
            "## W1 throughput",
            "| none | 100 | 1 | 1,000 | 900 |",
            "## Targets",
            "rustc 1.0",
        ] {
            assert!(md.contains(needle), "{needle:?} not in:\n{md}");
        }
        // W4: two processes at 160 jobs/s against one at 100 is a ratio of 1.6.
        assert!(
            md.contains("1.6×") || md.contains("1.60×"),
            "no 1.6× ratio in:\n{md}"
        );
    }

    #[test]
    fn reads_the_arguments_saved_by_the_old_cli_report() {
        let saved: Vec<String> = [
            "bench", "--report", "/d/b.md", "--ours", "/o.jsonl", "--fact", "a=b",
        ]
        .map(String::from)
        .into();
        let inputs = Inputs::parse(&saved).unwrap();
        assert_eq!(inputs.out, PathBuf::from("/d/b.md"));
        assert_eq!(inputs.ours, [PathBuf::from("/o.jsonl")]);
        assert_eq!(inputs.fact, ["a=b"]);
        assert!(Inputs::parse(&["--ours".into(), "/o".into()]).is_err());
        assert!(Inputs::parse(&["--bogus".into(), "x".into()]).is_err());
    }
}
