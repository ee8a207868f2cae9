//! The HTTP API's section of `docs/benchmarks.md`: `semiont-jobs bench
//! --workload http` run several times (GET throughput and latency, 1,000
//! event-stream clients during a burst, enqueue → event latency), reduced
//! to medians with their spread, between two markers so that
//! `cargo xtask bench --http` can rewrite it alone.

use std::path::Path;

use super::report::{int, max, med, med_range, min, num, Rows};

/// The markers around the section.
pub const BEGIN: &str = "<!-- http:begin (cargo xtask bench --http) -->";
pub const END: &str = "<!-- http:end -->";

/// The section's markdown from the rows of `runs` runs of the http workload.
pub fn section(rows: &Rows, runs: usize, command: &str, facts: &str) -> String {
    let mut s = String::new();
    s.push_str(BEGIN);
    s.push_str("\n## HTTP API (`semiont-jobs serve`)\n\n");
    s.push_str(&format!(
        "Medians of {runs} runs (min–max in parentheses) of `{command}`, on the filesystem backend \
         with durability none, loopback only; the load client is the harness's own HTTP/1.1 \
         keep-alive loop on the same 2 cores as the server. {facts}\n\n"
    ));
    s.push_str("| request | connections | requests/s | p50 ms | p99 ms | p99.9 ms | errors | server RSS MiB |\n");
    s.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    let gets = rows.of("HTTP-get", |_| true);
    let mut names: Vec<&str> = gets.iter().filter_map(|r| r["request"].as_str()).collect();
    names.dedup();
    names.sort_unstable();
    names.dedup();
    for name in &names {
        let r = rows.of("HTTP-get", |r| r["request"] == *name);
        s.push_str(&format!(
            "| `{name}` | {} | {} | {} | {} | {} | {} | {} |\n",
            int(med(&r, "connections")),
            med_range(&r, "requests_per_s"),
            med_range(&r, "p50_ms"),
            med_range(&r, "p99_ms"),
            med_range(&r, "p999_ms"),
            num(max(&r, "errors")),
            med_range(&r, "server_rss_mib"),
        ));
    }
    let burst = rows.of("HTTP-sse-burst", |_| true);
    if !burst.is_empty() {
        s.push_str("\n**1,000 event-stream clients during a burst** (`GET /api/v1/events` held open by each \
                    client while a `work` process runs the burst's jobs):\n\n");
        s.push_str("| clients | jobs | clients that saw every completion (worst run) | resynced | missing events (worst run) | server RSS idle → connected MiB | peak MiB | wall s |\n");
        s.push_str("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} → {} | {} | {} |\n",
            int(med(&burst, "clients")),
            int(med(&burst, "jobs")),
            num(min(&burst, "clients_saw_every_completion")),
            num(max(&burst, "clients_resynced")),
            num(max(&burst, "clients_missing_events")),
            med_range(&burst, "server_rss_idle_mib"),
            med_range(&burst, "server_rss_connected_mib"),
            med_range(&burst, "server_rss_peak_sampled_mib"),
            med_range(&burst, "wall_s"),
        ));
    }
    let latency = rows.of("HTTP-sse-latency", |_| true);
    if !latency.is_empty() {
        s.push_str("\n**Enqueue → visible in a browser**: `sleep` jobs of 100 ms enqueued one at a time, spaced; the \
                    time until the worker starts each (W3's interval) and until the `started` event \
                    reaches an event-stream client:\n\n");
        s.push_str("| jobs | enqueue → start p50 ms | enqueue → event p50 ms | p99 ms | event after start p50 ms | p99 ms |\n");
        s.push_str("| ---: | ---: | ---: | ---: | ---: | ---: |\n");
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            int(med(&latency, "measured")),
            med_range(&latency, "enqueue_to_start_p50_ms"),
            med_range(&latency, "enqueue_to_sse_p50_ms"),
            med_range(&latency, "enqueue_to_sse_p99_ms"),
            med_range(&latency, "sse_after_start_p50_ms"),
            med_range(&latency, "sse_after_start_p99_ms"),
        ));
    }
    let by_id = rows.of("HTTP-get", |r| {
        r["request"].as_str().is_some_and(|n| n.contains("{id}"))
    });
    let verdict = |ok: bool| if ok { "**met**" } else { "**missed**" };
    s.push_str("\n| target | measured | |\n| --- | --- | --- |\n");
    if let (Some(rps), Some(p99)) = (med(&by_id, "requests_per_s"), med(&by_id, "p99_ms")) {
        s.push_str(&format!(
            "| `GET /api/v1/jobs/{{id}}` ≥ 10,000 requests/s with p99 ≤ 20 ms | {} requests/s, p99 {} ms | {} |\n",
            num(Some(rps)),
            num(Some(p99)),
            verdict(rps >= 10_000.0 && p99 <= 20.0)
        ));
    }
    if !burst.is_empty() {
        let missing = max(&burst, "clients_missing_events").unwrap_or(f64::NAN);
        let rss = max(&burst, "server_rss_peak_sampled_mib").unwrap_or(f64::NAN);
        s.push_str(&format!(
            "| every SSE client gets every event of the burst (or a `resync`) | {} clients missing events in the worst run | {} |\n",
            num(Some(missing)),
            verdict(missing == 0.0)
        ));
        s.push_str(&format!(
            "| server RSS ≤ 150 MB with 1,000 clients | {} MiB peak (largest run) | {} |\n",
            num(Some(rss)),
            verdict(rss <= 150.0)
        ));
    }
    if let Some(added) = med(&latency, "sse_after_start_p50_ms") {
        s.push_str(&format!(
            "| the event stream adds ≤ 5 ms p50 to enqueue → visible | {} ms | {} |\n",
            num(Some(added)),
            verdict(added <= 5.0)
        ));
    }
    s.push_str(END);
    s.push('\n');
    s
}

/// Puts `section` into the page at `doc` (see [`super::splice`]).
pub fn splice(doc: &Path, section: &str) -> Result<(), String> {
    super::splice(doc, BEGIN, END, section)
}

/// Rows of a JSON-lines file.
pub fn load(path: &Path) -> Result<Rows, String> {
    Rows::load(&[path.to_path_buf()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_replaces_its_old_self_and_keeps_the_rest() {
        let dir = std::env::temp_dir().join(format!("xtask-http-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let doc = dir.join("b.md");
        std::fs::write(&doc, "# Page\n\nbefore\n").unwrap();
        splice(&doc, &format!("{BEGIN}\nfirst\n{END}\n")).unwrap();
        std::fs::write(
            &doc,
            std::fs::read_to_string(&doc).unwrap() + "\n## After\n",
        )
        .unwrap();
        splice(&doc, &format!("{BEGIN}\nsecond\n{END}\n")).unwrap();
        let page = std::fs::read_to_string(&doc).unwrap();
        assert_eq!(
            page,
            format!("# Page\n\nbefore\n\n{BEGIN}\nsecond\n{END}\n\n## After\n")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn medians_and_verdicts_come_from_the_rows() {
        let rows = Rows::from_values(vec![
            serde_json::json!({"workload": "HTTP-get", "request": "GET /api/v1/jobs/{id}", "connections": 32, "requests_per_s": 12000.0, "p50_ms": 1.0, "p99_ms": 9.0, "p999_ms": 12.0, "errors": 0, "server_rss_mib": 20.0}),
            serde_json::json!({"workload": "HTTP-get", "request": "GET /api/v1/jobs/{id}", "connections": 32, "requests_per_s": 8000.0, "p50_ms": 1.0, "p99_ms": 9.0, "p999_ms": 12.0, "errors": 0, "server_rss_mib": 20.0}),
            serde_json::json!({"workload": "HTTP-get", "request": "GET /api/v1/jobs/{id}", "connections": 32, "requests_per_s": 11000.0, "p50_ms": 1.0, "p99_ms": 9.0, "p999_ms": 12.0, "errors": 0, "server_rss_mib": 20.0}),
        ]);
        let s = section(&rows, 3, "x", "");
        assert!(
            s.contains("| `GET /api/v1/jobs/{id}` | 32 | 11,000 (8,000–12,000) | 1.00 | 9.00 | 12.0 | 0 | 20.0 |"),
            "{s}"
        );
        assert!(
            s.contains("| 11,000 requests/s, p99 9.00 ms | **met** |"),
            "{s}"
        );
        let slow = Rows::from_values(vec![
            serde_json::json!({"workload": "HTTP-get", "request": "GET /api/v1/jobs/{id}", "requests_per_s": 9000.0, "p99_ms": 9.0}),
        ]);
        assert!(section(&slow, 1, "x", "").contains("**missed**"));
    }
}
