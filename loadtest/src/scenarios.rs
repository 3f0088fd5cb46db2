//! The users a load test starts: who browses, who signs up, who checks health, and what each
//! checks of the answers. A response with the right status but the wrong shape is a failure too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use goose::goose::GooseResponse;
use goose::metrics::GooseRequestMetric;
use goose::prelude::*;
use serde_json::Value;

/// Relative weights of the three scenarios; goose assigns users to scenarios in this proportion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Weights {
    pub browse: usize,
    pub signup: usize,
    pub health: usize,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            browse: 3,
            signup: 1,
            health: 1,
        }
    }
}

impl std::str::FromStr for Weights {
    type Err = String;

    /// `BROWSE:SIGNUP:HEALTH`, such as `3:1:1`; 0 leaves a scenario out.
    fn from_str(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split(':').collect();
        let [browse, signup, health] = parts.as_slice() else {
            return Err(format!(
                "expected BROWSE:SIGNUP:HEALTH such as 3:1:1, got {text:?}"
            ));
        };
        let number = |name: &str, raw: &str| {
            raw.trim()
                .parse::<usize>()
                .ok()
                .filter(|w| *w <= 1_000)
                .ok_or_else(|| format!("{name} weight: expected 0 to 1000, got {raw:?}"))
        };
        let weights = Weights {
            browse: number("browse", browse)?,
            signup: number("signup", signup)?,
            health: number("health", health)?,
        };
        if weights.total() == 0 {
            return Err("at least one weight must be above 0".into());
        }
        Ok(weights)
    }
}

impl Weights {
    pub fn total(&self) -> usize {
        self.browse + self.signup + self.health
    }

    /// Scenarios with a weight above 0, as (name, weight).
    pub fn active(&self) -> Vec<(&'static str, usize)> {
        [
            (BROWSE, self.browse),
            (SIGNUP, self.signup),
            (HEALTH, self.health),
        ]
        .into_iter()
        .filter(|(_, weight)| *weight > 0)
        .collect()
    }
}

pub const BROWSE: &str = "browse";
pub const SIGNUP: &str = "signup";
pub const HEALTH: &str = "health";

/// What every transaction needs to know about the run.
pub struct Plan {
    pub page_size: u32,
    /// Bearer token for writes; required when sign-up runs.
    pub token: Option<String>,
    /// Makes sign-up emails unique across runs against the same database.
    pub run_id: String,
    pub signups: AtomicU64,
}

/// The three scenarios with their weights and think time (wait between transactions).
pub fn build(
    plan: Arc<Plan>,
    weights: Weights,
    think: (Duration, Duration),
) -> Result<Vec<Scenario>, GooseError> {
    let mut scenarios = Vec::new();
    for (name, weight) in weights.active() {
        let scenario = Scenario::new(name)
            .set_weight(weight)?
            .set_wait_time(think.0, think.1)?;
        let scenario = match name {
            BROWSE => scenario
                .register_transaction(
                    transaction(plan.clone(), |user, plan| Box::pin(list_users(user, plan)))
                        .set_name("list users"),
                )
                .register_transaction(
                    transaction(plan.clone(), |user, _| Box::pin(get_one_user(user)))
                        .set_name("get one user"),
                ),
            SIGNUP => scenario.register_transaction(
                transaction(plan.clone(), |user, plan| Box::pin(sign_up(user, plan)))
                    .set_name("sign up"),
            ),
            _ => scenario.register_transaction(
                transaction(plan.clone(), |user, _| Box::pin(health(user))).set_name("health"),
            ),
        };
        scenarios.push(scenario);
    }
    Ok(scenarios)
}

type Step = for<'r> fn(
    &'r mut GooseUser,
    Arc<Plan>,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = TransactionResult> + Send + 'r>,
>;

fn transaction(plan: Arc<Plan>, step: Step) -> Transaction {
    let function: TransactionFunction = Arc::new(move |user| step(user, plan.clone()));
    Transaction::new(function)
}

/// Ids seen while browsing, so "get one user" asks for users that exist.
#[derive(Clone, Default)]
struct SeenIds(Vec<i64>);

async fn list_users(user: &mut GooseUser, plan: Arc<Plan>) -> TransactionResult {
    let path = format!("/api/users?limit={}", plan.page_size);
    let goose = user.get_named(&path, "/api/users").await?;
    let (mut request, Some(page)) = json_body(user, goose).await? else {
        return Ok(());
    };
    let Some(ids) = page_ids(&page, plan.page_size) else {
        return fail(user, &mut request, "list: not a page of users", &page);
    };
    let next = page.get("next_cursor").and_then(Value::as_i64);
    user.set_session_data(SeenIds(ids));

    // The second page through the cursor, as a client paging through the list would.
    if let Some(cursor) = next {
        let path = format!("/api/users?limit={}&cursor={cursor}", plan.page_size);
        let goose = user.get_named(&path, "/api/users?cursor").await?;
        let (mut request, Some(page)) = json_body(user, goose).await? else {
            return Ok(());
        };
        match page_ids(&page, plan.page_size) {
            Some(ids) if ids.iter().all(|id| *id > cursor) => {}
            _ => {
                return fail(
                    user,
                    &mut request,
                    "list: page after cursor is wrong",
                    &page,
                )
            }
        }
    }
    Ok(())
}

async fn get_one_user(user: &mut GooseUser) -> TransactionResult {
    // Before the first listing, or on an empty database, there is no id to ask for.
    let id = match user.get_session_data::<SeenIds>() {
        Some(seen) if !seen.0.is_empty() => seen.0[user.get_iterations() % seen.0.len()],
        _ => return Ok(()),
    };
    let goose = user
        .get_named(&format!("/api/users/{id}"), "/api/users/{id}")
        .await?;
    let (mut request, Some(body)) = json_body(user, goose).await? else {
        return Ok(());
    };
    if body.get("id").and_then(Value::as_i64) != Some(id) {
        return fail(user, &mut request, "get: wrong user returned", &body);
    }
    Ok(())
}

async fn sign_up(user: &mut GooseUser, plan: Arc<Plan>) -> TransactionResult {
    let n = plan.signups.fetch_add(1, Ordering::Relaxed);
    let email = format!("loadtest-{}-{n}@example.com", plan.run_id);
    let body = serde_json::json!({ "name": format!("Load Test {n}"), "email": email });
    let mut builder = user
        .get_request_builder(&GooseMethod::Post, "/api/users")?
        .json(&body);
    if let Some(token) = &plan.token {
        builder = builder.bearer_auth(token);
    }
    let request = GooseRequest::builder()
        .method(GooseMethod::Post)
        .path("/api/users")
        .name("/api/users")
        .expect_status_code(201)
        .set_request_builder(builder)
        .build();
    let goose = user.request(request).await?;
    let (mut request, Some(created)) = json_body(user, goose).await? else {
        return Ok(());
    };
    let stored = created.get("email").and_then(Value::as_str);
    if created.get("id").and_then(Value::as_i64).is_none() || stored != Some(email.as_str()) {
        return fail(
            user,
            &mut request,
            "sign-up: created user does not match",
            &created,
        );
    }
    Ok(())
}

async fn health(user: &mut GooseUser) -> TransactionResult {
    let goose = user.get_named("/health", "/health").await?;
    let (mut request, Some(body)) = json_body(user, goose).await? else {
        return Ok(());
    };
    if body.get("status").and_then(Value::as_str) != Some("ok") {
        return fail(user, &mut request, "health: status is not ok", &body);
    }
    Ok(())
}

/// The JSON body of a successful response; `None` when goose already counted the request as
/// failed (status, connection), and a failure of its own when the body cannot be read or is not
/// JSON.
async fn json_body(
    user: &mut GooseUser,
    goose: GooseResponse,
) -> Result<(GooseRequestMetric, Option<Value>), Box<TransactionError>> {
    let GooseResponse {
        mut request,
        response,
    } = goose;
    let response = match response {
        Ok(response) if request.success => response,
        _ => return Ok((request, None)),
    };
    let text = match response.text().await {
        Ok(text) => text,
        Err(err) => {
            let tag = format!("body could not be read: {err}");
            user.set_failure(&tag, &mut request, None, None)?;
            return Ok((request, None));
        }
    };
    match serde_json::from_str(&text) {
        Ok(value) => Ok((request, Some(value))),
        Err(err) => {
            let tag = format!("body is not JSON: {err}");
            user.set_failure(&tag, &mut request, None, Some(&text))?;
            Ok((request, None))
        }
    }
}

fn fail(
    user: &mut GooseUser,
    request: &mut GooseRequestMetric,
    tag: &str,
    body: &Value,
) -> TransactionResult {
    let text: String = body.to_string().chars().take(500).collect();
    user.set_failure(tag, request, None, Some(&text))
}

/// The ids of a page, when `value` is a page of at most `limit` users in ascending id order.
fn page_ids(value: &Value, limit: u32) -> Option<Vec<i64>> {
    let items = value.get("items")?.as_array()?;
    if items.len() > limit as usize || value.get("limit")?.as_u64()? != u64::from(limit) {
        return None;
    }
    let ids: Vec<i64> = items
        .iter()
        .map(|item| item.get("id").and_then(Value::as_i64))
        .collect::<Option<_>>()?;
    ids.windows(2).all(|w| w[0] < w[1]).then_some(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_parse_and_refuse_nonsense() {
        assert_eq!("3:1:1".parse::<Weights>(), Ok(Weights::default()));
        assert_eq!(
            "1:0:0".parse::<Weights>().map(|w| w.active()),
            Ok(vec![(BROWSE, 1)])
        );
        for bad in ["", "3:1", "3:1:1:1", "a:1:1", "-1:1:1", "0:0:0", "1:1:5000"] {
            assert!(bad.parse::<Weights>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn pages_must_be_bounded_and_ordered() {
        let page = |ids: &[i64], limit: u32| {
            serde_json::json!({
                "items": ids.iter().map(|id| serde_json::json!({"id": id})).collect::<Vec<_>>(),
                "limit": limit,
            })
        };
        assert_eq!(page_ids(&page(&[1, 2, 3], 20), 20), Some(vec![1, 2, 3]));
        assert_eq!(page_ids(&page(&[], 20), 20), Some(vec![]));
        assert_eq!(page_ids(&page(&[2, 1], 20), 20), None, "out of order");
        assert_eq!(page_ids(&page(&[1, 2, 3], 2), 2), None, "over the limit");
        assert_eq!(page_ids(&page(&[1], 10), 20), None, "limit not echoed");
        assert_eq!(page_ids(&serde_json::json!({"items": "x"}), 20), None);
        assert_eq!(page_ids(&serde_json::json!([1, 2]), 20), None);
    }
}
