//! Writing a backup archive.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use super::{BackupError, DATABASE_ENTRY, FORMAT, FileEntry, MANIFEST, Manifest, io};
use crate::storage::{DATABASE_FILE, Storage};

/// What goes into a backup besides the database.
#[derive(Debug, Clone)]
pub struct Sources {
    pub data_dir: PathBuf,
    /// Agent definitions (`*.md`, `*.toml`), when the directory exists.
    pub agents_dir: Option<PathBuf>,
    /// The configuration file, when there is one.
    pub config: Option<PathBuf>,
    /// A cluster's registry, components and agent state, written there by
    /// `crate::cluster::backup::export`, when the node is in a cluster.
    pub cluster_dir: Option<PathBuf>,
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

struct Writer<W: Write> {
    tar: tar::Builder<W>,
    files: Vec<FileEntry>,
}

impl<W: Write> Writer<W> {
    /// Appends the file at `source` as `path`, hashing it on the way.
    fn file(&mut self, path: &str, source: &Path) -> Result<(), BackupError> {
        let file = File::open(source).map_err(io(format!("opening {}", source.display())))?;
        let len = file
            .metadata()
            .map_err(io(format!("reading {}", source.display())))?
            .len();
        let mut reader = Hashing {
            inner: file.take(len),
            hasher: Sha256::new(),
            bytes: 0,
        };
        self.append(path, len, &mut reader)?;
        if reader.bytes != len {
            return Err(BackupError::Io {
                what: format!("copying {}", source.display()),
                source: std::io::Error::other("the file changed size while it was copied"),
            });
        }
        self.files.push(FileEntry {
            path: path.to_string(),
            bytes: len,
            sha256: hex::encode(reader.hasher.finalize()),
        });
        Ok(())
    }

    fn append(&mut self, path: &str, len: u64, data: impl Read) -> Result<(), BackupError> {
        let mut header = tar::Header::new_gnu();
        header.set_size(len);
        header.set_mode(0o600);
        header.set_mtime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        );
        header.set_entry_type(tar::EntryType::Regular);
        self.tar
            .append_data(&mut header, path, data)
            .map_err(io(format!("writing {path} into the archive")))
    }
}

/// Agent definition files directly in `dir` (no links, no subdirectories).
fn definitions(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| crate::config_agents::is_definition_file(p))
        .collect();
    files.sort();
    files
}

/// Writes a backup of `sources` to `out` (through `out.partial`, renamed
/// when complete, so a backup that exists is whole). Blocking.
pub fn create(storage: &Storage, sources: &Sources, out: &Path) -> Result<Manifest, BackupError> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
    }
    let partial = out.with_extension("partial");
    // Private: it holds the admin token.
    let file = crate::storage::open_private(&partial, false)
        .map_err(io(format!("creating {}", partial.display())))?;
    let gz = GzEncoder::new(BufWriter::new(file), Compression::fast());
    let mut writer = Writer {
        tar: tar::Builder::new(gz),
        files: Vec::new(),
    };
    {
        // No commit can land while this transaction is open: the copy is
        // one consistent state. Dropped (aborted) right after.
        let hold = storage
            .database()
            .begin_write()
            .map_err(|e| BackupError::Database(e.to_string()))?;
        writer.file(DATABASE_ENTRY, &sources.data_dir.join(DATABASE_FILE))?;
        drop(hold);
    }
    let token = sources.data_dir.join(crate::auth::tokens::ADMIN_TOKEN_FILE);
    if token.is_file() {
        writer.file(
            &format!("data/{}", crate::auth::tokens::ADMIN_TOKEN_FILE),
            &token,
        )?;
    }
    if let Some(dir) = &sources.agents_dir {
        for path in definitions(dir) {
            if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                writer.file(&format!("agents/{name}"), &path)?;
            }
        }
    }
    if let Some(dir) = &sources.cluster_dir {
        let registry = dir.join(super::CLUSTER_REGISTRY);
        if registry.is_file() {
            writer.file(&format!("cluster/{}", super::CLUSTER_REGISTRY), &registry)?;
        }
        let mut components: Vec<PathBuf> = std::fs::read_dir(dir.join("components"))
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        components.sort();
        for path in components {
            if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                writer.file(&format!("cluster/components/{name}"), &path)?;
            }
        }
    }
    if let Some(config) = sources.config.as_ref().filter(|c| c.is_file()) {
        writer.file("caxton.yaml", config)?;
    }
    let manifest = Manifest {
        format: FORMAT,
        caxton_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at: crate::clock::now_rfc3339(),
        files: std::mem::take(&mut writer.files),
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Io {
        what: "writing the manifest".into(),
        source: std::io::Error::other(e),
    })?;
    writer.append(MANIFEST, json.len() as u64, json.as_slice())?;
    let gz = writer
        .tar
        .into_inner()
        .map_err(io("finishing the archive"))?;
    let buffered = gz.finish().map_err(io("finishing the compression"))?;
    let file = buffered.into_inner().map_err(|e| BackupError::Io {
        what: "flushing the archive".into(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io("syncing the archive"))?;
    std::fs::rename(&partial, out)
        .map_err(io(format!("moving the archive to {}", out.display())))?;
    Ok(manifest)
}
