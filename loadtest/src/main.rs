//! `loadtest`: a user-scenario load test of devsecops-app, the way a Locust file describes one.
//!
//! Users browse (list with pagination, get one), sign up (POST with unique emails and the token)
//! or check health, 3:1:1 by default, with think time between steps, a ramp-up and a duration.
//! Thresholds (p95 latency, error rate) decide the exit code: 0 passed, 1 a threshold or a check
//! failed, 2 the run could not start. Goose's HTML and JSON reports and a short `summary.json` go
//! to the reports directory.
//!
//! Without `--host` it starts the service in this process on a free port with a fresh SQLite
//! database (and 30 seeded users), so `cargo run -p loadtest` needs nothing else.

mod scenarios;
mod summary;
mod target;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use goose::config::GooseConfiguration;
use goose::prelude::*;

use scenarios::{Plan, Weights};

#[derive(Parser, Debug)]
#[command(name = "loadtest", version, about, long_about = None)]
struct Args {
    /// Service to load, such as https://app.example.com [default: start one in this process]
    #[arg(long, value_name = "URL")]
    host: Option<String>,
    /// Concurrent users
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    users: u32,
    /// Time to start all users (whole seconds: 10s, 1m)
    #[arg(long, value_name = "TIME", default_value = "5s", value_parser = whole_seconds)]
    ramp_up: u64,
    /// Time at full load once every user started (whole seconds: 30s, 5m)
    #[arg(long, value_name = "TIME", default_value = "30s", value_parser = whole_seconds)]
    duration: u64,
    /// Pause between a user's steps, a random time in MIN..MAX (such as 100ms..500ms, or 1s)
    #[arg(long, value_name = "MIN..MAX", default_value = "100ms..500ms", value_parser = think_time)]
    think_time: (Duration, Duration),
    /// Users per scenario, BROWSE:SIGNUP:HEALTH; 0 leaves a scenario out
    #[arg(long, value_name = "B:S:H", default_value = "3:1:1")]
    weights: Weights,
    /// Page size of the browse scenario's list requests
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100))]
    page_size: u32,
    /// Fail unless 95 % of requests finish under this time (such as 200ms); `off` for none
    #[arg(long, value_name = "TIME|off", default_value = "200ms", value_parser = optional_time)]
    p95: OrOff<Duration>,
    /// Fail when more than this percent of requests fail (0 allows none); `off` for none
    #[arg(long, value_name = "PERCENT|off", default_value = "1", value_parser = optional_percent)]
    max_error_rate: OrOff<f64>,
    /// Another pass/fail rule in goose's syntax, such as "p99<1s" or "p95<100ms for GET /health"
    #[arg(long, value_name = "RULE")]
    threshold: Vec<String>,
    /// Where the HTML and JSON reports and summary.json are written
    #[arg(long, value_name = "DIR", default_value = "reports/loadtest")]
    reports: PathBuf,
    /// File holding the bearer token for sign-up (a mounted Secret); or set LOADTEST_TOKEN
    #[arg(long, value_name = "PATH", conflicts_with = "token_env")]
    token_file: Option<PathBuf>,
    #[arg(
        long = "token-from-env",
        env = "LOADTEST_TOKEN",
        hide = true,
        hide_env_values = true
    )]
    token_env: Option<String>,
    /// Worker threads of the service started in this process (without --host)
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    service_workers: u32,
    /// Further goose options, passed through as given (after --)
    #[arg(last = true, value_name = "GOOSE OPTIONS")]
    goose: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return usage_error(&format!("runtime: {err}")),
    };
    let code = runtime.block_on(run(args));
    // The service started in-process writes its last lines before the process ends.
    devsecops_app::telemetry::flush_all();
    code
}

async fn run(args: Args) -> ExitCode {
    if let Err(err) = std::fs::create_dir_all(&args.reports) {
        return usage_error(&format!(
            "reports directory {}: {err}",
            args.reports.display()
        ));
    }
    let token_from_user = match (&args.token_file, &args.token_env) {
        (Some(path), _) => match std::fs::read_to_string(path) {
            Ok(text) => Some(text.trim_end_matches(['\n', '\r']).to_string()),
            Err(err) => return usage_error(&format!("--token-file {}: {err}", path.display())),
        },
        (None, token) => token.clone().filter(|t| !t.is_empty()),
    };

    // Refused before anything starts, rather than after the service is up.
    let rules = thresholds(&args);
    for rule in &rules {
        if let Err(err) = rule.parse::<goose::threshold::Threshold>() {
            return usage_error(&format!("threshold {rule:?}: {err}"));
        }
    }

    let (host, token, local) = match &args.host {
        Some(host) => {
            if !(host.starts_with("http://") || host.starts_with("https://")) {
                return usage_error(&format!(
                    "--host: expected an http:// or https:// URL, got {host:?}"
                ));
            }
            if args.weights.signup > 0 && token_from_user.is_none() {
                return usage_error(
                    "sign-up needs the API token: --token-file PATH or LOADTEST_TOKEN (or --weights B:0:H)",
                );
            }
            (
                host.trim_end_matches('/').to_string(),
                token_from_user,
                None,
            )
        }
        None => {
            let log = args.reports.join("service.log");
            match target::start(args.service_workers as usize, &log) {
                Ok(service) => {
                    eprintln!(
                        "loadtest: started the service at {} (log: {})",
                        service.url,
                        log.display()
                    );
                    (
                        service.url.clone(),
                        Some(service.token.clone()),
                        Some(service),
                    )
                }
                Err(err) => return usage_error(&format!("starting the service: {err}")),
            }
        }
    };

    let goose_args = goose_arguments(&args, &host, &rules);
    let configuration = match GooseConfiguration::parse_args_default(&goose_args) {
        Ok(configuration) => configuration,
        Err(err) => return usage_error(&err.to_string()),
    };
    let plan = Arc::new(Plan {
        page_size: args.page_size,
        token,
        run_id: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
        signups: AtomicU64::new(0),
    });
    let scenarios = match scenarios::build(plan, args.weights, args.think_time) {
        Ok(scenarios) => scenarios,
        Err(err) => return usage_error(&err.to_string()),
    };
    let mut attack = match GooseAttack::initialize_with_config(configuration) {
        Ok(attack) => attack,
        Err(err) => return usage_error(&err.to_string()),
    };
    for scenario in scenarios {
        attack = attack.register_scenario(scenario);
    }

    let metrics = match attack.execute().await {
        Ok(metrics) => metrics,
        Err(GooseError::ThresholdsFailed { metrics, .. }) => *metrics.0,
        Err(err) => return usage_error(&err.to_string()),
    };
    let report = summary::Summary::new(&args, &host, local.is_some(), &rules, &metrics);
    let path = args.reports.join("summary.json");
    if let Err(err) = report.write(&path) {
        eprintln!("loadtest: {err}");
        return ExitCode::from(2);
    }
    report.print();
    drop(local);
    if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("loadtest: {message}");
    ExitCode::from(2)
}

/// The pass/fail rules in goose's syntax: the two flags, then any `--threshold`.
fn thresholds(args: &Args) -> Vec<String> {
    let mut rules = Vec::new();
    if let OrOff(Some(p95)) = args.p95 {
        rules.push(format!("p95<{}us", p95.as_micros()));
    }
    if let OrOff(Some(percent)) = args.max_error_rate {
        rules.push(format!("error-rate<={percent}%"));
    }
    rules.extend(args.threshold.iter().cloned());
    rules
}

/// The goose command line our flags stand for; what follows `--` is appended as given.
fn goose_arguments(args: &Args, host: &str, rules: &[String]) -> Vec<String> {
    let reports = args.reports.display().to_string();
    let mut out: Vec<String> = vec![
        "--host".into(),
        host.into(),
        "--users".into(),
        args.users.to_string(),
        "--run-time".into(),
        format!("{}s", args.duration),
        "--report-file".into(),
        format!("{reports}/report.html"),
        "--report-file".into(),
        format!("{reports}/report.json"),
        // No telnet controller (the WebSocket one is off by default): a Job or a CI step has no
        // one to talk to it, and its fixed port would collide between runs.
        "--no-telnet".into(),
    ];
    // Goose spreads users over --increase-time only with two or more of them.
    if args.users >= 2 && args.ramp_up > 0 {
        out.extend(["--increase-time".into(), format!("{}s", args.ramp_up)]);
    } else {
        out.extend(["--increase-rate".into(), args.users.to_string()]);
    }
    for rule in rules {
        out.extend(["--threshold".into(), rule.clone()]);
    }
    out.extend(args.goose.iter().cloned());
    out
}

/// A time such as `250ms`, `5s`, `2m` or `1h`; a bare number is seconds.
fn parse_time(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("expected a time such as 250ms, 5s or 2m, got {text:?}"))?;
    let millis = match unit {
        "ms" => Some(number),
        "" | "s" => number.checked_mul(1_000),
        "m" => number.checked_mul(60_000),
        "h" => number.checked_mul(3_600_000),
        _ => None,
    }
    .ok_or_else(|| format!("expected a time such as 250ms, 5s or 2m, got {text:?}"))?;
    if millis > 7 * 24 * 3_600_000 {
        return Err(format!("{text:?} is longer than a week"));
    }
    Ok(Duration::from_millis(millis))
}

fn whole_seconds(text: &str) -> Result<u64, String> {
    let time = parse_time(text)?;
    if time.subsec_millis() != 0 {
        return Err(format!("{text:?}: whole seconds only"));
    }
    Ok(time.as_secs())
}

fn think_time(text: &str) -> Result<(Duration, Duration), String> {
    let (min, max) = match text.split_once("..") {
        Some((min, max)) => (parse_time(min)?, parse_time(max)?),
        None => {
            let fixed = parse_time(text)?;
            (fixed, fixed)
        }
    };
    if min > max {
        return Err(format!("{text:?}: MIN is above MAX"));
    }
    Ok((min, max))
}

/// A limit, or `off` for none.
#[derive(Clone, Copy, Debug, PartialEq)]
struct OrOff<T>(Option<T>);

fn optional_time(text: &str) -> Result<OrOff<Duration>, String> {
    if text == "off" {
        return Ok(OrOff(None));
    }
    let time = parse_time(text)?;
    if time.is_zero() {
        return Err("a p95 under 0 can never pass; use off for no latency rule".into());
    }
    Ok(OrOff(Some(time)))
}

fn optional_percent(text: &str) -> Result<OrOff<f64>, String> {
    if text == "off" {
        return Ok(OrOff(None));
    }
    let percent: f64 = text
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("expected a percent such as 1 or 0.5, got {text:?}"))?;
    if !(0.0..100.0).contains(&percent) {
        return Err(format!("expected 0 to under 100, got {text:?}"));
    }
    Ok(OrOff(Some(percent)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut line = vec!["loadtest"];
        line.extend_from_slice(extra);
        Args::try_parse_from(line).expect("valid arguments")
    }

    #[test]
    fn times_parse_with_units_and_refuse_nonsense() {
        assert_eq!(parse_time("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_time("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_time("2m"), Ok(Duration::from_secs(120)));
        for bad in [
            "",
            "ms",
            "5x",
            "-1s",
            "1.5s",
            "99999999999999999999h",
            "9999h",
        ] {
            assert!(parse_time(bad).is_err(), "{bad:?} accepted");
        }
        assert!(whole_seconds("1500ms").is_err());
        assert_eq!(
            think_time("100ms..1s"),
            Ok((Duration::from_millis(100), Duration::from_secs(1)))
        );
        assert!(think_time("2s..1s").is_err());
        assert_eq!(optional_time("off"), Ok(OrOff(None)));
        assert!(optional_time("0ms").is_err());
        assert_eq!(optional_percent("0.5%"), Ok(OrOff(Some(0.5))));
        assert!(optional_percent("100").is_err());
        assert!(optional_percent("-1").is_err());
    }

    #[test]
    fn defaults_are_the_locust_style_run_with_both_thresholds() {
        let a = args(&[]);
        assert_eq!(a.users, 10);
        assert_eq!(a.weights, Weights::default());
        assert_eq!(thresholds(&a), vec!["p95<200000us", "error-rate<=1%"]);
        let line = goose_arguments(&a, "http://x", &thresholds(&a));
        let config = GooseConfiguration::parse_args_default(&line).expect("goose accepts it");
        assert_eq!(config.users, Some(10));
        assert_eq!(config.increase_time.as_deref(), Some("5s"));
        assert_eq!(config.run_time.as_deref(), Some("30s"));
        assert_eq!(config.threshold.len(), 2);
        assert!(config.no_telnet);
    }

    #[test]
    fn thresholds_can_be_turned_off_or_added() {
        let a = args(&[
            "--p95",
            "off",
            "--max-error-rate",
            "0",
            "--threshold",
            "p99<1s",
        ]);
        assert_eq!(thresholds(&a), vec!["error-rate<=0%", "p99<1s"]);
        let line = goose_arguments(&a, "http://x", &thresholds(&a));
        assert!(GooseConfiguration::parse_args_default(&line).is_ok());
        // Goose's parser refuses a rule it cannot judge; run() asks it before anything starts.
        assert!("p100<1s".parse::<goose::threshold::Threshold>().is_err());
        assert!("p95<200000us"
            .parse::<goose::threshold::Threshold>()
            .is_ok());
        assert!("error-rate<=0%"
            .parse::<goose::threshold::Threshold>()
            .is_ok());
    }

    #[test]
    fn one_user_starts_at_once_and_extra_goose_options_pass_through() {
        let a = args(&["--users", "1", "--", "--request-log", "r.log"]);
        let line = goose_arguments(&a, "http://x", &[]);
        let config = GooseConfiguration::parse_args_default(&line).expect("valid");
        assert_eq!(config.increase_rate.as_deref(), Some("1"));
        assert_eq!(config.request_log.as_deref(), Some("r.log"));
    }

    #[test]
    fn bad_flags_are_refused() {
        for bad in [
            &["--users", "0"][..],
            &["--weights", "0:0:0"],
            &["--ramp-up", "1500ms"],
            &["--think-time", "1s..10ms"],
            &["--page-size", "101"],
        ] {
            let mut line = vec!["loadtest"];
            line.extend_from_slice(bad);
            assert!(Args::try_parse_from(line).is_err(), "{bad:?} accepted");
        }
    }
}
