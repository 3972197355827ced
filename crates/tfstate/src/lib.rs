//! sandpit as Terraform's http state backend: one state per [`StateKey`] (a project's
//! `[terraform.<name>]` in an environment's base or a biome), kept as files by [`StateStore`]
//! (versions, lock, credential), served by [`serve`] with Terraform's protocol, hosted by the
//! daemon through [`host`] on a kept loopback port that [`endpoint`] reads back.

mod hosting;
mod key;
mod lock;
mod server;
mod store;

pub use hosting::{endpoint, home_store, host, states_root, Hosted, ENDPOINT_FILE};
pub use key::{KeyError, StateKey, BASE_SEGMENT};
pub use lock::{LockDecision, LockInfo, UnlockDecision, WriteDecision};
pub use server::{basic_credentials, router, serve, MAX_STATE_BYTES};
pub use store::{state_header, StateStore, StateVersion, StoreError, DEFAULT_KEPT_VERSIONS};
