//! `summary.json`: the few numbers a pipeline reads (requests, errors, percentiles per request,
//! each rule's verdict) and the run's verdict. Goose's own JSON report holds everything else.

use std::path::Path;

use goose::metrics::GooseMetrics;
use serde::Serialize;

use crate::scenarios::Weights;
use crate::Args;

#[derive(Serialize)]
pub struct Summary {
    pub target: String,
    /// Whether this process started the service it loaded.
    pub started_service: bool,
    pub users: u32,
    pub ramp_up_s: u64,
    pub duration_s: u64,
    pub think_time_ms: [u128; 2],
    pub weights: WeightsOut,
    pub requests: u64,
    pub failed: u64,
    pub error_rate_percent: f64,
    pub by_request: Vec<RequestOut>,
    pub by_scenario: Vec<ScenarioOut>,
    pub thresholds: Vec<RuleOut>,
    /// Reasons the run failed besides thresholds (a scenario that never ran, no request at all).
    pub problems: Vec<String>,
    pub passed: bool,
}

#[derive(Serialize)]
pub struct WeightsOut {
    browse: usize,
    signup: usize,
    health: usize,
}

#[derive(Serialize)]
pub struct RequestOut {
    name: String,
    requests: u64,
    failed: u64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

#[derive(Serialize)]
pub struct ScenarioOut {
    name: String,
    users: usize,
    iterations: usize,
}

#[derive(Serialize)]
pub struct RuleOut {
    rule: String,
    observed: String,
    passed: bool,
}

impl Summary {
    pub fn new(
        args: &Args,
        target: &str,
        started_service: bool,
        rules: &[String],
        metrics: &GooseMetrics,
    ) -> Self {
        let mut by_request: Vec<RequestOut> = metrics
            .requests
            .iter()
            .map(|(name, r)| {
                // Goose takes the percentile as a fraction.
                let ms = |fraction: f32| r.raw_data.percentile_us(fraction) as f64 / 1_000.0;
                RequestOut {
                    name: name.clone(),
                    requests: (r.success_count + r.fail_count) as u64,
                    failed: r.fail_count as u64,
                    p50_ms: ms(0.50),
                    p95_ms: ms(0.95),
                    p99_ms: ms(0.99),
                    max_ms: r.raw_data.maximum_time_us as f64 / 1_000.0,
                }
            })
            .collect();
        by_request.sort_by(|a, b| a.name.cmp(&b.name));
        let requests: u64 = by_request.iter().map(|r| r.requests).sum();
        let failed: u64 = by_request.iter().map(|r| r.failed).sum();

        let by_scenario: Vec<ScenarioOut> = metrics
            .scenarios
            .iter()
            .map(|s| ScenarioOut {
                name: s.name.to_string(),
                users: s.users.len(),
                iterations: s.run_times.counter,
            })
            .collect();

        // Goose judges the rules; a rule it did not report is a failure, not a pass.
        let thresholds: Vec<RuleOut> = rules
            .iter()
            .map(|rule| {
                match metrics
                    .thresholds
                    .iter()
                    .find(|result| result.rule == *rule)
                {
                    Some(result) => RuleOut {
                        rule: rule.clone(),
                        observed: result.observed.clone(),
                        passed: result.passed,
                    },
                    None => RuleOut {
                        rule: rule.clone(),
                        observed: "not judged".into(),
                        passed: false,
                    },
                }
            })
            .collect();

        let mut problems = Vec::new();
        if requests == 0 {
            problems.push("no request was made".to_string());
        }
        for (name, _) in args.weights.active() {
            match by_scenario.iter().find(|s| s.name == name) {
                Some(s) if s.iterations > 0 => {}
                _ => problems.push(format!(
                    "scenario {name} never completed an iteration (every weighted scenario needs a user: at least {} users)",
                    args.weights.active().len()
                )),
            }
        }
        let passed = problems.is_empty() && thresholds.iter().all(|t| t.passed);
        let Weights {
            browse,
            signup,
            health,
        } = args.weights;
        Summary {
            target: target.to_string(),
            started_service,
            users: args.users,
            ramp_up_s: args.ramp_up,
            duration_s: args.duration,
            think_time_ms: [args.think_time.0.as_millis(), args.think_time.1.as_millis()],
            weights: WeightsOut {
                browse,
                signup,
                health,
            },
            requests,
            failed,
            error_rate_percent: if requests == 0 {
                0.0
            } else {
                failed as f64 * 100.0 / requests as f64
            },
            by_request,
            by_scenario,
            thresholds,
            problems,
            passed,
        }
    }

    pub fn write(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| format!("summary: {e}"))?;
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn print(&self) {
        println!(
            "\nloadtest: {} requests, {} failed ({:.2} %) against {}",
            self.requests, self.failed, self.error_rate_percent, self.target
        );
        for rule in &self.thresholds {
            let verdict = if rule.passed { "pass" } else { "FAIL" };
            println!("  {verdict}  {} (observed {})", rule.rule, rule.observed);
        }
        for problem in &self.problems {
            println!("  FAIL  {problem}");
        }
        println!(
            "loadtest: {}",
            if self.passed { "passed" } else { "FAILED" }
        );
    }
}
