//! Backups: one `.tar.gz` with a consistent copy of the database, the admin
//! token, the agent definitions and the configuration, and a manifest with
//! the versions and a sha256 of every file ([`create`]); checked end to end
//! ([`verify`]) and put back ([`restore`]).
//!
//! Consistency: the database file is copied while a redb write transaction
//! is held, so no commit can land mid-copy; readers go on, writers wait for
//! the copy (about a second per few hundred MB). Every commit is durable
//! before it returns, so the file holds every acknowledged write. The vector
//! index is derived data and is rebuilt at the first start after a restore.

pub mod create;
pub mod restore;
pub mod verify;

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

pub use create::{Sources, create};
pub use restore::{RestoreTargets, Restored, restore};
pub use verify::{Verified, verify};

/// Archive format this build writes and reads.
pub const FORMAT: u32 = 1;
/// Name of the manifest inside the archive (its last entry).
pub const MANIFEST: &str = "manifest.json";
/// Where the database sits inside the archive.
pub const DATABASE_ENTRY: &str = "data/caxton.redb";

/// A cluster's registry and agent state in a backup (under `cluster/`)
/// and, after a restore, in [`CLUSTER_RESTORE_DIR`].
pub const CLUSTER_REGISTRY: &str = "registry.json";
/// Where a restore puts a backup's cluster files, in the data directory;
/// the node publishes them when it joins its cluster.
pub const CLUSTER_RESTORE_DIR: &str = "cluster-restore";

/// Whether `name` is a component file a backup holds under
/// `cluster/components/`: `<64 lowercase hex>.wasm`.
pub fn is_component_file(name: &str) -> bool {
    name.strip_suffix(".wasm").is_some_and(|sha| {
        sha.len() == 64
            && sha
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// How much reading a backup may expand to, so a small hostile archive
/// (gzip expands zeros about 1000:1) cannot fill the disk or the memory
/// before its checksums are ever compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// All the files of a backup together, unpacked. The database is
    /// nearly all of it; the default, 16 GiB, is several times the largest
    /// database a single caxton is expected to hold, and an operator with
    /// a larger one raises it (`--max-bytes`). A fixed cap rather than a
    /// multiple of the archive's size: a mostly-empty redb file compresses
    /// far better than any ratio that would still stop a bomb.
    pub max_bytes: u64,
    /// Entries in the archive: a backup holds the database, the token, the
    /// configuration and one file per agent definition.
    pub max_entries: usize,
}

impl Limits {
    /// Every entry other than the database (the admin token, agent
    /// definitions, `caxton.yaml`, the manifest) is text a person wrote or
    /// a listing of the others: 16 MiB is far beyond any real one.
    pub const MAX_SMALL_FILE: u64 = 16 * 1024 * 1024;
    /// A cluster's agent component (`cluster/components/…`): as large as
    /// a node accepts one.
    pub const MAX_COMPONENT_FILE: u64 = 256 * 1024 * 1024;
    /// A GNU long-name entry holds a path; no file system takes a longer one.
    pub const MAX_NAME: u64 = 4096;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 16 * 1024 * 1024 * 1024,
            max_entries: 10_000,
        }
    }
}

/// `backup:` in `caxton.yaml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupSettings {
    /// Where `caxton backup --embedded` writes when no `--output` is given,
    /// and where `restore --latest-backup` looks. Unset: `backups` next to
    /// the data directory.
    pub directory: Option<PathBuf>,
    /// Backups kept in that directory; older ones are deleted after a new
    /// one is written. 0 keeps all.
    pub retention: usize,
}

impl Default for BackupSettings {
    fn default() -> Self {
        BackupSettings {
            directory: None,
            retention: 7,
        }
    }
}

impl BackupSettings {
    /// The backup directory for a server whose data lives in `data_dir`.
    pub fn directory(&self, data_dir: &Path) -> PathBuf {
        self.directory.clone().unwrap_or_else(|| {
            data_dir
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .join("backups")
        })
    }
}

/// What a backup holds, written as its last entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub format: u32,
    pub caxton_version: String,
    pub created_at: String,
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    /// Path inside the archive: `data/…`, `agents/…`, `cluster/…` or
    /// `caxton.yaml`.
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Error)]
pub enum BackupError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("the database: {0}")]
    Database(String),
    #[error("{archive} is not a usable backup: {reason}")]
    Invalid { archive: PathBuf, reason: String },
    /// A step of putting the restored files in place failed; `undo` says
    /// whether everything already moved was put back.
    #[error("{what}: {source}; {undo}")]
    Swap {
        what: String,
        source: std::io::Error,
        undo: String,
    },
    #[error(
        "{0} is in use by a running caxton server; stop it first (`caxton shutdown`), or pass --force to replace the files under it (it keeps serving the old data until restarted)"
    )]
    InUse(PathBuf),
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Io { what, source }
}

/// Reads `reader` to its end, answering (bytes, sha256 hex).
pub(crate) fn hash_reader(mut reader: impl Read) -> std::io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hex::encode(hasher.finalize())))
}

/// Creates `dir` and any missing parents, each readable by its owner only
/// (a restore writes the admin token and the database under them), and
/// records in `created` the ones it made, outermost first, so a failed
/// restore can remove them again.
pub(crate) fn create_private_dirs(dir: &Path, created: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .filter(|a| !a.as_os_str().is_empty())
        .take_while(|a| std::fs::symlink_metadata(a).is_err())
        .collect();
    for path in missing.into_iter().rev() {
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        match builder.create(path) {
            Ok(()) => created.push(path.to_path_buf()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `bytes` for a person: exact, and in MiB or GiB when large.
pub(crate) fn size(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    match bytes as f64 {
        b if b >= 1024.0 * MIB => format!("{bytes} bytes ({:.1} GiB)", b / (1024.0 * MIB)),
        b if b >= MIB => format!("{bytes} bytes ({:.1} MiB)", b / MIB),
        _ => format!("{bytes} bytes"),
    }
}

/// The newest `*.tar.gz` in `dir`, by modification time.
pub fn latest_in(dir: &Path) -> Result<PathBuf, BackupError> {
    let entries = std::fs::read_dir(dir).map_err(io(format!("reading {}", dir.display())))?;
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tar.gz"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max()
        .map(|(_, path)| path)
        .ok_or_else(|| BackupError::Invalid {
            archive: dir.to_path_buf(),
            reason: "the backup directory holds no .tar.gz backup".into(),
        })
}
