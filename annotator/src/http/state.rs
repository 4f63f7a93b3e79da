//! What every handler can reach: the engine and its read side, authentication, sessions,
//! images, the network's settings and the rate limits.

use crate::catalog::Catalogs;
use std::path::PathBuf;
use std::sync::Arc;

use crate::accounts::Accounts;
use crate::auth::Auth;
use crate::engine::Engine;
use crate::images::ImageStore;
use crate::limits::{ApiLimits, RateLimiter};
use crate::origin::Network;
use crate::reports::Reports;
use crate::sessions::Sessions;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub engine: Engine,
    /// The read side: progress, dashboards, worker tables, the review queue.
    pub reports: Reports,
    pub auth: Auth,
    pub sessions: Sessions,
    pub images: ImageStore,
    /// The projects' Neuron Catalogs, built from the database on demand.
    pub catalogs: Arc<Catalogs>,
    pub data_dir: PathBuf,
    pub net: Arc<Network>,
    pub limiter: Arc<RateLimiter>,
    pub limits: ApiLimits,
    /// `/readyz` fails when the data dir's file system has less free space than this.
    pub min_free_bytes: u64,
}

/// The default of `--min-free-disk-mb`.
pub const DEFAULT_MIN_FREE_MB: u64 = 100;

impl AppState {
    /// The state over a database, with no public URL, no trusted proxy and the default limits.
    pub fn new(engine: Engine, auth: Auth, images: ImageStore, data_dir: PathBuf) -> Self {
        AppState {
            sessions: Sessions::new(engine.db().clone()),
            reports: Reports::new(engine.db().clone()),
            catalogs: Arc::new(Catalogs::new(
                engine.db().clone(),
                images.clone(),
                &data_dir,
            )),
            engine,
            auth,
            images,
            data_dir,
            net: Arc::new(Network::default()),
            limiter: Arc::new(RateLimiter::default()),
            limits: ApiLimits::default(),
            min_free_bytes: DEFAULT_MIN_FREE_MB << 20,
        }
    }

    /// Passwords and one-time codes, over the same database.
    pub fn accounts(&self) -> Accounts {
        Accounts::new(self.engine.db().clone())
    }

    /// Qualification tests, over the same database.
    pub fn qualifications(&self) -> crate::qualification::Qualifications {
        crate::qualification::Qualifications::new(self.engine.db().clone())
    }

    pub fn with_network(mut self, net: Network) -> Self {
        self.net = Arc::new(net);
        self
    }

    pub fn with_limits(mut self, limits: ApiLimits) -> Self {
        self.limits = limits;
        self
    }
}
