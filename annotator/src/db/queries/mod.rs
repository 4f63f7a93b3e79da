//! Every query of the annotator, one module per entity, all re-exported here (callers write
//! `q::project_by_name`). Functions take a connection (inside a transaction opened by
//! [`super::Database`]) and know nothing of HTTP or of the engine's rules.

mod assignments;
mod credentials;
mod descriptions;
mod events;
mod external;
mod ledger;
mod model_descriptions;
mod projects;
mod qualifications;
mod sessions;
mod sets;
mod settings;
mod workers;

pub use assignments::*;
pub use credentials::*;
pub use descriptions::*;
pub use events::*;
pub use external::*;
pub use ledger::*;
pub use model_descriptions::*;
pub use projects::*;
pub use qualifications::*;
pub use sessions::*;
pub use sets::*;
pub use settings::*;
pub use workers::*;

pub type QueryResult<T> = Result<T, diesel::result::Error>;
