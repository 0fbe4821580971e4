//! Bearer tokens: created with a scope and a name, shown once, stored as
//! their sha256 only (a copy of the database gives nobody a token), and
//! checked against an in-memory map so a request pays one hash and one
//! lookup.
//!
//! A token is `cxt_` followed by 43 base64url characters (256 random bits),
//! so a leaked one is easy to recognise in logs and secret scanners.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use base64::Engine;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::{Principal, Scope};
use crate::storage::{Storage, StorageError, db_err};

/// Token id → JSON-encoded [`TokenRecord`].
const TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("auth_tokens");

/// The admin token written at first start, inside the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

const PREFIX: &str = "cxt_";
/// Most tokens kept; each is a few hundred bytes of database and memory.
pub const MAX_TOKENS: usize = 1000;
const MAX_NAME_LEN: usize = 64;

/// What is stored about a token: never the token itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub scope: Scope,
    /// sha256 of the token text, hex.
    pub sha256: String,
    pub created_at: String,
}

#[derive(Debug, Error)]
pub enum TokenError {
    #[error("invalid token name `{name}`: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("a token named `{0}` already exists; revoke it first or choose another name")]
    NameTaken(String),
    #[error("there are already {MAX_TOKENS} tokens; revoke unused ones first")]
    TooMany,
    #[error("no token with id or name `{0}`; `caxton tokens list` shows them")]
    NotFound(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot write the admin token file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
}

type Digest32 = [u8; 32];

pub struct TokenStore {
    storage: Arc<Storage>,
    /// sha256 of each live token → who it is.
    live: RwLock<HashMap<Digest32, Principal>>,
}

fn digest(secret: &str) -> Digest32 {
    Sha256::digest(secret.as_bytes()).into()
}

fn new_secret() -> Result<String, TokenError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| TokenError::File {
        path: PathBuf::from("<system random source>"),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

fn check_name(name: &str) -> Result<(), TokenError> {
    let reason = if name.is_empty() {
        Some("it is empty".to_string())
    } else if name.len() > MAX_NAME_LEN {
        Some(format!("names are at most {MAX_NAME_LEN} characters"))
    } else {
        name.chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
            .map(|c| format!("`{c}` is not allowed; use letters, digits, `-`, `_` and `.`"))
            .or_else(|| crate::messaging::names::reserved_reason(name))
    };
    match reason {
        Some(reason) => Err(TokenError::InvalidName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// The token's principal. Its name is the sender its messages carry, and
/// agents remember conversations by it; a token stored under a reserved
/// name (made before such names were refused) sends as `token:<id>`, which
/// no token, agent or operator can be called, so it never reads as the
/// operator.
fn principal(record: &TokenRecord) -> Principal {
    let name = if crate::messaging::names::reserved_sender(&record.name).is_some() {
        format!("token:{}", record.id)
    } else {
        record.name.clone()
    };
    Principal {
        name,
        token_id: Some(record.id.clone()),
        scope: record.scope,
    }
}

fn read_live(
    map: &RwLock<HashMap<Digest32, Principal>>,
) -> std::sync::RwLockReadGuard<'_, HashMap<Digest32, Principal>> {
    map.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl TokenStore {
    /// Opens the token table (creating it) and loads the live tokens.
    pub fn open(storage: Arc<Storage>) -> Result<TokenStore, TokenError> {
        storage.write(|txn| {
            txn.open_table(TOKENS).map_err(db_err)?;
            Ok(())
        })?;
        let store = TokenStore {
            storage,
            live: RwLock::new(HashMap::new()),
        };
        let mut live = HashMap::new();
        for record in store.list()? {
            if crate::messaging::names::reserved_sender(&record.name).is_some() {
                tracing::warn!(
                    token = ?record.name,
                    id = %record.id,
                    "this token has a reserved name; it sends as `token:<id>` instead (revoke it and create one with another name)"
                );
            }
            match hex::decode(&record.sha256)
                .ok()
                .and_then(|b| Digest32::try_from(b).ok())
            {
                Some(hash) => {
                    live.insert(hash, principal(&record));
                }
                None => {
                    tracing::warn!(token = %record.name, "stored token hash is unreadable; token ignored")
                }
            }
        }
        *store.live.write().unwrap_or_else(|p| p.into_inner()) = live;
        Ok(store)
    }

    /// Who `secret` belongs to, if it is a live token.
    pub fn verify(&self, secret: &str) -> Option<Principal> {
        if !secret.starts_with(PREFIX) || secret.len() > 128 {
            return None;
        }
        read_live(&self.live).get(&digest(secret)).cloned()
    }

    /// Every live token, oldest first.
    pub fn list(&self) -> Result<Vec<TokenRecord>, TokenError> {
        let txn = self.storage.database().begin_read().map_err(db_err)?;
        let table = txn.open_table(TOKENS).map_err(db_err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(db_err)? {
            let (key, value) = entry.map_err(db_err)?;
            match serde_json::from_slice::<TokenRecord>(value.value()) {
                Ok(record) => out.push(record),
                Err(e) => tracing::warn!(id = key.value(), "unreadable token record skipped: {e}"),
            }
        }
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Creates a token; answers its record and the token text, which is
    /// shown this once and never stored.
    pub fn create(&self, name: &str, scope: Scope) -> Result<(TokenRecord, String), TokenError> {
        check_name(name)?;
        let existing = self.list()?;
        if existing.len() >= MAX_TOKENS {
            return Err(TokenError::TooMany);
        }
        if existing.iter().any(|t| t.name == name) {
            return Err(TokenError::NameTaken(name.to_string()));
        }
        let secret = new_secret()?;
        let hash = digest(&secret);
        let record = TokenRecord {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_string(),
            scope,
            sha256: hex::encode(hash),
            created_at: crate::clock::now_rfc3339(),
        };
        let json = serde_json::to_vec(&record).map_err(|source| StorageError::CorruptRecord {
            what: format!("token {}", record.name),
            source,
        })?;
        self.storage.write(|txn| {
            let mut table = txn.open_table(TOKENS).map_err(db_err)?;
            table
                .insert(record.id.as_str(), json.as_slice())
                .map_err(db_err)?;
            Ok(())
        })?;
        self.live
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(hash, principal(&record));
        tracing::info!(token = %record.name, scope = scope.as_str(), "token created");
        Ok((record, secret))
    }

    /// Revokes the token with this id or name; it is refused from the
    /// next request on.
    pub fn revoke(&self, id_or_name: &str) -> Result<TokenRecord, TokenError> {
        let record = self
            .list()?
            .into_iter()
            .find(|t| t.id == id_or_name || t.name == id_or_name)
            .ok_or_else(|| TokenError::NotFound(id_or_name.to_string()))?;
        self.storage.write(|txn| {
            let mut table = txn.open_table(TOKENS).map_err(db_err)?;
            table.remove(record.id.as_str()).map_err(db_err)?;
            Ok(())
        })?;
        self.live
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, p| p.token_id.as_deref() != Some(record.id.as_str()));
        tracing::info!(token = %record.name, "token revoked");
        Ok(record)
    }

    /// At the first start (no token exists and no admin token file), makes
    /// an admin token and writes it to `data_dir/admin.token`, readable by
    /// the owner only. Answers the file's path whenever it exists.
    pub fn ensure_admin_file(&self, data_dir: &Path) -> Result<Option<PathBuf>, TokenError> {
        let path = data_dir.join(ADMIN_TOKEN_FILE);
        if path.exists() {
            return Ok(Some(path));
        }
        if !self.list()?.is_empty() {
            return Ok(None);
        }
        let (_, secret) = self.create("admin", Scope::Admin)?;
        write_private(&path, format!("{secret}\n").as_bytes()).map_err(|source| {
            TokenError::File {
                path: path.clone(),
                source,
            }
        })?;
        Ok(Some(path))
    }
}

/// Writes a file only its owner can read (0600 from creation, so it is
/// never briefly readable by others).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = crate::storage::open_private(path, true)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Where a server records, at every start, the address it listens on:
/// beside the admin token, so the CLI knows which server that token is for.
pub const SERVER_ADDRESS_FILE: &str = "server.addr";

/// Records `url` (`scheme://ip:port`, the address the server listens on)
/// in `data_dir`, replacing what an earlier start recorded.
pub fn record_server_address(data_dir: &Path, url: &str) -> std::io::Result<()> {
    let path = data_dir.join(SERVER_ADDRESS_FILE);
    // Removed, then created anew: never written through a planted link.
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    write_private(&path, format!("{url}\n").as_bytes())
}

/// The token the CLI sends, and why the admin token file was passed over
/// when it was.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Discovery {
    pub token: Option<String>,
    /// Set when the data directory holds an admin token that is not sent,
    /// because `--server` is not the server it belongs to.
    pub withheld: Option<String>,
}

/// The token the CLI should send to `server`: `explicit` (`--token` /
/// `CAXTON_TOKEN`) always; else the admin token file in `data_dir`, but
/// only to the server that data directory belongs to (the address it
/// recorded in [`SERVER_ADDRESS_FILE`]). The file's token is the whole
/// server's key: a `--server` pointing anywhere else never receives it.
pub fn discover(explicit: Option<&str>, data_dir: &Path, server: &str) -> Discovery {
    if let Some(token) = explicit.map(str::trim).filter(|t| !t.is_empty()) {
        return Discovery {
            token: Some(token.to_string()),
            withheld: None,
        };
    }
    let token_file = data_dir.join(ADMIN_TOKEN_FILE);
    let Some(token) = std::fs::read_to_string(&token_file)
        .ok()
        .map(|text| text.trim().to_string())
        .filter(|token| !token.is_empty())
    else {
        return Discovery::default();
    };
    let recorded = std::fs::read_to_string(data_dir.join(SERVER_ADDRESS_FILE)).unwrap_or_default();
    if recorded.lines().any(|address| same_server(address, server)) {
        return Discovery {
            token: Some(token),
            withheld: None,
        };
    }
    let owner = match recorded.lines().next().map(str::trim) {
        Some(address) if !address.is_empty() => format!("the server at {address}"),
        _ => "a server that has not recorded its address (start it again to record it)".into(),
    };
    Discovery {
        token: None,
        withheld: Some(format!(
            "not sending the admin token in {} to {server}: it belongs to {owner}; pass --token (or CAXTON_TOKEN) to send one",
            token_file.display()
        )),
    }
}

/// Whether `target` (a `--server` URL) reaches the server that recorded
/// `recorded` (`scheme://ip:port`): same scheme and port, and the same
/// address, or a loopback one when the server listens on every interface.
/// A name never matches (what it resolves to is not known here), except
/// `localhost` for a server on every interface of both families.
fn same_server(recorded: &str, target: &str) -> bool {
    use std::net::IpAddr;
    let (Ok(recorded), Ok(target)) = (
        reqwest::Url::parse(recorded.trim()),
        reqwest::Url::parse(target.trim()),
    ) else {
        return false;
    };
    if recorded.scheme() != target.scheme()
        || recorded.port_or_known_default() != target.port_or_known_default()
    {
        return false;
    }
    // An IPv6 host comes in brackets.
    let host = |url: &reqwest::Url| {
        url.host_str()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string())
    };
    let Some(Ok(listening)) = host(&recorded).map(|h| h.parse::<IpAddr>()) else {
        return false;
    };
    // A wildcard bind holds the port on loopback too (an IPv6 one on both
    // families), so no one else can listen there. `localhost` may resolve
    // to either family, and only a bind on both is sure to be ours.
    let both_families = listening == IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED);
    match host(&target) {
        Some(name) => match name.parse::<IpAddr>() {
            Ok(ip) => {
                ip == listening
                    || (listening.is_unspecified()
                        && ip.is_loopback()
                        && (both_families || ip.is_ipv4() == listening.is_ipv4()))
            }
            Err(_) => both_families && name.eq_ignore_ascii_case("localhost"),
        },
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_until_revoked_and_are_stored_hashed() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let storage = Arc::new(Storage::open(dir.path())?);
        let store = TokenStore::open(storage.clone())?;
        let (record, secret) = store.create("ci", Scope::Read)?;
        assert!(secret.starts_with(PREFIX));
        assert_ne!(record.sha256, secret);
        assert_eq!(store.verify(&secret).map(|p| p.scope), Some(Scope::Read));
        assert!(store.verify("cxt_wrong").is_none());
        assert!(matches!(
            store.create("ci", Scope::Admin),
            Err(TokenError::NameTaken(_))
        ));
        // A reopened store knows the token; a revoked one is gone for good.
        let reopened = TokenStore::open(storage)?;
        assert_eq!(reopened.verify(&secret).map(|p| p.name), Some("ci".into()));
        reopened.revoke("ci")?;
        assert!(reopened.verify(&secret).is_none());
        Ok(())
    }

    #[test]
    fn the_first_start_writes_a_private_admin_token() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = TokenStore::open(Arc::new(Storage::open(dir.path())?))?;
        let path = store.ensure_admin_file(dir.path())?.expect("written");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path)?.permissions().mode() & 0o777,
                0o600
            );
        }
        record_server_address(dir.path(), "http://127.0.0.1:8080")?;
        let secret = discover(None, dir.path(), "http://127.0.0.1:8080")
            .token
            .expect("found");
        assert_eq!(store.verify(&secret).map(|p| p.scope), Some(Scope::Admin));
        // Idempotent: the second start keeps the same token.
        store.ensure_admin_file(dir.path())?;
        assert_eq!(
            discover(None, dir.path(), "http://127.0.0.1:8080/").token,
            Some(secret)
        );
        Ok(())
    }

    #[test]
    fn the_admin_token_goes_only_to_the_server_it_belongs_to() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = TokenStore::open(Arc::new(Storage::open(dir.path())?))?;
        store.ensure_admin_file(dir.path())?;
        let to = |server: &str| discover(None, dir.path(), server);
        // No address recorded (a server from before, or none at all).
        let found = to("http://127.0.0.1:8080");
        assert_eq!(found.token, None);
        assert!(
            found
                .withheld
                .is_some_and(|w| w.contains("has not recorded"))
        );

        record_server_address(dir.path(), "http://0.0.0.0:8080")?;
        for mine in [
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/api/v1",
            "http://0.0.0.0:8080",
        ] {
            assert!(to(mine).token.is_some(), "{mine}");
        }
        for other in [
            // Another process may listen on the other family's loopback.
            "http://[::1]:8080",
            "http://localhost:8080",
            "http://127.0.0.1:8081",
            "https://127.0.0.1:8080",
            "http://evil.example:8080",
            "http://10.1.2.3:8080",
            "http://127.0.0.1.evil.example:8080",
            "not a url",
        ] {
            let found = to(other);
            assert_eq!(found.token, None, "{other}");
            assert!(
                found
                    .withheld
                    .is_some_and(|w| w.contains("http://0.0.0.0:8080") && w.contains("--token")),
                "{other}"
            );
        }
        // A loopback bind is not another loopback address's.
        record_server_address(dir.path(), "http://127.0.0.1:8080")?;
        assert!(to("http://[::1]:8080").token.is_none());
        assert!(to("http://127.0.0.2:8080").token.is_none());
        // A bind on every interface of both families is reached by any name
        // of this machine's loopback.
        record_server_address(dir.path(), "http://[::]:8080")?;
        for mine in [
            "http://localhost:8080",
            "http://[::1]:8080",
            "http://127.0.0.1:8080",
        ] {
            assert!(to(mine).token.is_some(), "{mine}");
        }
        // An explicit token goes wherever it is told.
        assert_eq!(
            discover(Some("cxt_x"), dir.path(), "http://evil.example").token,
            Some("cxt_x".into())
        );
        Ok(())
    }

    #[test]
    fn reserved_names_are_refused_and_old_ones_never_pass_for_the_operator() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let storage = Arc::new(Storage::open(dir.path())?);
        let store = TokenStore::open(storage.clone())?;
        for name in ["user", "User", "operator", "system", "metrics"] {
            assert!(
                matches!(
                    store.create(name, Scope::Message),
                    Err(TokenError::InvalidName { .. })
                ),
                "{name}"
            );
        }
        // A token stored under `user` before the rule sends as `token:<id>`.
        let record = TokenRecord {
            id: "old-id".into(),
            name: "user".into(),
            scope: Scope::Message,
            sha256: hex::encode(digest("cxt_old")),
            created_at: crate::clock::now_rfc3339(),
        };
        let json = serde_json::to_vec(&record)?;
        storage.write(|txn| {
            let mut table = txn.open_table(TOKENS).map_err(db_err)?;
            table.insert("old-id", json.as_slice()).map_err(db_err)?;
            Ok(())
        })?;
        let reopened = TokenStore::open(storage)?;
        assert_eq!(
            reopened.verify("cxt_old").map(|p| p.name),
            Some("token:old-id".into())
        );
        Ok(())
    }
}
