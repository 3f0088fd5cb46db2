//! The benchmark baseline: a bare actix-web handler with no middleware, logging or metrics, on the
//! same runtime settings as the service. `bench/run.py` compares the instrumented `/health` to it.

use actix_web::{web, App, HttpResponse, HttpServer};

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8081);
    let workers: usize = std::env::var("WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(2);
    HttpServer::new(|| App::new().route("/health", web::get().to(health)))
        .workers(workers)
        .bind(("127.0.0.1", port))?
        .run()
        .await
}
