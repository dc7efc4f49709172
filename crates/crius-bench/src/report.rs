//! The results of one run (rows of measurements, as JSON), their tables, and the comparison of
//! two runs with the tracker's targets.

use serde::{Deserialize, Serialize};

use crate::stats::Stats;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every attempt succeeded.
    Ok,
    /// The endpoint answered UNIMPLEMENTED: no figure, and the message says so.
    NotSupported,
    /// Not run (no image given, interrupted, a prerequisite was not supported...).
    Skipped,
    /// Some attempts failed: the stats (if any) are of the successful ones.
    Failed,
}

/// One measurement: a latency series (ms), a memory figure (MiB) or a count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub key: String,
    pub title: String,
    pub unit: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    pub stats: Option<Stats>,
    #[serde(default)]
    pub attempts: usize,
    #[serde(default)]
    pub failures: usize,
}

impl Row {
    pub fn value(key: &str, title: &str, unit: &str, value: f64) -> Row {
        Row {
            key: key.into(),
            title: title.into(),
            unit: unit.into(),
            status: Status::Ok,
            message: String::new(),
            stats: Stats::from_samples(&[value]),
            attempts: 1,
            failures: 0,
        }
    }

    pub fn series(key: &str, title: &str, unit: &str, samples: &[f64]) -> Row {
        Row {
            key: key.into(),
            title: title.into(),
            unit: unit.into(),
            status: Status::Ok,
            message: String::new(),
            stats: Stats::from_samples(samples),
            attempts: samples.len(),
            failures: 0,
        }
    }

    pub fn without(key: &str, title: &str, unit: &str, status: Status, message: impl Into<String>) -> Row {
        Row {
            key: key.into(),
            title: title.into(),
            unit: unit.into(),
            status,
            message: message.into(),
            stats: None,
            attempts: 0,
            failures: 0,
        }
    }

    pub fn is_ok(&self) -> bool {
        self.status == Status::Ok && self.stats.is_some()
    }
}

/// What a run was asked to do.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Params {
    pub count: usize,
    pub warmup: usize,
    pub concurrency: usize,
    pub rounds: usize,
    pub list_pods: usize,
    pub containers: usize,
    pub rpc_count: usize,
    pub image: Option<String>,
    #[serde(default)]
    pub same_layers_image: Option<String>,
    pub cgroup_parent: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The label of this run (`--name`: crius, containerd).
    pub name: String,
    pub endpoint: String,
    /// From the Version RPC.
    pub runtime_name: String,
    pub runtime_version: String,
    pub daemon_pid: Option<i32>,
    pub run_id: String,
    pub params: Params,
    pub started_unix: u64,
    pub duration_s: f64,
    pub interrupted: bool,
    pub rows: Vec<Row>,
}

impl Report {
    pub fn row(&self, key: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.key == key)
    }

    /// Rows that failed (the harness or the runtime broke).
    pub fn failed(&self) -> Vec<&Row> {
        self.rows.iter().filter(|r| r.status == Status::Failed).collect()
    }
}

/// A number as it is shown: 3 significant-ish digits.
pub fn fmt_num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// A Markdown table with padded columns (readable as plain text too). `right[i]` aligns column i
/// to the right.
pub fn render_table(headers: &[&str], rows: &[Vec<String>], right: &[bool]) -> String {
    let cols = headers.len();
    let mut width: Vec<usize> = headers.iter().map(|h| h.chars().count().max(3)).collect();
    let rows: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(|c| cell(c)).collect()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate().take(cols) {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let pad = |s: &str, i: usize| {
        let fill = " ".repeat(width[i].saturating_sub(s.chars().count()));
        if right.get(i).copied().unwrap_or(false) { format!("{fill}{s}") } else { format!("{s}{fill}") }
    };
    let mut out = String::new();
    let line = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
    out.push_str(&line(headers.iter().enumerate().map(|(i, h)| pad(h, i)).collect()));
    out.push_str(&line(
        (0..cols)
            .map(|i| {
                let dashes = "-".repeat(width[i]);
                if right.get(i).copied().unwrap_or(false) { format!("{}:", &dashes[1..]) } else { dashes }
            })
            .collect(),
    ));
    for r in &rows {
        out.push_str(&line((0..cols).map(|i| pad(r.get(i).map_or("", String::as_str), i)).collect()));
    }
    out
}

/// At most `max` characters (the JSON keeps the whole message).
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_string() } else { format!("{}...", s.chars().take(max).collect::<String>()) }
}

fn status_text(r: &Row) -> String {
    match r.status {
        Status::Ok => "ok".into(),
        Status::NotSupported | Status::Skipped => truncate(&r.message, 160),
        Status::Failed => format!("FAILED: {}", truncate(&r.message, 160)),
    }
}

/// The table of one run.
pub fn render_report(report: &Report) -> String {
    let headers = ["measurement", "unit", "n", "p50", "p95", "max", "status"];
    let rows: Vec<Vec<String>> = report
        .rows
        .iter()
        .map(|r| {
            let (n, p50, p95, max) = match &r.stats {
                Some(s) if s.n == 1 => (s.n.to_string(), fmt_num(s.p50), String::new(), String::new()),
                Some(s) => (s.n.to_string(), fmt_num(s.p50), fmt_num(s.p95), fmt_num(s.max)),
                None => (String::new(), "-".into(), "-".into(), "-".into()),
            };
            vec![r.title.clone(), r.unit.clone(), n, p50, p95, max, status_text(r)]
        })
        .collect();
    render_table(&headers, &rows, &[false, false, true, true, true, true, false])
}

/// A short form of a row's value for the comparison table.
fn short(r: Option<&Row>, pick: fn(&Stats) -> f64) -> String {
    match r {
        None => "-".into(),
        Some(r) => match (&r.status, &r.stats) {
            (Status::Ok, Some(s)) => fmt_num(pick(s)),
            (Status::Failed, Some(s)) => format!("{} (FAILED)", fmt_num(pick(s))),
            (Status::Failed, None) => "FAILED".into(),
            (Status::NotSupported, _) => "not supported".into(),
            (Status::Skipped, _) | (Status::Ok, None) => "skipped".into(),
        },
    }
}

/// subject / baseline of the p50s, when both rows are Ok.
pub fn ratio(subject: Option<&Row>, baseline: Option<&Row>) -> Option<f64> {
    let (s, b) = (subject?, baseline?);
    if !s.is_ok() || !b.is_ok() {
        return None;
    }
    let (s, b) = (s.stats.as_ref()?.p50, b.stats.as_ref()?.p50);
    (b > 0.0).then_some(s / b)
}

/// Both runs side by side, with the ratio of the p50s (subject / baseline).
pub fn render_comparison(subject: &Report, baseline: &Report) -> String {
    let (a, b) = (&subject.name, &baseline.name);
    let h = [
        "measurement".to_string(),
        "unit".into(),
        format!("{a} p50"),
        format!("{b} p50"),
        format!("{a}/{b}"),
        format!("{a} p95"),
        format!("{b} p95"),
        format!("{a} max"),
        format!("{b} max"),
    ];
    let headers: Vec<&str> = h.iter().map(String::as_str).collect();
    let mut keys: Vec<&Row> = subject.rows.iter().collect();
    for r in &baseline.rows {
        if subject.row(&r.key).is_none() {
            keys.push(r);
        }
    }
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            let (s, base) = (subject.row(&k.key), baseline.row(&k.key));
            // One-value rows (memory, wall times) have no spread to show.
            let n = |r: Option<&Row>| r.and_then(|r| r.stats.as_ref()).map_or(0, |s| s.n);
            let (sp95, bp95, smax, bmax) = if n(s) <= 1 && n(base) <= 1 {
                (String::new(), String::new(), String::new(), String::new())
            } else {
                (short(s, |s| s.p95), short(base, |s| s.p95), short(s, |s| s.max), short(base, |s| s.max))
            };
            vec![
                k.title.clone(),
                k.unit.clone(),
                short(s, |s| s.p50),
                short(base, |s| s.p50),
                ratio(s, base).map_or("-".into(), |r| format!("{r:.2}x")),
                sp95,
                bp95,
                smax,
                bmax,
            ]
        })
        .collect();
    render_table(&headers, &rows, &[false, false, true, true, true, true, true, true, true])
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Met,
    NotMet,
    NotMeasured(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TargetResult {
    pub target: String,
    pub measured: String,
    pub verdict: Verdict,
}

/// The p50 of a row, or why there is none.
fn p50_of(report: &Report, key: &str) -> Result<f64, String> {
    match report.row(key) {
        None => Err(format!("{}: no such measurement", report.name)),
        Some(r) if r.is_ok() => Ok(r.stats.as_ref().map_or(f64::NAN, |s| s.p50)),
        Some(r) if r.status == Status::Failed => Err(format!("{}: failed: {}", report.name, r.message)),
        Some(r) => Err(r.message.clone()),
    }
}

fn mean_of(report: &Report, key: &str) -> Result<f64, String> {
    p50_of(report, key)?;
    Ok(report.row(key).and_then(|r| r.stats.as_ref()).map_or(f64::NAN, |s| s.mean))
}

fn verdict(ok: bool) -> Verdict {
    if ok { Verdict::Met } else { Verdict::NotMet }
}

/// The tracker's targets, for `subject` (crius) against `baseline` (containerd).
pub fn targets(subject: &Report, baseline: &Report) -> Vec<TargetResult> {
    let (a, b) = (&subject.name, &baseline.name);
    let mut out = Vec::new();
    let relative = |key: &str, target: String, max_ratio: f64| {
        let measured = match (p50_of(subject, key), p50_of(baseline, key)) {
            (Ok(s), Ok(bv)) if bv > 0.0 => {
                let r = s / bv;
                return TargetResult {
                    target,
                    measured: format!("{} / {} ms = {r:.2}x", fmt_num(s), fmt_num(bv)),
                    verdict: verdict(r <= max_ratio),
                };
            }
            (Err(e), _) | (_, Err(e)) => e,
            _ => "no baseline figure".into(),
        };
        TargetResult { target, measured: "-".into(), verdict: Verdict::NotMeasured(measured) }
    };
    out.push(relative("pod_to_running", format!("pod to running p50 <= 0.5x {b}"), 0.5));
    out.push(relative("run_pod_host", format!("RunPodSandbox p50, host network <= 0.3x {b}"), 0.3));
    out.push(relative("run_pod_netns", format!("RunPodSandbox p50, pod network <= 0.6x {b}"), 0.6));

    let target = "helper memory per pod <= 1 MiB Pss".to_string();
    out.push(match mean_of(subject, "helper_pss_per_pod") {
        Ok(v) => TargetResult {
            target,
            measured: format!(
                "{} MiB ({b}: {})",
                fmt_num(v),
                mean_of(baseline, "helper_pss_per_pod").map_or("-".into(), |x| format!("{} MiB", fmt_num(x)))
            ),
            verdict: verdict(v <= 1.0),
        },
        Err(e) => TargetResult { target, measured: "-".into(), verdict: Verdict::NotMeasured(e) },
    });

    let target = "daemon RSS with 50 pods <= 30 MiB".to_string();
    out.push(if subject.params.list_pods < 50 {
        TargetResult {
            target,
            measured: "-".into(),
            verdict: Verdict::NotMeasured(format!("run had {} pods, not 50", subject.params.list_pods)),
        }
    } else {
        match p50_of(subject, "daemon_rss_pods") {
            Ok(v) => TargetResult {
                target,
                measured: format!(
                    "{} MiB ({b}: {})",
                    fmt_num(v),
                    p50_of(baseline, "daemon_rss_pods").map_or("-".into(), |x| format!("{} MiB", fmt_num(x)))
                ),
                verdict: verdict(v <= 30.0),
            },
            Err(e) => TargetResult { target, measured: "-".into(), verdict: Verdict::NotMeasured(e) },
        }
    });

    let target = "ListContainers with 100 containers <= 2 ms p50".to_string();
    out.push(if subject.params.containers < 100 {
        TargetResult {
            target,
            measured: "-".into(),
            verdict: Verdict::NotMeasured(format!("run had {} containers, not 100", subject.params.containers)),
        }
    } else {
        match p50_of(subject, "list_containers") {
            Ok(v) => TargetResult {
                target,
                measured: format!(
                    "{} ms ({b}: {})",
                    fmt_num(v),
                    p50_of(baseline, "list_containers").map_or("-".into(), |x| format!("{} ms", fmt_num(x)))
                ),
                verdict: verdict(v <= 2.0),
            },
            Err(e) => TargetResult { target, measured: "-".into(), verdict: Verdict::NotMeasured(e) },
        }
    });

    let target = format!("16 concurrent pods all succeed, wall time below {b}'s");
    out.push(if subject.params.concurrency < 16 {
        TargetResult {
            target,
            measured: "-".into(),
            verdict: Verdict::NotMeasured(format!("run started {} at once, not 16", subject.params.concurrency)),
        }
    } else {
        match subject.row("concurrent_pod") {
            Some(r) if r.status == Status::Failed => {
                TargetResult { target, measured: format!("{a}: {}", r.message), verdict: Verdict::NotMet }
            }
            _ => match (p50_of(subject, "concurrent_wall"), p50_of(baseline, "concurrent_wall")) {
                (Ok(s), Ok(bv)) => TargetResult {
                    target,
                    measured: format!("all succeeded; wall {} vs {} ms", fmt_num(s), fmt_num(bv)),
                    verdict: verdict(s < bv),
                },
                (Err(e), _) | (_, Err(e)) => {
                    TargetResult { target, measured: "-".into(), verdict: Verdict::NotMeasured(e) }
                }
            },
        }
    });

    let target = format!("cold pull >= 1.5x faster than {b}");
    out.push(match (p50_of(subject, "pull_cold"), p50_of(baseline, "pull_cold")) {
        (Ok(s), Ok(bv)) if s > 0.0 => TargetResult {
            target,
            measured: format!("{} vs {} ms = {:.2}x faster", fmt_num(s), fmt_num(bv), bv / s),
            verdict: verdict(bv / s >= 1.5),
        },
        (Err(e), _) | (_, Err(e)) => TargetResult { target, measured: "-".into(), verdict: Verdict::NotMeasured(e) },
        _ => TargetResult { target, measured: "-".into(), verdict: Verdict::NotMeasured("zero time".into()) },
    });
    out
}

pub fn render_targets(results: &[TargetResult]) -> String {
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|t| {
            let v = match &t.verdict {
                Verdict::Met => "met".to_string(),
                Verdict::NotMet => "NOT MET".to_string(),
                Verdict::NotMeasured(why) => format!("not measured: {why}"),
            };
            vec![t.target.clone(), t.measured.clone(), v]
        })
        .collect();
    render_table(&["target", "measured", "verdict"], &rows, &[false, false, false])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(name: &str, rows: Vec<Row>) -> Report {
        Report {
            name: name.into(),
            params: Params { list_pods: 50, containers: 100, concurrency: 16, ..Params::default() },
            rows,
            ..Report::default()
        }
    }

    #[test]
    fn table_pads_and_aligns() {
        let t =
            render_table(&["a", "num"], &[vec!["long name".into(), "1.5".into()], vec!["x|y".into()]], &[false, true]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "| a         | num |");
        assert_eq!(lines[1], "| --------- | --: |", "at least 3 wide");
        assert_eq!(lines[2], "| long name | 1.5 |");
        assert_eq!(lines[3], "| x\\|y      |     |", "pipes escaped, missing cells blank");
    }

    #[test]
    fn long_messages_are_cut_in_tables() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "abc...");
        let mut row = Row::without("k", "t", "ms", Status::Failed, "x".repeat(500));
        row.attempts = 1;
        let t = render_report(&report("r", vec![row]));
        assert!(t.contains(&format!("FAILED: {}...", "x".repeat(160))), "{t}");
        assert!(!t.contains(&"x".repeat(161)));
    }

    #[test]
    fn numbers_keep_three_digits() {
        assert_eq!(fmt_num(1234.56), "1235");
        assert_eq!(fmt_num(12.345), "12.3");
        assert_eq!(fmt_num(1.2345), "1.23");
        assert_eq!(fmt_num(0.01234), "0.012");
    }

    #[test]
    fn report_table_shows_stats_values_and_reasons() {
        let r = report(
            "crius",
            vec![
                Row::series("run_pod_host", "RunPodSandbox, host network", "ms", &[1.0, 2.0, 3.0]),
                Row::value("daemon_rss_idle", "daemon RSS, idle", "MiB", 7.25),
                Row::without("exec_sync", "ExecSync true", "ms", Status::NotSupported, "not supported by crius: x"),
                Row {
                    failures: 1,
                    attempts: 3,
                    status: Status::Failed,
                    message: "1 of 3 failed: boom".into(),
                    ..Row::series("concurrent_pod", "RunPodSandbox, 16 at once", "ms", &[5.0, 6.0])
                },
            ],
        );
        let t = render_report(&r);
        assert!(t.contains("| RunPodSandbox, host network | ms   |   3 | 2.00 | 3.00 | 3.00 | ok"), "{t}");
        assert!(t.contains("| daemon RSS, idle            | MiB  |   1 | 7.25 |      |      | ok"), "{t}");
        assert!(t.contains("|     |    - |    - |    - | not supported by crius: x"), "{t}");
        assert!(t.contains("FAILED: 1 of 3 failed: boom"), "{t}");
    }

    #[test]
    fn report_round_trips_through_json() {
        let r = report("containerd", vec![Row::series("k", "t", "ms", &[1.0])]);
        let back: Report = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        assert!(serde_json::to_string(&r).unwrap().contains("\"status\":\"ok\""));
    }

    #[test]
    fn comparison_ratio_only_for_two_ok_rows() {
        let a = report(
            "crius",
            vec![
                Row::series("run_pod_host", "RunPodSandbox, host network", "ms", &[10.0]),
                Row::without("exec_sync", "ExecSync", "ms", Status::NotSupported, "not supported by crius: u"),
            ],
        );
        let b = report(
            "containerd",
            vec![
                Row::series("run_pod_host", "RunPodSandbox, host network", "ms", &[40.0]),
                Row::series("exec_sync", "ExecSync", "ms", &[30.0, 31.0]),
                Row::series("only_b", "only in b", "ms", &[1.0, 2.0]),
            ],
        );
        assert_eq!(ratio(a.row("run_pod_host"), b.row("run_pod_host")), Some(0.25));
        assert_eq!(ratio(a.row("exec_sync"), b.row("exec_sync")), None);
        let t = render_comparison(&a, &b);
        assert!(t.contains("crius/containerd"), "{t}");
        assert!(t.contains("0.25x"), "{t}");
        assert!(t.contains("not supported"), "{t}");
        assert!(t.contains("only in b"), "{t}");
        let mem_a = report("a", vec![Row::without("m", "mem", "MiB", Status::Skipped, "skipped: x")]);
        let mem_b = report("b", vec![Row::value("m", "mem", "MiB", 48.4)]);
        let t = render_comparison(&mem_a, &mem_b);
        assert_eq!(t.matches("48.4").count(), 1, "no p95/max for a single value: {t}");
    }

    fn verdicts(a: &Report, b: &Report) -> Vec<Verdict> {
        targets(a, b).into_iter().map(|t| t.verdict).collect()
    }

    #[test]
    fn targets_met_not_met_and_not_measured() {
        let a = report(
            "crius",
            vec![
                Row::series("run_pod_host", "", "ms", &[2.0]),
                Row::series("run_pod_netns", "", "ms", &[9.0]),
                Row::series("helper_pss_per_pod", "", "MiB", &[0.5, 0.7]),
                Row::value("daemon_rss_pods", "", "MiB", 31.0),
                Row::without("list_containers", "", "ms", Status::NotSupported, "not supported by crius: no"),
                Row::series("concurrent_pod", "", "ms", &[1.0]),
                Row::series("concurrent_wall", "", "ms", &[50.0]),
            ],
        );
        let b = report(
            "containerd",
            vec![
                Row::series("pod_to_running", "", "ms", &[100.0]),
                Row::series("run_pod_host", "", "ms", &[10.0]),
                Row::series("run_pod_netns", "", "ms", &[10.0]),
                Row::series("concurrent_wall", "", "ms", &[60.0]),
                Row::series("pull_cold", "", "ms", &[60.0]),
            ],
        );
        let v = verdicts(&a, &b);
        assert!(matches!(&v[0], Verdict::NotMeasured(why) if why.contains("no such measurement")));
        assert_eq!(v[1], Verdict::Met, "0.2x <= 0.3x");
        assert_eq!(v[2], Verdict::NotMet, "0.9x > 0.6x");
        assert_eq!(v[3], Verdict::Met, "mean 0.6 MiB");
        assert_eq!(v[4], Verdict::NotMet, "31 MiB");
        assert!(matches!(&v[5], Verdict::NotMeasured(why) if why == "not supported by crius: no"));
        assert_eq!(v[6], Verdict::Met, "50 < 60");
        assert!(matches!(&v[7], Verdict::NotMeasured(_)));
        assert_eq!(targets(&a, &b).len(), 8);
    }

    #[test]
    fn targets_need_the_full_sizes_and_successes() {
        let mut a = report(
            "crius",
            vec![
                Row::value("daemon_rss_pods", "", "MiB", 10.0),
                Row {
                    status: Status::Failed,
                    message: "1 of 16 failed: x".into(),
                    ..Row::series("concurrent_pod", "", "ms", &[1.0])
                },
                Row::series("concurrent_wall", "", "ms", &[1.0]),
                Row::series("pull_cold", "", "ms", &[10.0]),
            ],
        );
        let b = report(
            "containerd",
            vec![Row::series("concurrent_wall", "", "ms", &[60.0]), Row::series("pull_cold", "", "ms", &[20.0])],
        );
        let v = verdicts(&a, &b);
        assert_eq!(v[4], Verdict::Met);
        assert_eq!(v[6], Verdict::NotMet, "a failed pod fails the target");
        assert_eq!(v[7], Verdict::Met, "2x faster");
        a.params.list_pods = 5;
        a.params.concurrency = 4;
        let v = verdicts(&a, &b);
        assert!(matches!(&v[4], Verdict::NotMeasured(why) if why.contains("5 pods")));
        assert!(matches!(&v[6], Verdict::NotMeasured(why) if why.contains("4 at once")));
        let t = render_targets(&targets(&a, &b));
        assert!(t.contains("| target"), "{t}");
    }
}
