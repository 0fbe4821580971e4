//! Hot reload: watches the agents directory and reloads a file when it is
//! saved (or unloads its agent when it is deleted). Editors save in bursts
//! (truncate, write, rename), so events are gathered for a short quiet
//! period and each file is handled once per burst.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use super::ConfigAgents;

/// Quiet period after the last event of a burst.
const SETTLE: Duration = Duration::from_millis(30);

/// Starts watching; the returned watcher must be kept alive.
pub fn watch(agents: Arc<ConfigAgents>) -> notify::Result<notify::RecommendedWatcher> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        match event {
            // Reads (our own reloads included) are not changes.
            Ok(event) if matches!(event.kind, notify::EventKind::Access(_)) => {}
            Ok(event) => {
                for path in event.paths {
                    if super::is_definition_file(&path) {
                        let _ = tx.send(path);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "agents directory watch error"),
        }
    })?;
    watcher.watch(agents.dir(), RecursiveMode::NonRecursive)?;
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut changed = BTreeSet::from([first]);
            while let Ok(Some(path)) = tokio::time::timeout(SETTLE, rx.recv()).await {
                changed.insert(path);
            }
            for path in changed {
                if path.is_file() {
                    match agents.load_file(&path).await {
                        Ok(handle) => {
                            tracing::info!(agent = %handle.name, file = %path.display(), "config agent reloaded")
                        }
                        Err(problems) => {
                            for p in problems {
                                tracing::warn!(
                                    "rejected edit, previous version keeps serving: {p}"
                                );
                            }
                        }
                    }
                } else {
                    agents.unload(&path).await;
                }
            }
        }
    });
    Ok(watcher)
}
