//! Download plumbing shared by the model pulls: streaming downloads checked
//! by size and sha256, a private staging directory inside the cache, and the
//! atomic install that publishes it.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::PullError;

/// Prefix of staging directories inside the cache directory.
const STAGING_PREFIX: &str = ".partial-";
/// Staging directories older than this are leftovers of a killed pull.
const STALE_STAGING_AGE: Duration = Duration::from_secs(3600);
/// Longest wait for any single network operation (not the whole download).
const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// How one source failed; decides between [`PullError::Offline`] and
/// [`PullError::Failed`], while local disk trouble aborts the pull at once.
pub(crate) enum SourceError {
    Unreachable(String),
    Failed(String),
    Cache(PullError),
}

impl SourceError {
    pub(crate) fn from_http(url: &str, e: reqwest::Error) -> Self {
        // A timeout before any response is as good as unreachable; one in the
        // middle of a body means the source was there and broke off.
        let unreachable = e.is_connect() || (e.is_timeout() && !e.is_body());
        // The URL is named once, up front, not again in reqwest's message.
        let text = format!("{url}: {}", error_chain(&e.without_url()));
        if unreachable {
            SourceError::Unreachable(text)
        } else {
            SourceError::Failed(text)
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            SourceError::Unreachable(s) | SourceError::Failed(s) => s.clone(),
            SourceError::Cache(e) => e.to_string(),
        }
    }
}

/// reqwest's top-level message is vague ("error sending request"); the cause
/// (DNS failure, refused, certificate) is what a user needs to see.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

pub(crate) fn cache_err(path: &Path) -> impl FnOnce(io::Error) -> PullError + '_ {
    move |source| PullError::Cache {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn http_client(
    connect_timeout: Duration,
) -> Result<reqwest::blocking::Client, SourceError> {
    build(client_builder(connect_timeout))
}

/// The settings every model download uses, for a caller that needs one more.
pub(crate) fn client_builder(connect_timeout: Duration) -> reqwest::blocking::ClientBuilder {
    reqwest::blocking::Client::builder()
        .user_agent(concat!("caxton-models/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(connect_timeout)
        .timeout(STALL_TIMEOUT)
}

pub(crate) fn build(
    builder: reqwest::blocking::ClientBuilder,
) -> Result<reqwest::blocking::Client, SourceError> {
    builder
        .build()
        .map_err(|e| SourceError::Failed(format!("cannot build HTTP client: {}", error_chain(&e))))
}

pub(crate) fn check_sha(name: &str, actual: &str, expected: &str) -> Result<(), SourceError> {
    if actual == expected {
        Ok(())
    } else {
        Err(SourceError::Failed(format!(
            "{name} has sha256 {actual}, expected {expected} (corrupted or tampered download)"
        )))
    }
}

/// Streams `url` into `path`, returning the body's sha256. A Content-Length
/// other than `expected_size` is rejected before the body is read.
pub(crate) fn download(
    client: &reqwest::blocking::Client,
    url: &str,
    path: &Path,
    expected_size: Option<u64>,
    on_bytes: &mut dyn FnMut(u64),
) -> Result<String, SourceError> {
    let mut response = client
        .get(url)
        .send()
        .and_then(|r| r.error_for_status())
        .map_err(|e| SourceError::from_http(url, e))?;
    if let (Some(expected), Some(announced)) = (expected_size, response.content_length())
        && expected != announced
    {
        return Err(SourceError::Failed(format!(
            "{url}: server announced {announced} bytes, expected {expected}"
        )));
    }
    let limit = expected_size.map_or(u64::MAX, |s| s + 1);
    let mut limited = (&mut response).take(limit);
    let (size, sha) = write_hashed(path, &mut limited, on_bytes).map_err(|e| match e {
        WriteError::Read(e) => SourceError::Failed(format!("{url}: transfer broke off: {e}")),
        WriteError::Write(e) => SourceError::Cache(cache_err(path)(e)),
    })?;
    if let Some(expected) = expected_size
        && size != expected
    {
        return Err(SourceError::Failed(format!(
            "{url}: received {size} bytes, expected {expected}"
        )));
    }
    Ok(sha)
}

pub(crate) enum WriteError {
    Read(io::Error),
    Write(io::Error),
}

/// Copies `reader` into a new file at `path`, hashing on the way, and syncs it
/// so the later rename cannot publish a file whose data is not yet on disk.
pub(crate) fn write_hashed(
    path: &Path,
    reader: &mut dyn Read,
    on_bytes: &mut dyn FnMut(u64),
) -> Result<(u64, String), WriteError> {
    let file = File::create(path).map_err(WriteError::Write)?;
    let mut out = BufWriter::new(file);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(WriteError::Read(e)),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(WriteError::Write)?;
        total += n as u64;
        on_bytes(n as u64);
    }
    let file = out
        .into_inner()
        .map_err(|e| WriteError::Write(e.into_error()))?;
    file.sync_all().map_err(WriteError::Write)?;
    Ok((total, hex::encode(hasher.finalize())))
}

pub(crate) fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// A private directory inside the cache directory where a pull assembles the
/// model; removed on drop unless it was installed.
pub(crate) struct Staging {
    path: PathBuf,
    installed: bool,
}

impl Staging {
    /// `label` names the model, so leftovers are recognisable.
    pub(crate) fn create(cache_dir: &Path, label: &str) -> Result<Self, PullError> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = cache_dir.join(format!(
            "{STAGING_PREFIX}{label}-{}-{nanos}",
            std::process::id()
        ));
        fs::create_dir(&path).map_err(cache_err(&path))?;
        Ok(Staging {
            path,
            installed: false,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn clear(&self) -> Result<(), PullError> {
        for entry in fs::read_dir(&self.path).map_err(cache_err(&self.path))? {
            let entry = entry.map_err(cache_err(&self.path))?;
            fs::remove_file(entry.path()).map_err(cache_err(&entry.path()))?;
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.installed
            && let Err(e) = fs::remove_dir_all(&self.path)
        {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove staging directory");
        }
    }
}

/// Removes staging directories that a killed pull left behind. Only old ones:
/// a young one may belong to a pull still running in another process.
pub(crate) fn remove_stale_staging(cache_dir: &Path) {
    let Ok(entries) = fs::read_dir(cache_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let is_staging = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(STAGING_PREFIX));
        let is_old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_STAGING_AGE);
        if is_staging && is_old {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Publishes a fully verified staging directory as the model directory.
///
/// A directory cannot be renamed over a non-empty one, so an existing (corrupt
/// or incomplete) model directory is first renamed aside, then deleted, or put
/// back if the new one cannot be moved in. If a concurrent pull installed
/// first, its verified result is kept.
///
/// `already_verified` tells whether what is at `dest` now is good (used when
/// a concurrent pull won the race).
pub(crate) fn install(
    mut staging: Staging,
    dest: &Path,
    cache_dir: &Path,
    already_verified: &dyn Fn() -> bool,
) -> Result<PathBuf, PullError> {
    let aside = cache_dir.join(format!(
        "{STAGING_PREFIX}replaced-{}",
        staging
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("model")
    ));
    let moved_aside = dest.exists();
    if moved_aside {
        fs::rename(dest, &aside).map_err(cache_err(dest))?;
    }
    let result = match fs::rename(staging.path(), dest) {
        Ok(()) => {
            staging.installed = true;
            Ok(dest.to_path_buf())
        }
        // Lost a race against another pull: fine if what it installed is good.
        Err(_) if already_verified() => Ok(dest.to_path_buf()),
        Err(e) => {
            if moved_aside {
                // Best effort: leave the cache as it was before this pull.
                let _ = fs::rename(&aside, dest);
            }
            Err(cache_err(dest)(e))
        }
    };
    if moved_aside
        && aside.exists()
        && let Err(e) = fs::remove_dir_all(&aside)
    {
        tracing::warn!(path = %aside.display(), error = %e, "could not remove replaced model directory");
    }
    result
}
