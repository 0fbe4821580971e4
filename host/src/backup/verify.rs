//! Checking a backup end to end: every file against the manifest's sha256,
//! nothing missing or extra, and the database opened and checked by redb.
//!
//! [`scan`] reads an archive once, within [`Limits`], and is shared with
//! the restore, which keeps every file it reads: what it verifies is then
//! exactly what it puts in place, never a second reading of an archive
//! that may have changed in between.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use serde::Deserialize;

use super::{
    BackupError, DATABASE_ENTRY, FORMAT, Limits, MANIFEST, Manifest, hash_reader, io, size,
};

/// What a verified backup holds.
#[derive(Debug, Clone)]
pub struct Verified {
    pub manifest: Manifest,
    pub total_bytes: u64,
}

pub(crate) fn invalid(archive: &Path, reason: impl Into<String>) -> BackupError {
    BackupError::Invalid {
        archive: archive.to_path_buf(),
        reason: reason.into(),
    }
}

/// An archive read once: its manifest, and the size and sha256 of every
/// other entry, by name.
pub(crate) struct Scanned {
    pub manifest: Manifest,
    pub files: BTreeMap<String, (u64, String)>,
}

/// Reads `archive` once. Each entry other than the manifest is hashed and,
/// when `keep` names a path for it, written there (a new file, 0600) as it
/// is hashed. Refuses anything but regular files, a name twice, and more
/// than `limits` allow, before reading past them. `keep` sees every name
/// first and may refuse it.
pub(crate) fn scan(
    archive: &Path,
    limits: &Limits,
    mut keep: impl FnMut(&str) -> Result<Option<PathBuf>, BackupError>,
) -> Result<Scanned, BackupError> {
    let file = File::open(archive).map_err(io(format!("opening {}", archive.display())))?;
    let mut tar = tar::Archive::new(GzDecoder::new(BufReader::new(file)));
    // Raw: the tar crate would read a long-name or pax entry of any size
    // into memory; the one kind `caxton backup` writes is read below, capped.
    let entries = tar
        .entries()
        .map_err(|e| invalid(archive, format!("not a tar.gz archive ({e})")))?
        .raw(true);
    let mut files: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut manifest: Option<Manifest> = None;
    let mut long_name: Option<String> = None;
    let mut count = 0usize;
    let mut total = 0u64;
    for entry in entries {
        let mut entry = entry.map_err(|e| invalid(archive, format!("damaged archive ({e})")))?;
        count += 1;
        if count > limits.max_entries {
            return Err(invalid(
                archive,
                format!(
                    "it has more than {} entries, the most a backup may hold",
                    limits.max_entries
                ),
            ));
        }
        let kind = entry.header().entry_type();
        let declared = entry.size();
        if kind.is_gnu_longname() {
            if declared > Limits::MAX_NAME {
                return Err(invalid(
                    archive,
                    format!("an entry name is {declared} bytes long"),
                ));
            }
            let mut name = Vec::new();
            entry
                .read_to_end(&mut name)
                .map_err(|e| invalid(archive, format!("damaged archive ({e})")))?;
            let name = String::from_utf8_lossy(&name);
            long_name = Some(name.trim_end_matches('\0').to_string());
            continue;
        }
        if !kind.is_file() {
            return Err(invalid(
                archive,
                "it holds links, directories or other special entries; a backup holds files only",
            ));
        }
        let path = match long_name.take() {
            Some(name) => name,
            None => entry
                .path()
                .map_err(|e| invalid(archive, format!("an entry has an unreadable name ({e})")))?
                .to_string_lossy()
                .into_owned(),
        };
        if files.contains_key(&path) || (path == MANIFEST && manifest.is_some()) {
            return Err(invalid(archive, format!("it holds {path} twice")));
        }
        // The database may use what is left of the whole; every other file
        // is small.
        let remaining = limits.max_bytes.saturating_sub(total);
        let file_cap = if path.starts_with("cluster/components/") {
            Limits::MAX_COMPONENT_FILE
        } else {
            Limits::MAX_SMALL_FILE
        };
        let cap = if path == DATABASE_ENTRY {
            remaining
        } else {
            remaining.min(file_cap)
        };
        if declared > cap {
            let why = if cap == remaining {
                let before = match total {
                    0 => String::new(),
                    _ => format!(" with the {} before it", size(total)),
                };
                format!(
                    "which{before} is over the cap of {} on a whole backup unpacked (raise it with --max-bytes)",
                    size(limits.max_bytes)
                )
            } else {
                format!("which is over the cap of {} on such a file", size(file_cap))
            };
            return Err(invalid(
                archive,
                format!("{path} expands to {}, {why}", size(declared)),
            ));
        }
        if path == MANIFEST {
            let mut text = String::new();
            entry
                .by_ref()
                .take(cap)
                .read_to_string(&mut text)
                .map_err(|e| invalid(archive, format!("unreadable manifest ({e})")))?;
            total += text.len() as u64;
            manifest = Some(parse_manifest(archive, &text)?);
            continue;
        }
        // Counted as read as well: a reader never yields more than the
        // header declares, and this keeps it so.
        let mut capped = entry.by_ref().take(cap);
        let hashed = match keep(&path)? {
            Some(copy) => {
                let mut out = crate::storage::open_private(&copy, true)
                    .map_err(io(format!("writing {}", copy.display())))?;
                let hashed = hash_reader(TeeReader {
                    inner: &mut capped,
                    copy: &mut out,
                })
                .map_err(|e| invalid(archive, format!("{path} cannot be unpacked ({e})")))?;
                out.sync_all()
                    .map_err(io(format!("syncing {}", copy.display())))?;
                hashed
            }
            None => hash_reader(&mut capped)
                .map_err(|e| invalid(archive, format!("{path} cannot be read ({e})")))?,
        };
        total += hashed.0;
        files.insert(path, hashed);
    }
    let manifest = manifest.ok_or_else(|| {
        invalid(
            archive,
            "it has no manifest (cut short, or not made by `caxton backup`)",
        )
    })?;
    Ok(Scanned { manifest, files })
}

/// The manifest, once its format is one this build reads: its version is
/// read on its own first, so a later format whose manifest no longer
/// parses as this one is still named as such.
fn parse_manifest(archive: &Path, text: &str) -> Result<Manifest, BackupError> {
    #[derive(Deserialize)]
    struct Version {
        format: u32,
        #[serde(default)]
        caxton_version: String,
    }
    let version: Version = serde_json::from_str(text)
        .map_err(|e| invalid(archive, format!("manifest is not valid ({e})")))?;
    if version.format != FORMAT {
        let ours = env!("CARGO_PKG_VERSION");
        let theirs = version.caxton_version;
        let advice = if version.format > FORMAT {
            format!("; restore it with caxton {theirs} or later")
        } else {
            String::new()
        };
        return Err(invalid(
            archive,
            format!(
                "it is backup format {} (written by caxton {theirs}), and this caxton {ours} reads format {FORMAT} only{advice}",
                version.format
            ),
        ));
    }
    serde_json::from_str(text).map_err(|e| invalid(archive, format!("manifest is not valid ({e})")))
}

/// Compares what was read with the manifest: every file there, of its size
/// and sha256, and nothing else; a database among them. Answers the bytes.
pub(crate) fn check_files(archive: &Path, scanned: &Scanned) -> Result<u64, BackupError> {
    let mut seen = scanned.files.clone();
    let mut total = 0;
    for file in &scanned.manifest.files {
        match seen.remove(&file.path) {
            None => return Err(invalid(archive, format!("{} is missing", file.path))),
            Some((bytes, sha)) if bytes != file.bytes || sha != file.sha256 => {
                return Err(invalid(
                    archive,
                    format!("{} does not match its checksum (damaged)", file.path),
                ));
            }
            Some((bytes, _)) => total += bytes,
        }
    }
    if let Some(extra) = seen.keys().next() {
        return Err(invalid(archive, format!("{extra} is not in the manifest")));
    }
    if !scanned
        .manifest
        .files
        .iter()
        .any(|f| f.path == DATABASE_ENTRY)
    {
        return Err(invalid(archive, "it holds no database"));
    }
    Ok(total)
}

/// redb's own check of the database at `copy`. Opening a database may
/// write to it, so `copy` must be a copy nobody will use.
pub(crate) fn check_database(archive: &Path, copy: &Path) -> Result<(), BackupError> {
    let mut db = redb::Database::open(copy)
        .map_err(|e| invalid(archive, format!("its database does not open ({e})")))?;
    match db.check_integrity() {
        Ok(true) => Ok(()),
        Ok(false) => Err(invalid(
            archive,
            "its database needed repair when opened (it was copied mid-write)",
        )),
        Err(e) => Err(invalid(archive, format!("its database is damaged ({e})"))),
    }
}

/// Verifies `archive` within `limits`; `scratch` receives a copy of its
/// database for redb's integrity check (a temporary directory; removed by
/// the caller). Blocking.
pub fn verify(archive: &Path, scratch: &Path, limits: &Limits) -> Result<Verified, BackupError> {
    std::fs::create_dir_all(scratch).map_err(io("creating a scratch directory"))?;
    let copy = scratch.join("caxton.redb");
    let scanned = scan(archive, limits, |path| {
        Ok((path == DATABASE_ENTRY).then(|| copy.clone()))
    })?;
    let total_bytes = check_files(archive, &scanned)?;
    check_database(archive, &copy)?;
    Ok(Verified {
        manifest: scanned.manifest,
        total_bytes,
    })
}

struct TeeReader<'a, R: Read, W: Write> {
    inner: &'a mut R,
    copy: &'a mut W,
}

impl<R: Read, W: Write> Read for TeeReader<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}
