//! What compressing a response costs the service: each coding the service offers, through the
//! same encoder (actix-http's, at the levels it uses: gzip fast, brotli 3, zstd 3), on the bodies
//! the service sends: pages of users, the Prometheus exposition, the OpenAPI document. Prints a
//! tab-separated table (bench/compression.sh prints it with the HTTP figures):
//! body, bytes, coding, coded bytes, ratio, microseconds per response (median of the runs).
//!
//! cargo run --release -p devsecops-app --example compression-cost [-- ITERATIONS]

use std::time::{Duration, Instant};

use actix_http::encoding::Encoder;
use actix_web::body::to_bytes;
use actix_web::dev::ResponseHead;
use actix_web::http::header::ContentEncoding;
use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use devsecops_app::domain::{User, UserPage};
use devsecops_app::metrics::Metrics;
use devsecops_app::routes::OpenApiJson;

fn page(n: usize) -> Bytes {
    let at = time::OffsetDateTime::from_unix_timestamp(1_764_547_200)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let items = (1..=n as i64)
        .map(|id| User {
            id,
            name: format!("User Number {id}"),
            email: format!("user.number.{id}@example.com"),
            created_at: at + time::Duration::seconds(id),
            updated_at: at + time::Duration::seconds(2 * id),
        })
        .collect();
    let page = UserPage {
        items,
        limit: n as u32,
        next_cursor: Some(n as i64),
    };
    Bytes::from(serde_json::to_vec(&page).unwrap_or_default())
}

fn metrics_text() -> Bytes {
    let Ok(metrics) = Metrics::new("bench") else {
        return Bytes::new();
    };
    for endpoint in [
        "/health",
        "/ready",
        "/api/users",
        "/api/users/{id}",
        "unmatched",
    ] {
        for status in ["200", "404", "503"] {
            metrics.observe_request("GET", endpoint, status, 0.003);
        }
    }
    Bytes::from(metrics.encode().unwrap_or_default())
}

async fn encode(coding: ContentEncoding, body: Bytes) -> (usize, Duration) {
    let mut head = ResponseHead::new(StatusCode::OK);
    let started = Instant::now();
    let encoder = Encoder::response(coding, &mut head, body);
    let out = to_bytes(encoder).await.map(|b| b.len()).unwrap_or(0);
    (out, started.elapsed())
}

fn main() {
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let bodies = [
        ("page of 20 users", page(20)),
        ("page of 100 users", page(100)),
        ("/metrics", metrics_text()),
        ("/openapi.json", OpenApiJson::public().wait()),
    ];
    println!("body\tbytes\tcoding\tcoded_bytes\tratio\tmicroseconds");
    actix_web::rt::System::new().block_on(async move {
        for (name, body) in bodies {
            for coding in [
                ContentEncoding::Gzip,
                ContentEncoding::Brotli,
                ContentEncoding::Zstd,
            ] {
                let mut times = Vec::with_capacity(iterations);
                let mut coded = 0;
                for _ in 0..iterations {
                    let (len, took) = encode(coding, body.clone()).await;
                    coded = len;
                    times.push(took);
                }
                times.sort_unstable();
                let median = times[times.len() / 2];
                println!(
                    "{name}\t{}\t{}\t{coded}\t{:.1}\t{:.1}",
                    body.len(),
                    coding.as_str(),
                    body.len() as f64 / coded.max(1) as f64,
                    median.as_secs_f64() * 1e6
                );
            }
        }
    });
}
