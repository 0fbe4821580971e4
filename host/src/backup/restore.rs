//! Putting a backup back: verified first, then unpacked beside the target
//! and moved into place, the replaced database kept next to it.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use super::{BackupError, DATABASE_ENTRY, MANIFEST, Verified, io, verify};
use crate::storage::DATABASE_FILE;

/// Where each part of a backup goes.
#[derive(Debug, Clone)]
pub struct RestoreTargets {
    pub data_dir: PathBuf,
    pub agents_dir: PathBuf,
    /// Where `caxton.yaml` goes; `None` leaves the configuration alone.
    pub config: Option<PathBuf>,
    /// Replace files under a running server.
    pub force: bool,
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Restored {
    pub verified: Verified,
    /// The database that was replaced, kept under this name.
    pub previous_database: Option<PathBuf>,
    pub files: usize,
}

/// Whether a server holds the database in `data_dir` open.
fn in_use(data_dir: &Path) -> bool {
    let path = data_dir.join(DATABASE_FILE);
    path.is_file()
        && matches!(
            redb::Database::open(&path),
            Err(redb::DatabaseError::DatabaseAlreadyOpen)
        )
}

/// Verifies `archive`, then restores it into `targets`. Blocking.
pub fn restore(archive: &Path, targets: &RestoreTargets) -> Result<Restored, BackupError> {
    let scratch = tempfile::Builder::new()
        .prefix(".caxton-restore-")
        .tempdir_in(
            targets
                .data_dir
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )
        .or_else(|_| tempfile::tempdir())
        .map_err(io("creating a scratch directory"))?;
    let verified = verify(archive, &scratch.path().join("check"))?;
    if in_use(&targets.data_dir) && !targets.force {
        return Err(BackupError::InUse(targets.data_dir.clone()));
    }
    let unpacked = scratch.path().join("unpacked");
    let file = File::open(archive).map_err(io(format!("opening {}", archive.display())))?;
    let mut tar = tar::Archive::new(GzDecoder::new(BufReader::new(file)));
    let mut files = 0;
    let entries = tar.entries().map_err(io("reading the archive"))?;
    for entry in entries {
        let mut entry = entry.map_err(io("reading the archive"))?;
        if !entry.header().entry_type().is_file() {
            return Err(BackupError::Invalid {
                archive: archive.to_path_buf(),
                reason: "it holds links or directories; a backup holds files only".into(),
            });
        }
        let name = entry
            .path()
            .map_err(io("reading the archive"))?
            .to_path_buf();
        let name_text = name.to_string_lossy().into_owned();
        if name_text == MANIFEST {
            continue;
        }
        // Only the names a backup writes: `data/X`, `agents/X`, `caxton.yaml`.
        let destination = match name_text.split_once('/') {
            Some(("data", rest)) if is_plain(rest) => targets.data_dir.join(rest),
            Some(("agents", rest)) if is_plain(rest) => targets.agents_dir.join(rest),
            None if name_text == "caxton.yaml" => match &targets.config {
                Some(config) => config.clone(),
                None => continue,
            },
            _ => {
                return Err(BackupError::Invalid {
                    archive: archive.to_path_buf(),
                    reason: format!("unexpected entry `{name_text}`"),
                });
            }
        };
        let staged = unpacked.join(&name_text);
        if let Some(parent) = staged.parent() {
            std::fs::create_dir_all(parent).map_err(io("creating a scratch directory"))?;
        }
        let mut out = File::create(&staged).map_err(io(format!("writing {}", staged.display())))?;
        std::io::copy(&mut entry, &mut out).map_err(io(format!("unpacking {name_text}")))?;
        out.sync_all()
            .map_err(io(format!("syncing {}", staged.display())))?;
        files += 1;
        if name_text != DATABASE_ENTRY {
            place(&staged, &destination)?;
        }
    }
    // The database last, so a failure above leaves it untouched.
    std::fs::create_dir_all(&targets.data_dir)
        .map_err(io(format!("creating {}", targets.data_dir.display())))?;
    let database = targets.data_dir.join(DATABASE_FILE);
    let previous_database = if database.exists() {
        let kept = targets.data_dir.join(format!(
            "{DATABASE_FILE}.before-restore-{}",
            crate::clock::now_rfc3339().replace(':', "")
        ));
        std::fs::rename(&database, &kept).map_err(io("moving the current database aside"))?;
        Some(kept)
    } else {
        None
    };
    place(&unpacked.join(DATABASE_ENTRY), &database)?;
    // The vector index belongs to the old database: rebuilt at next start.
    let index = targets.data_dir.join(crate::memory::INDEX_DIR);
    if index.exists() {
        std::fs::remove_dir_all(&index).map_err(io("removing the old vector index"))?;
    }
    Ok(Restored {
        verified,
        previous_database,
        files,
    })
}

/// A single file name, no directories or tricks (`..`, absolute paths).
fn is_plain(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && !name.contains('\\') && name != "." && name != ".."
}

fn place(staged: &Path, destination: &Path) -> Result<(), BackupError> {
    if let Some(parent) = destination.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
    }
    if std::fs::rename(staged, destination).is_err() {
        // Another filesystem: copy, then remove the staged file.
        std::fs::copy(staged, destination)
            .map_err(io(format!("writing {}", destination.display())))?;
        let _ = std::fs::remove_file(staged);
    }
    Ok(())
}
