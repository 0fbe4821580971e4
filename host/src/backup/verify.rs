//! Checking a backup end to end: every file against the manifest's sha256,
//! nothing missing or extra, and the database opened and checked by redb.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use flate2::read::GzDecoder;

use super::{BackupError, DATABASE_ENTRY, FORMAT, MANIFEST, Manifest, hash_reader, io};

/// What a verified backup holds.
#[derive(Debug, Clone)]
pub struct Verified {
    pub manifest: Manifest,
    pub total_bytes: u64,
}

fn invalid(archive: &Path, reason: impl Into<String>) -> BackupError {
    BackupError::Invalid {
        archive: archive.to_path_buf(),
        reason: reason.into(),
    }
}

/// Verifies `archive`; `scratch` receives a copy of its database for
/// redb's integrity check (a temporary directory; removed by the caller).
/// Blocking.
pub fn verify(archive: &Path, scratch: &Path) -> Result<Verified, BackupError> {
    let file = File::open(archive).map_err(io(format!("opening {}", archive.display())))?;
    let mut tar = tar::Archive::new(GzDecoder::new(BufReader::new(file)));
    let mut seen: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut manifest: Option<Manifest> = None;
    let entries = tar
        .entries()
        .map_err(|e| invalid(archive, format!("not a tar.gz archive ({e})")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| invalid(archive, format!("damaged archive ({e})")))?;
        let path = entry
            .path()
            .map_err(|e| invalid(archive, format!("an entry has an unreadable name ({e})")))?
            .to_string_lossy()
            .into_owned();
        if path == MANIFEST {
            let mut text = String::new();
            entry
                .by_ref()
                .take(16 * 1024 * 1024)
                .read_to_string(&mut text)
                .map_err(|e| invalid(archive, format!("unreadable manifest ({e})")))?;
            manifest = Some(
                serde_json::from_str(&text)
                    .map_err(|e| invalid(archive, format!("manifest is not valid ({e})")))?,
            );
            continue;
        }
        let hashed = if path == DATABASE_ENTRY {
            // Hash and keep a copy for the integrity check, in one pass.
            std::fs::create_dir_all(scratch).map_err(io("creating a scratch directory"))?;
            let copy = scratch.join("caxton.redb");
            let mut out = File::create(&copy).map_err(io("writing the scratch database"))?;
            let mut tee = TeeReader {
                inner: &mut entry,
                copy: &mut out,
            };
            hash_reader(&mut tee)
        } else {
            hash_reader(&mut entry)
        }
        .map_err(|e| invalid(archive, format!("{path} cannot be read ({e})")))?;
        seen.insert(path, hashed);
    }
    let manifest = manifest.ok_or_else(|| {
        invalid(
            archive,
            "it has no manifest (cut short, or not made by `caxton backup`)",
        )
    })?;
    if manifest.format != FORMAT {
        return Err(invalid(
            archive,
            format!(
                "format {} is not the format {FORMAT} this build reads",
                manifest.format
            ),
        ));
    }
    let mut total = 0;
    for file in &manifest.files {
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
    if !manifest.files.iter().any(|f| f.path == DATABASE_ENTRY) {
        return Err(invalid(archive, "it holds no database"));
    }
    let mut db = redb::Database::open(scratch.join("caxton.redb"))
        .map_err(|e| invalid(archive, format!("its database does not open ({e})")))?;
    match db.check_integrity() {
        Ok(true) => {}
        Ok(false) => {
            return Err(invalid(
                archive,
                "its database needed repair when opened (it was copied mid-write)",
            ));
        }
        Err(e) => return Err(invalid(archive, format!("its database is damaged ({e})"))),
    }
    Ok(Verified {
        manifest,
        total_bytes: total,
    })
}

struct TeeReader<'a, R: Read, W: std::io::Write> {
    inner: &'a mut R,
    copy: &'a mut W,
}

impl<R: Read, W: std::io::Write> Read for TeeReader<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}
