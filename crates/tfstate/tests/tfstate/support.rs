//! A backend on a loopback port over a store in a temporary directory, and requests to it.

use std::sync::Arc;

use sandpit_domain::Name;
use sandpit_tfstate::{LockInfo, StateKey, StateStore};

pub struct Backend {
    pub origin: String,
    pub store: Arc<StateStore>,
    pub dir: tempfile::TempDir,
}

impl Backend {
    /// A backend keeping `keep` versions, served on the current runtime.
    pub async fn start(keep: usize) -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(StateStore::new(dir.path().join("states"), keep));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(sandpit_tfstate::serve(
            listener,
            Arc::clone(&store),
            std::future::pending(),
        ));
        Backend { origin, store, dir }
    }

    /// A request with `key`'s own username and `password`.
    pub fn request(
        &self,
        method: &str,
        key: &StateKey,
        password: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let request = reqwest::Client::new().request(method, key.url(&self.origin));
        match password {
            Some(password) => request.basic_auth(key.path(), Some(password)),
            None => request,
        }
    }
}

pub fn key(biome: Option<&str>, component: &str) -> StateKey {
    StateKey {
        project: Name::parse("geo").unwrap(),
        environment: Name::parse("dev").unwrap(),
        biome: biome.map(|b| Name::parse(b).unwrap()),
        component: Name::parse(component).unwrap(),
    }
}

pub fn lock_info(id: &str, who: &str) -> LockInfo {
    LockInfo {
        id: id.to_owned(),
        operation: "OperationTypeApply".to_owned(),
        info: String::new(),
        who: who.to_owned(),
        version: "1.11.4".to_owned(),
        created: "2026-12-03T14:00:00.123456789Z".to_owned(),
        path: String::new(),
    }
}

pub fn state(serial: u64) -> String {
    format!(
        r#"{{"version":4,"terraform_version":"1.11.4","serial":{serial},"lineage":"line-1","outputs":{{}},"resources":[]}}"#
    )
}
