//! API keys: minted as `af_<id>_<secret>` (a 256-bit random secret), stored as the SHA-256 of
//! the whole key, looked up by id and compared in constant time. [`KeyStore`] holds the keys of
//! the config and of the keys file, re-reading the file when it changes.

use agentflow_shared::ids::KeyId;
use agentflow_shared::security::{KeyRecord, KeysFile};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::sync::watch;

/// The prefix of every key.
const PREFIX: &str = "af_";

/// Why a keys file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// Reading or writing the file failed.
    #[error("keys file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not a keys file.
    #[error("keys file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// A freshly minted key: the key itself (shown once) and its record (stored).
pub struct MintedKey {
    /// `af_<id>_<secret>`.
    pub key: String,
    /// What is stored.
    pub record: KeyRecord,
}

/// 32 random bytes from the operating system.
pub fn random_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    bytes
}

/// Mints a key with a fresh id and a 256-bit secret; `record` gets its id and hash.
pub fn mint(mut record: KeyRecord) -> MintedKey {
    let id_bytes = random_bytes();
    let id: String = id_bytes[..5].iter().map(|b| format!("{b:02x}")).collect();
    let key = format!("{PREFIX}{id}_{}", URL_SAFE_NO_PAD.encode(random_bytes()));
    record.id = KeyId(id);
    record.sha256 = sha256_hex(&key);
    MintedKey { key, record }
}

/// SHA-256 of `text`, lowercase hex.
pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The id part of a key of the form `af_<id>_<secret>`.
fn key_id(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (!id.is_empty() && !secret.is_empty()).then_some(id)
}

/// Reads a keys file (a missing file has no keys).
pub fn read_file(path: &Path) -> Result<KeysFile, KeysError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(KeysFile::default());
        }
        Err(source) => {
            return Err(KeysError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let invalid = |message: String| KeysError::Invalid {
        path: path.to_owned(),
        message,
    };
    let file: KeysFile = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    for key in &file.keys {
        key.validate().map_err(invalid)?;
    }
    Ok(file)
}

/// Writes a keys file (owner-readable only), replacing it atomically.
pub fn write_file(path: &Path, file: &KeysFile) -> Result<(), KeysError> {
    let io = |source| KeysError::Io {
        path: path.to_owned(),
        source,
    };
    let text = toml::to_string_pretty(file).map_err(|e| KeysError::Invalid {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut out = options.open(&temporary).map_err(io)?;
    std::io::Write::write_all(&mut out, text.as_bytes()).map_err(io)?;
    out.sync_all().map_err(io)?;
    std::fs::rename(&temporary, path).map_err(io)
}

/// Reads the keys file at `path` (missing: empty), applies `change` and writes it back, all
/// under an exclusive lock on `<path>.lock`: two processes changing one file at once (two
/// operators minting) each see the other's change. Nothing is written when `change` fails.
pub fn update_file<R, E: From<KeysError>>(
    path: &Path,
    change: impl FnOnce(&mut KeysFile) -> Result<R, E>,
) -> Result<R, E> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let io = |source| KeysError::Io {
        path: lock_path.clone(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let lock = options.open(&lock_path).map_err(io)?;
    lock.lock().map_err(io)?;
    let mut file = read_file(path)?;
    let changed = change(&mut file)?;
    write_file(path, &file)?;
    Ok(changed)
}

/// The keys in force: the config's and the keys file's, revoked ones left out.
#[derive(Default)]
struct Keys {
    by_id: HashMap<KeyId, KeyRecord>,
}

impl Keys {
    fn new(config: &[KeyRecord], file: &KeysFile) -> Self {
        let by_id = config
            .iter()
            .chain(&file.keys)
            .filter(|k| k.revoked_at.is_none())
            .map(|k| (k.id.clone(), k.clone()))
            .collect();
        Self { by_id }
    }
}

/// The keys in force, shared by every request; the keys file is re-read when it changes.
#[derive(Clone)]
pub struct KeyStore {
    keys: Arc<RwLock<Arc<Keys>>>,
    changed: watch::Receiver<u64>,
}

impl KeyStore {
    /// The keys of `config` and of `file` (read now); with a file, a background task re-reads
    /// it every `reload` when its contents change. A file that turns invalid keeps
    /// the keys read before (and is logged).
    pub fn start(
        config: Vec<KeyRecord>,
        file: Option<PathBuf>,
        reload: Duration,
    ) -> Result<Self, KeysError> {
        let mut seen = file.as_deref().and_then(|path| std::fs::read(path).ok());
        let read = match &file {
            Some(path) => read_file(path)?,
            None => KeysFile::default(),
        };
        let keys = Arc::new(RwLock::new(Arc::new(Keys::new(&config, &read))));
        let (notify, changed) = watch::channel(0);
        if let Some(path) = file {
            let shared = keys.clone();
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(reload);
                loop {
                    ticks.tick().await;
                    if notify.is_closed() {
                        return;
                    }
                    // The contents, not the modification time: an edit within the file
                    // system's time resolution is not missed. A file gone (being replaced, a
                    // volume remounted) keeps the keys read before.
                    let Ok(now) = std::fs::read(&path) else {
                        continue;
                    };
                    if seen.as_ref() == Some(&now) {
                        continue;
                    }
                    seen = Some(now);
                    match read_file(&path) {
                        Ok(read) => {
                            let fresh = Arc::new(Keys::new(&config, &read));
                            tracing::info!(keys = fresh.by_id.len(), "keys file re-read");
                            *shared.write().unwrap_or_else(|e| e.into_inner()) = fresh;
                            notify.send_modify(|generation| *generation += 1);
                        }
                        Err(error) => {
                            tracing::warn!(%error, "keys file not re-read; the keys read before stay");
                        }
                    }
                }
            });
        }
        Ok(Self { keys, changed })
    }

    fn current(&self) -> Arc<Keys> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The record of `key` when it is a key in force (hash compared in constant time).
    pub fn verify(&self, key: &str) -> Option<KeyRecord> {
        let id = key_id(key)?;
        let keys = self.current();
        let record = keys.by_id.get(&KeyId(id.to_owned()))?;
        let hash = sha256_hex(key);
        bool::from(hash.as_bytes().ct_eq(record.sha256.as_bytes())).then(|| record.clone())
    }

    /// The record of key `id` when it is in force (for tokens and sessions it signed).
    pub fn in_force(&self, id: &KeyId) -> Option<KeyRecord> {
        self.current().by_id.get(id).cloned()
    }

    /// Resolves once key `id` is no longer in force (revoked or removed from the keys file).
    pub async fn revoked(&self, id: &KeyId) {
        let mut changed = self.changed.clone();
        loop {
            // Marked seen before the check: a change after it wakes the wait below.
            changed.borrow_and_update();
            if self.in_force(id).is_none() {
                return;
            }
            if changed.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentflow_shared::ids::TenantId;
    use agentflow_shared::security::Scope;

    fn record() -> KeyRecord {
        KeyRecord {
            id: KeyId(String::new()),
            identity: "alice".into(),
            tenant: "acme".parse::<TenantId>().unwrap(),
            scopes: vec![Scope::TasksRead],
            sha256: String::new(),
            created_at: None,
            revoked_at: None,
        }
    }

    #[tokio::test]
    async fn a_minted_key_verifies_and_a_changed_one_does_not() {
        let minted = mint(record());
        minted.record.validate().unwrap();
        assert!(minted.key.starts_with("af_"));
        assert!(!format!("{:?}", minted.record).contains(&minted.key));
        let store =
            KeyStore::start(vec![minted.record.clone()], None, Duration::from_secs(1)).unwrap();
        assert_eq!(store.verify(&minted.key).unwrap().identity, "alice");
        let mut forged = minted.key.clone();
        forged.pop();
        forged.push('x');
        assert!(store.verify(&forged).is_none());
        assert!(store.verify("af_unknown_secret").is_none());
        assert!(store.verify("Bearer nonsense").is_none());
    }

    #[tokio::test]
    async fn a_key_revoked_in_the_file_stops_verifying() {
        let dir = std::env::temp_dir().join(format!("agentflow-keys-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.toml");
        let minted = mint(record());
        let mut file = KeysFile {
            keys: vec![minted.record.clone()],
        };
        write_file(&path, &file).unwrap();
        let store =
            KeyStore::start(Vec::new(), Some(path.clone()), Duration::from_millis(10)).unwrap();
        assert!(store.verify(&minted.key).is_some());
        file.keys[0].revoked_at = Some(chrono::Utc::now());
        write_file(&path, &file).unwrap();
        tokio::time::timeout(Duration::from_secs(10), store.revoked(&minted.record.id))
            .await
            .expect("the revocation is seen");
        assert!(store.verify(&minted.key).is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
