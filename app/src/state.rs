//! What every handler shares: settings, database, metrics, logger, lifecycle, rate limiter.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use governor::clock::DefaultClock;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use sha2::{Digest, Sha256};
use slog::Logger;

use crate::configuration::Settings;
use crate::db::Database;
use crate::metrics::Metrics;

pub type ClientRateLimiter = RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>;

pub struct AppState {
    pub settings: Settings,
    pub db: Database,
    pub metrics: Metrics,
    pub logger: Logger,
    pub lifecycle: Lifecycle,
    pub rate_limiter: Option<ClientRateLimiter>,
    /// SHA-256 of the API token: comparing digests in constant time hides both content and length.
    pub token_digest: [u8; 32],
}

impl AppState {
    pub fn new(settings: Settings, db: Database, metrics: Metrics, logger: Logger) -> Self {
        let rate_limiter = NonZeroU32::new(settings.rate_limit_per_second).map(|per_second| {
            let burst = NonZeroU32::new(settings.rate_limit_burst).unwrap_or(per_second);
            RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst))
        });
        let token_digest = digest(settings.api_token.expose());
        AppState {
            settings,
            db,
            metrics,
            logger,
            lifecycle: Lifecycle::default(),
            rate_limiter,
            token_digest,
        }
    }
}

pub fn digest(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

/// Process lifecycle as readiness sees it. Shared with the signal handler.
#[derive(Default, Clone)]
pub struct Lifecycle {
    shutting_down: Arc<AtomicBool>,
}

impl Lifecycle {
    pub fn begin_shutdown(&self) -> bool {
        !self.shutting_down.swap(true, Ordering::SeqCst)
    }
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}
