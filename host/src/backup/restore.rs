//! Putting a backup back, all or nothing.
//!
//! The archive is read once, into a scratch directory beside the data
//! directory, and what was read is checked there (sizes, checksums, the
//! manifest's format, redb's own check of the database): the files put in
//! place are the bytes that were verified, not a second reading of an
//! archive that may have changed since. Only then is anything touched:
//! each current file is renamed aside and its replacement renamed in, all
//! on one file system so every step is atomic, and a failed step renames
//! back everything already moved. A restore that fails leaves the old
//! state as it was, so a running server (`--force`) never picks up half a
//! backup, nor an agent from one that was refused.

use std::path::{Path, PathBuf};

use super::verify::{check_database, check_files, invalid, scan};
use super::{BackupError, DATABASE_ENTRY, Limits, Verified, create_private_dirs, io};
use crate::auth::tokens::ADMIN_TOKEN_FILE;
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
    /// What the archive may expand to.
    pub limits: Limits,
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Restored {
    pub verified: Verified,
    /// The database that was replaced, kept under this name.
    pub previous_database: Option<PathBuf>,
    /// Where `caxton.yaml` was written: `None` when the backup holds none
    /// or the configuration was left alone.
    pub config_written: Option<PathBuf>,
    /// Files put in place.
    pub files: usize,
    /// Replaced files (moved aside) that could not be deleted afterwards.
    pub leftovers: Vec<PathBuf>,
}

/// Whether a server holds the database in `data_dir` open. Read-only:
/// opening it for writing may write to it, and a refused restore must
/// leave it byte for byte as it was.
fn in_use(data_dir: &Path) -> bool {
    let path = data_dir.join(DATABASE_FILE);
    path.is_file()
        && matches!(
            redb::ReadOnlyDatabase::open(&path),
            Err(redb::DatabaseError::DatabaseAlreadyOpen)
        )
}

/// Verifies `archive`, then restores it into `targets`; on an error
/// nothing under `targets` has changed. Blocking.
pub fn restore(archive: &Path, targets: &RestoreTargets) -> Result<Restored, BackupError> {
    if in_use(&targets.data_dir) && !targets.force {
        return Err(BackupError::InUse(targets.data_dir.clone()));
    }
    let mut created = Vec::new();
    let result = stage_and_swap(archive, targets, &mut created);
    if result.is_err() {
        // Innermost first; a directory something was left in stays.
        for dir in created.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
    result
}

fn stage_and_swap(
    archive: &Path,
    targets: &RestoreTargets,
    created: &mut Vec<PathBuf>,
) -> Result<Restored, BackupError> {
    // Beside the data directory, so the database (nearly all of a backup)
    // is renamed into place, never copied.
    let beside = targets
        .data_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    create_private_dirs(beside, created).map_err(io(format!("creating {}", beside.display())))?;
    let scratch = tempfile::Builder::new()
        .prefix(".caxton-restore-")
        .tempdir_in(beside)
        .map_err(io(format!(
            "creating a scratch directory in {}",
            beside.display()
        )))?;
    let unpacked = scratch.path().join("unpacked");
    let scanned = scan(archive, &targets.limits, |name| {
        if destination(archive, name, targets)?.is_none() {
            return Ok(None);
        }
        // `destination` accepted the name: three plain components at most.
        let staged = unpacked.join(name);
        if let Some(parent) = staged.parent() {
            create_private_dirs(parent, &mut Vec::new())
                .map_err(io("creating a scratch directory"))?;
        }
        Ok(Some(staged))
    })?;
    let total_bytes = check_files(archive, &scanned)?;
    // redb may write to a database it opens: check a copy, put the
    // verified bytes in place.
    let check = scratch.path().join("check.redb");
    std::fs::copy(unpacked.join(DATABASE_ENTRY), &check)
        .map_err(io("copying the database for its check"))?;
    check_database(archive, &check)?;
    let _ = std::fs::remove_file(&check);

    let stamp = crate::clock::now_rfc3339().replace(':', "");
    let mut swaps = Vec::new();
    let mut config_written = None;
    for file in &scanned.manifest.files {
        if file.path == DATABASE_ENTRY {
            continue;
        }
        if let Some(dest) = destination(archive, &file.path, targets)? {
            if file.path == "caxton.yaml" {
                config_written = Some(dest.clone());
            }
            swaps.push(Swap::new(Some(unpacked.join(&file.path)), dest, &stamp));
        }
    }
    // The vector index belongs to the old database: rebuilt at next start.
    swaps.push(Swap::new(
        None,
        targets.data_dir.join(crate::memory::INDEX_DIR),
        &stamp,
    ));
    // The database last, kept beside under a name that says why.
    let database = targets.data_dir.join(DATABASE_FILE);
    swaps.push(Swap {
        staged: Some(unpacked.join(DATABASE_ENTRY)),
        copied: false,
        aside: targets
            .data_dir
            .join(format!("{DATABASE_FILE}.before-restore-{stamp}")),
        dest: database,
        keep_old: true,
    });

    let swapped =
        prepare(&mut swaps, scratch.path(), &stamp, created).and_then(|()| swap_all(&swaps));
    let had_old = match swapped {
        Ok(had_old) => had_old,
        Err(e) => {
            discard_copies(&swaps);
            return Err(e);
        }
    };

    let mut previous_database = None;
    let mut leftovers = Vec::new();
    for (swap, had_old) in swaps.iter().zip(had_old) {
        if !had_old {
            continue;
        }
        if swap.keep_old {
            previous_database = Some(swap.aside.clone());
        } else if remove_any(&swap.aside).is_err() {
            leftovers.push(swap.aside.clone());
        }
    }
    let mut dirs: Vec<&Path> = swaps.iter().filter_map(|s| s.dest.parent()).collect();
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        sync_dir(dir);
    }
    Ok(Restored {
        verified: Verified {
            manifest: scanned.manifest,
            total_bytes,
        },
        previous_database,
        config_written,
        files: swaps.iter().filter(|s| s.staged.is_some()).count(),
        leftovers,
    })
}

/// Where the archive entry `name` goes; `None` for a configuration left
/// alone. Refuses every name `caxton backup` does not write, so a hostile
/// archive can place nothing else (no `..`, no absolute paths, no files
/// the server would act on, such as a compaction request).
fn destination(
    archive: &Path,
    name: &str,
    targets: &RestoreTargets,
) -> Result<Option<PathBuf>, BackupError> {
    match name.split_once('/') {
        Some(("data", rest)) if rest == DATABASE_FILE || rest == ADMIN_TOKEN_FILE => {
            Ok(Some(targets.data_dir.join(rest)))
        }
        Some(("agents", rest))
            if is_plain(rest) && crate::config_agents::is_definition_file(Path::new(rest)) =>
        {
            Ok(Some(targets.agents_dir.join(rest)))
        }
        Some(("cluster", super::CLUSTER_REGISTRY)) => Ok(Some(
            targets
                .data_dir
                .join(super::CLUSTER_RESTORE_DIR)
                .join(super::CLUSTER_REGISTRY),
        )),
        Some(("cluster", rest))
            if rest
                .strip_prefix("components/")
                .is_some_and(super::is_component_file) =>
        {
            Ok(Some(
                targets.data_dir.join(super::CLUSTER_RESTORE_DIR).join(rest),
            ))
        }
        None if name == "caxton.yaml" => Ok(targets.config.clone()),
        _ => Err(invalid(
            archive,
            format!(
                "unexpected entry `{name}` (a backup holds {DATABASE_ENTRY}, data/{ADMIN_TOKEN_FILE}, agents/NAME.md or .toml, cluster/registry.json, cluster/components/SHA256.wasm, and caxton.yaml)"
            ),
        )),
    }
}

/// A single file name, no directories or tricks (`..`, absolute paths).
fn is_plain(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && !name.contains('\\') && name != "." && name != ".."
}

/// One destination of a restore: its current file (or directory) is
/// renamed to `aside`, then `staged` renamed to it.
#[derive(Debug)]
struct Swap {
    /// The verified file; `None` removes `dest`.
    staged: Option<PathBuf>,
    /// `staged` is a copy made beside `dest` (another file system than
    /// the scratch directory's), to delete if the restore fails.
    copied: bool,
    dest: PathBuf,
    aside: PathBuf,
    /// Keep the old file at `aside` afterwards (the database); otherwise
    /// it is deleted once everything is in place.
    keep_old: bool,
}

impl Swap {
    fn new(staged: Option<PathBuf>, dest: PathBuf, stamp: &str) -> Swap {
        let aside = sibling(&dest, &format!("before-restore-{stamp}"));
        Swap {
            staged,
            copied: false,
            dest,
            aside,
            keep_old: false,
        }
    }
}

/// `.NAME.SUFFIX` beside `path`: hidden, and not named like an agent
/// definition, so a watching server ignores it.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{suffix}"))
}

/// Makes every destination's directory (0700 when new), and brings each
/// staged file onto its destination's file system, so the swap is renames
/// only. Changes nothing a server reads.
fn prepare(
    swaps: &mut [Swap],
    scratch: &Path,
    stamp: &str,
    created: &mut Vec<PathBuf>,
) -> Result<(), BackupError> {
    for swap in swaps.iter_mut() {
        let Some(parent) = swap.dest.parent().filter(|p| !p.as_os_str().is_empty()) else {
            continue;
        };
        create_private_dirs(parent, created)
            .map_err(io(format!("creating {}", parent.display())))?;
        let Some(staged) = &swap.staged else {
            continue;
        };
        if same_file_system(scratch, parent) {
            continue;
        }
        let copy = sibling(&swap.dest, &format!("restoring-{stamp}"));
        let mut from =
            std::fs::File::open(staged).map_err(io(format!("reading {}", staged.display())))?;
        let mut to = crate::storage::open_private(&copy, true)
            .map_err(io(format!("writing {}", copy.display())))?;
        swap.staged = Some(copy.clone());
        swap.copied = true;
        std::io::copy(&mut from, &mut to).map_err(io(format!("writing {}", copy.display())))?;
        to.sync_all()
            .map_err(io(format!("syncing {}", copy.display())))?;
    }
    Ok(())
}

fn same_file_system(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        true
    }
}

/// What one swap did, to undo it.
#[derive(Debug, Default, Clone, Copy)]
struct Step {
    moved_aside: bool,
    placed: bool,
}

/// Applies `swaps` in order; if one fails, undoes the ones before it (and
/// its own first half). Answers, per swap, whether there was an old file.
fn swap_all(swaps: &[Swap]) -> Result<Vec<bool>, BackupError> {
    let mut done = Vec::with_capacity(swaps.len());
    for swap in swaps {
        let mut step = Step::default();
        let applied = apply(swap, &mut step);
        done.push(step);
        if let Err((what, source)) = applied {
            let undo = roll_back(swaps, &done);
            return Err(BackupError::Swap { what, source, undo });
        }
    }
    Ok(done.iter().map(|s| s.moved_aside).collect())
}

fn apply(swap: &Swap, step: &mut Step) -> Result<(), (String, std::io::Error)> {
    if std::fs::symlink_metadata(&swap.dest).is_ok() {
        std::fs::rename(&swap.dest, &swap.aside)
            .map_err(|e| (format!("moving {} aside", swap.dest.display()), e))?;
        step.moved_aside = true;
    }
    if let Some(staged) = &swap.staged {
        std::fs::rename(staged, &swap.dest)
            .map_err(|e| (format!("putting {} in place", swap.dest.display()), e))?;
        step.placed = true;
    }
    Ok(())
}

/// Undoes `done` (a prefix of `swaps`), last first; says how it went.
fn roll_back(swaps: &[Swap], done: &[Step]) -> String {
    let mut problems = Vec::new();
    for (swap, step) in swaps.iter().zip(done).rev() {
        let undone = if step.moved_aside {
            // Replaces the new file, if it was placed, in one step.
            std::fs::rename(&swap.aside, &swap.dest)
        } else if step.placed {
            std::fs::remove_file(&swap.dest)
        } else {
            Ok(())
        };
        if let Err(e) = undone {
            problems.push(if step.moved_aside {
                format!(
                    "{} (its old version is at {}: {e})",
                    swap.dest.display(),
                    swap.aside.display()
                )
            } else {
                format!("{} ({e})", swap.dest.display())
            });
        }
    }
    if problems.is_empty() {
        "nothing was changed (what had been moved was put back)".into()
    } else {
        format!(
            "putting the old files back failed for {}",
            problems.join(", ")
        )
    }
}

/// Deletes the copies `prepare` made beside destinations.
fn discard_copies(swaps: &[Swap]) {
    for swap in swaps.iter().filter(|s| s.copied) {
        if let Some(staged) = &swap.staged {
            let _ = std::fs::remove_file(staged);
        }
    }
}

fn remove_any(path: &Path) -> std::io::Result<()> {
    if std::fs::symlink_metadata(path)?.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

/// Makes the renames in `dir` durable. Best effort: by now every file is
/// in place and a failure here is no reason to report the restore failed.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(handle) = std::fs::File::open(dir) {
        let _ = handle.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::backup::{Manifest, Sources, create};

    /// An install under `root`: a database, an admin token (0644, as an
    /// older restore left it), an agent definition and a configuration,
    /// each saying `tag`.
    fn install(root: &Path, tag: &str) {
        let data = root.join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        std::fs::create_dir_all(root.join("agents")).expect("agents dir");
        drop(crate::storage::Storage::open(&data).expect("database"));
        std::fs::write(data.join(ADMIN_TOKEN_FILE), format!("token-{tag}\n")).expect("token");
        std::fs::set_permissions(
            data.join(ADMIN_TOKEN_FILE),
            std::fs::Permissions::from_mode(0o644),
        )
        .expect("chmod");
        std::fs::write(root.join("agents/helper.md"), format!("# helper {tag}\n")).expect("agent");
        std::fs::write(root.join("caxton.yaml"), format!("# {tag}\n")).expect("config");
    }

    /// A backup of the install under `root`, made by [`create`].
    fn backup_of(root: &Path) -> PathBuf {
        let storage = crate::storage::Storage::open(&root.join("data")).expect("database");
        let out = root.join("backup.tar.gz");
        let sources = Sources {
            data_dir: root.join("data"),
            agents_dir: Some(root.join("agents")),
            config: Some(root.join("caxton.yaml")),
            cluster_dir: None,
        };
        create(&storage, &sources, &out).expect("backup");
        out
    }

    fn targets(root: &Path) -> RestoreTargets {
        RestoreTargets {
            data_dir: root.join("data"),
            agents_dir: root.join("agents"),
            config: Some(root.join("caxton.yaml")),
            force: false,
            limits: Limits::default(),
        }
    }

    /// Every file and directory under `root`: its mode and contents.
    fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u32, Option<Vec<u8>>)> {
        let mut all = BTreeMap::new();
        let mut todo = vec![root.to_path_buf()];
        while let Some(dir) = todo.pop() {
            for entry in std::fs::read_dir(&dir).expect("read dir") {
                let path = entry.expect("entry").path();
                let meta = std::fs::symlink_metadata(&path).expect("metadata");
                let mode = meta.permissions().mode() & 0o7777;
                if meta.is_dir() {
                    todo.push(path.clone());
                    all.insert(path, (mode, None));
                } else {
                    let bytes = std::fs::read(&path).expect("read");
                    all.insert(path, (mode, Some(bytes)));
                }
            }
        }
        all
    }

    fn entries(archive: &Path) -> Vec<(String, Vec<u8>)> {
        let file = std::fs::File::open(archive).expect("archive");
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut all = Vec::new();
        for entry in tar.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let name = entry.path().expect("name").to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).expect("read");
            all.push((name, bytes));
        }
        all
    }

    /// Writes `entries` as a `.tar.gz`, names as given (even hostile ones).
    fn pack(entries: &[(String, Vec<u8>)], out: &Path) {
        let file = std::fs::File::create(out).expect("create");
        let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        for (name, bytes) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o600);
            header.set_entry_type(tar::EntryType::Regular);
            if name.len() < 100 {
                header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
                header.set_cksum();
                tar.append(&header, bytes.as_slice()).expect("append");
            } else {
                tar.append_data(&mut header, name, bytes.as_slice())
                    .expect("append");
            }
        }
        tar.into_inner().expect("tar").finish().expect("gz");
    }

    fn edit_manifest(entries: &mut [(String, Vec<u8>)], edit: impl FnOnce(&mut Manifest)) {
        let (_, bytes) = entries
            .iter_mut()
            .find(|(name, _)| name == super::super::MANIFEST)
            .expect("manifest");
        let mut manifest: Manifest = serde_json::from_slice(bytes).expect("manifest json");
        edit(&mut manifest);
        *bytes = serde_json::to_vec(&manifest).expect("json");
    }

    /// `root/source` backed up, `root/live` an install of its own.
    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let source = dir.path().join("source");
        install(&source, "old-backup");
        let archive = backup_of(&source);
        let live = dir.path().join("live");
        install(&live, "live");
        (dir, archive, live)
    }

    /// Restores `entries` into `live` and asserts it failed, with `says` in
    /// the error, leaving every file and mode as it was.
    fn refused(entries: &[(String, Vec<u8>)], live: &Path, limits: Limits, says: &str) {
        let archive = live.parent().expect("parent").join("hostile.tar.gz");
        pack(entries, &archive);
        let before = snapshot(live.parent().expect("parent"));
        let mut targets = targets(live);
        targets.limits = limits;
        let error = restore(&archive, &targets)
            .expect_err("refused")
            .to_string();
        assert!(error.contains(says), "{error}");
        let after = snapshot(live.parent().expect("parent"));
        let changed: Vec<&PathBuf> = before
            .keys()
            .chain(after.keys())
            .filter(|p| before.get(*p) != after.get(*p))
            .collect();
        assert!(changed.is_empty(), "{error}; changed: {changed:?}");
    }

    #[test]
    fn a_restore_writes_private_files_and_directories() {
        let (dir, archive, _) = setup();
        let fresh = dir.path().join("fresh").join("install");
        let restored = restore(&archive, &targets(&fresh)).expect("restore");
        assert_eq!(restored.files, 4);
        assert_eq!(restored.config_written, Some(fresh.join("caxton.yaml")));
        assert_eq!(restored.previous_database, None);
        for (path, (mode, bytes)) in snapshot(&dir.path().join("fresh")) {
            let expected = if bytes.is_some() { 0o600 } else { 0o700 };
            assert_eq!(mode, expected, "{}", path.display());
        }
        assert_eq!(
            std::fs::read_to_string(fresh.join("agents/helper.md")).expect("agent"),
            "# helper old-backup\n"
        );
    }

    #[test]
    fn a_restore_over_an_install_keeps_the_old_database_and_drops_the_index() {
        let (_dir, archive, live) = setup();
        std::fs::create_dir_all(live.join("data").join(crate::memory::INDEX_DIR)).expect("index");
        let old_database = std::fs::read(live.join("data/caxton.redb")).expect("db");
        let restored = restore(&archive, &targets(&live)).expect("restore");
        let kept = restored.previous_database.expect("kept");
        assert_eq!(std::fs::read(&kept).expect("kept db"), old_database);
        assert!(!live.join("data").join(crate::memory::INDEX_DIR).exists());
        let token = live.join("data").join(ADMIN_TOKEN_FILE);
        assert_eq!(
            std::fs::read_to_string(&token).expect("token"),
            "token-old-backup\n"
        );
        let mode = std::fs::metadata(&token)
            .expect("token")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(restored.leftovers.is_empty());
        // Nothing left behind but the database kept on purpose.
        let hidden: Vec<PathBuf> = snapshot(live.parent().expect("parent"))
            .into_keys()
            .filter(|p| p.to_string_lossy().contains("restor"))
            .collect();
        assert_eq!(hidden, vec![kept]);
    }

    #[test]
    fn a_damaged_file_after_the_agents_changes_nothing() {
        let (_dir, archive, live) = setup();
        let mut all = entries(&archive);
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        let agent = names.iter().position(|n| n.starts_with("agents/"));
        let config = names.iter().position(|n| *n == "caxton.yaml");
        assert!(agent < config, "the damaged file comes after the agents");
        let config = config.expect("config entry");
        all[config].1 = b"# planted\n".to_vec();
        refused(
            &all,
            &live,
            Limits::default(),
            "caxton.yaml does not match its checksum",
        );
    }

    #[test]
    fn a_backup_of_a_future_format_is_refused_by_name() {
        let (_dir, archive, live) = setup();
        let mut all = entries(&archive);
        edit_manifest(&mut all, |m| {
            m.format = 2;
            m.caxton_version = "9.9.9".into();
        });
        refused(
            &all,
            &live,
            Limits::default(),
            "backup format 2 (written by caxton 9.9.9)",
        );
        let error = restore(
            &live.parent().expect("parent").join("hostile.tar.gz"),
            &targets(&live),
        )
        .expect_err("refused")
        .to_string();
        assert!(error.contains("reads format 1"), "{error}");
    }

    #[test]
    fn what_expands_past_a_cap_is_refused_before_it_is_written() {
        let (_dir, archive, live) = setup();
        let mut all = entries(&archive);
        // 17 MiB of zeros: some 17 KB compressed.
        all.insert(
            2,
            (
                "agents/bomb.md".into(),
                vec![0; (Limits::MAX_SMALL_FILE + 1024 * 1024) as usize],
            ),
        );
        refused(
            &all,
            &live,
            Limits::default(),
            "agents/bomb.md expands to 17825792 bytes (17.0 MiB), which is over the cap of 16777216 bytes (16.0 MiB)",
        );
        let small = Limits {
            max_bytes: 1000,
            ..Limits::default()
        };
        refused(
            &entries(&archive),
            &live,
            small,
            "over the cap of 1000 bytes on a whole backup unpacked (raise it with --max-bytes)",
        );
        let few = Limits {
            max_entries: 2,
            ..Limits::default()
        };
        refused(&entries(&archive), &live, few, "more than 2 entries");
    }

    #[test]
    fn names_a_backup_does_not_write_are_refused() {
        let (_dir, archive, live) = setup();
        for name in [
            "data/.compact-requested",
            "agents/../escape.md",
            "agents/run.sh",
            "/etc/caxton.yaml",
            "other.txt",
            "cluster/state.json",
            "cluster/components/../../caxton.redb",
            "cluster/components/run.sh",
            "cluster/components/ABCDEF.wasm",
        ] {
            let mut all = entries(&archive);
            all.insert(1, (name.to_string(), b"x".to_vec()));
            refused(&all, &live, Limits::default(), "unexpected entry");
        }
    }

    #[test]
    fn a_long_agent_file_name_comes_back() {
        let (dir, archive, _) = setup();
        let name = format!("agents/{}.md", "a".repeat(120));
        let mut all = entries(&archive);
        all.insert(2, (name.clone(), b"# long\n".to_vec()));
        let (bytes, sha256) = crate::backup::hash_reader(&b"# long\n"[..]).expect("hash");
        edit_manifest(&mut all, |m| {
            m.files.push(crate::backup::FileEntry {
                path: name.clone(),
                bytes,
                sha256,
            })
        });
        let archive = dir.path().join("long.tar.gz");
        pack(&all, &archive);
        let fresh = dir.path().join("fresh");
        restore(&archive, &targets(&fresh)).expect("restore");
        assert_eq!(
            std::fs::read(fresh.join(&name)).expect("long name"),
            b"# long\n"
        );
    }

    #[test]
    fn no_configuration_in_the_backup_is_not_reported_as_written() {
        let (dir, archive, _) = setup();
        let mut all = entries(&archive);
        all.retain(|(name, _)| name != "caxton.yaml");
        edit_manifest(&mut all, |m| m.files.retain(|f| f.path != "caxton.yaml"));
        let archive = dir.path().join("no-config.tar.gz");
        pack(&all, &archive);
        let fresh = dir.path().join("fresh");
        let restored = restore(&archive, &targets(&fresh)).expect("restore");
        assert_eq!(restored.config_written, None);
        assert!(!fresh.join("caxton.yaml").exists());
    }

    #[test]
    fn a_database_held_open_is_in_use_and_the_probe_writes_nothing() {
        let (_dir, archive, live) = setup();
        let data = live.join("data");
        let before = std::fs::read(data.join(DATABASE_FILE)).expect("db");
        assert!(!in_use(&data));
        assert_eq!(std::fs::read(data.join(DATABASE_FILE)).expect("db"), before);
        let _held = crate::storage::Storage::open(&data).expect("open");
        assert!(in_use(&data));
        let error = restore(&archive, &targets(&live)).expect_err("in use");
        assert!(matches!(error, BackupError::InUse(_)), "{error}");
    }

    #[test]
    fn a_failed_step_puts_back_what_was_moved() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = |name: &str| dir.path().join(name);
        for name in ["a", "b", "c", "new-a", "new-b", "new-c"] {
            std::fs::write(path(name), name).expect("write");
        }
        let swap = |name: &str, aside: PathBuf| Swap {
            staged: Some(path(&format!("new-{name}"))),
            copied: false,
            dest: path(name),
            aside,
            keep_old: false,
        };
        let swaps = [
            swap("a", path(".a.aside")),
            swap("b", path(".b.aside")),
            // Its old file cannot be moved aside: no such directory.
            swap("c", path("missing/.c.aside")),
        ];
        let error = swap_all(&swaps).expect_err("fails").to_string();
        assert!(error.contains("nothing was changed"), "{error}");
        for name in ["a", "b", "c"] {
            assert_eq!(std::fs::read_to_string(path(name)).expect("read"), name);
        }
        assert!(!path(".a.aside").exists() && !path(".b.aside").exists());
    }
}
