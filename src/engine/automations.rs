//! `engine.automations()`: an index's import and export automations, and the driver that runs
//! them on the engine's webhook dispatcher thread.
//!
//! Import: the connector's files that no earlier import brought in are listed (a local folder is
//! watched with `notify` and listed again when it changes; other storage is listed every
//! minute, or every debounce interval when shorter); once that set is non-empty and has not
//! changed for the debounce interval, an import of only new files starts, one at a time, and
//! when it ends a run of the preset prompt covers its media. Export: each run of the index that
//! completes is exported to the destination connector.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::Watcher;
use serde_json::Value;

use super::Engine;
use crate::delivery::automations::{self as store, parse_interval};
use crate::delivery::{imports, ExportAutomation, ExportRequest, ImportAutomation, ImportRequest, Provider};
use crate::error::{Error, Result};
use crate::store::sqlite::now_rfc3339;
use crate::types::{EventType, RunRequest, RunTarget};

/// `client.indexes.automations`: import and export automations of an index.
pub struct Automations<'a> {
    engine: &'a Engine,
}

impl<'a> Automations<'a> {
    pub(crate) fn new(engine: &'a Engine) -> Self {
        Automations { engine }
    }

    fn index_id(&self, index: &str) -> Result<String> {
        Ok(self.engine.stores().catalog.index(index)?.index_id.to_string())
    }

    /// The saved import automation of an index (404 when none was saved).
    pub fn import(&self, index: &str) -> Result<ImportAutomation> {
        let id = self.index_id(index)?;
        store::get_import(&self.engine.core().delivery, &id)?.ok_or_else(|| Error::not_found("import automation", id))
    }

    /// Create or replace the import automation of `a.index_id`.
    pub fn put_import(&self, mut a: ImportAutomation) -> Result<ImportAutomation> {
        a.index_id = self.index_id(&a.index_id)?;
        let c = self.engine.connectors().retrieve(&a.connector_id)?;
        if !c.scopes.iter().any(|s| s == "import") {
            return Err(Error::invalid("connector_id", format!("connector {} has no import scope", c.connector_id)));
        }
        if let Some(prompt) = a.prompt_preset.as_ref().and_then(|p| p.get("prompt_id")).and_then(Value::as_str) {
            self.engine.prompts().get(prompt)?;
        }
        store::put_import(&self.engine.core().delivery, a)
    }

    pub fn export(&self, index: &str) -> Result<ExportAutomation> {
        let id = self.index_id(index)?;
        store::get_export(&self.engine.core().delivery, &id)?.ok_or_else(|| Error::not_found("export automation", id))
    }

    /// Create or replace the export automation of `a.index_id`; runs completed from now on are
    /// exported.
    pub fn put_export(&self, mut a: ExportAutomation) -> Result<ExportAutomation> {
        a.index_id = self.index_id(&a.index_id)?;
        let c = self.engine.connectors().retrieve(&a.destination_connector_id)?;
        if !c.scopes.iter().any(|s| s == "export") {
            return Err(Error::invalid(
                "destination_connector_id",
                format!("connector {} has no export scope", c.connector_id),
            ));
        }
        let cursor = self.engine.stores().events.last_event_id()?;
        store::put_export(&self.engine.core().delivery, a, cursor)
    }

    /// Pause (`true`) or resume an automation (`kind`: `import` or `export`); the configuration stays.
    pub fn set_paused(&self, index: &str, kind: &str, paused: bool) -> Result<()> {
        let id = self.index_id(index)?;
        store::set_paused(&self.engine.core().delivery, &id, kind, paused)
    }
}

/// A watched local folder: set when anything under it changes.
struct Watch {
    folder: PathBuf,
    changed: Arc<AtomicBool>,
    _watcher: notify::RecommendedWatcher,
}

/// What the driver remembers between ticks (per index).
#[derive(Default)]
pub(crate) struct Driver {
    watches: HashMap<String, Watch>,
    listed: HashMap<String, Instant>,
    /// Fingerprint of the new files last seen, and since when it is unchanged.
    pending: HashMap<String, (u64, Instant)>,
}

/// Longest wait between two listings of a source.
const POLL: Duration = Duration::from_secs(60);

impl Driver {
    /// One pass over every automation. Errors are kept on the automation (`last_error`).
    pub fn tick(&mut self, engine: &Engine) {
        let db = &engine.core().delivery;
        for mut a in store::all_imports(db).unwrap_or_default() {
            if !a.enabled || a.paused {
                self.watches.remove(&a.index_id);
                continue;
            }
            let before = a.clone();
            if let Err(e) = self.import_step(engine, &mut a) {
                a.last_error = Some(e.to_string());
            }
            if a != before {
                let _ = store::save_import_state(db, &a);
            }
        }
        for mut a in store::all_exports(db).unwrap_or_default() {
            if !a.enabled || a.paused {
                continue;
            }
            let before = a.clone();
            if let Err(e) = export_step(engine, &mut a) {
                a.last_error = Some(e.to_string());
            }
            if a != before {
                let _ = store::save_export_state(db, &a);
            }
        }
    }

    fn import_step(&mut self, engine: &Engine, a: &mut ImportAutomation) -> Result<()> {
        let core = engine.core();
        // One import at a time; the preset run starts when it has ended.
        if let Some(last) = a.last_import_id.clone() {
            let job = engine.imports().retrieve(&last)?;
            if !matches!(job.status.as_str(), "completed" | "failed" | "cancelled") {
                return Ok(());
            }
            if let (Some(preset), None, false) = (&a.prompt_preset, &job.execution_run_id, job.video_ids.is_empty()) {
                let run = engine.prompt_runs().execute(&preset_request(preset, &a.index_id, &job.video_ids)?, None)?;
                imports::set_execution(&core.delivery, &last, &run.run_id)?;
                a.last_run_id = Some(run.run_id.to_string());
            }
        }
        let debounce = parse_interval(&a.debounce_interval)?;
        let connector = engine.connectors().retrieve(&a.connector_id)?;
        let mut changed = false;
        if connector.provider == Provider::Local {
            let folder = PathBuf::from(connector.path.clone().unwrap_or_default()).join(&a.source_prefix);
            if self.watches.get(&a.index_id).is_none_or(|w| w.folder != folder) {
                self.watches.insert(a.index_id.clone(), watch(&folder, a.recursive)?);
                changed = true;
            }
            changed |= self.watches[&a.index_id].changed.swap(false, Ordering::Relaxed);
        }
        let poll = if connector.provider == Provider::Local { POLL } else { debounce.min(POLL) };
        let due = self.listed.get(&a.index_id).is_none_or(|t| t.elapsed() >= poll);
        if changed || due {
            let files = engine.connectors().browse(&a.connector_id, &a.source_prefix, &a.file_pattern, a.recursive)?;
            let mut hasher = DefaultHasher::new();
            let mut new = 0;
            for f in &files {
                if imports::already_imported(&core.delivery, &core.stores, &a.connector_id, f)?.is_none() {
                    (&f.path, f.size_bytes, &f.last_modified).hash(&mut hasher);
                    new += 1;
                }
            }
            let fingerprint = if new == 0 { 0 } else { hasher.finish() | 1 };
            if self.pending.get(&a.index_id).is_none_or(|(fp, _)| *fp != fingerprint) {
                self.pending.insert(a.index_id.clone(), (fingerprint, Instant::now()));
            }
            self.listed.insert(a.index_id.clone(), Instant::now());
            a.last_checked_at = Some(now_rfc3339());
            a.last_error = None;
        }
        if let Some((fp, since)) = self.pending.get(&a.index_id) {
            if *fp != 0 && since.elapsed() >= debounce {
                let mut req = ImportRequest::new(&a.connector_id, &a.index_id)
                    .prefix(&a.source_prefix)
                    .pattern(&a.file_pattern)
                    .recursive(a.recursive);
                req.only_new = true;
                let job = engine.imports().create(&req)?;
                a.last_import_id = Some(job.job_id);
                a.last_run_id = None;
                self.pending.remove(&a.index_id);
                self.listed.remove(&a.index_id);
            }
        }
        Ok(())
    }
}

/// Watch `folder` (and below it when `recursive`).
fn watch(folder: &std::path::Path, recursive: bool) -> Result<Watch> {
    let changed = Arc::new(AtomicBool::new(false));
    let flag = changed.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            flag.store(true, Ordering::Relaxed);
        }
    })
    .map_err(|e| Error::remote(folder.display().to_string(), format!("cannot watch the folder: {e}")))?;
    let mode = if recursive { notify::RecursiveMode::Recursive } else { notify::RecursiveMode::NonRecursive };
    watcher
        .watch(folder, mode)
        .map_err(|e| Error::remote(folder.display().to_string(), format!("cannot watch the folder: {e}")))?;
    Ok(Watch { folder: folder.to_path_buf(), changed, _watcher: watcher })
}

/// The preset's run request over these media: `prompt_id` and any run options of the preset.
fn preset_request(preset: &Value, index_id: &str, video_ids: &[String]) -> Result<RunRequest> {
    let prompt_id = preset.get("prompt_id").and_then(Value::as_str).unwrap_or_default();
    let base = RunRequest::new(
        prompt_id,
        RunTarget::Videos { video_ids: video_ids.to_vec(), index_id: Some(index_id.to_string()) },
    );
    let mut v = serde_json::to_value(&base).map_err(|e| Error::Internal(e.to_string()))?;
    for (k, val) in preset.as_object().into_iter().flatten() {
        if k != "prompt_id" && k != "target" {
            v[k] = val.clone();
        }
    }
    serde_json::from_value(v).map_err(|e| Error::invalid("prompt_preset", e.to_string()))
}

fn export_step(engine: &Engine, a: &mut ExportAutomation) -> Result<()> {
    let events = engine.stores().events.events_since(a.cursor, 500)?;
    for e in &events {
        let run = e.run_id.as_deref().filter(|_| e.event_type == EventType::PromptRunCompleted);
        // Run events name the run; its index is the run's.
        let ours = run.is_some_and(|r| {
            let index = e.index_id.clone().or_else(|| engine.stores().prompts.run(r).ok().and_then(|r| r.index_id));
            index.is_some_and(|i| i.as_str() == a.index_id)
        });
        if let (true, Some(run)) = (ours, run) {
            let req =
                ExportRequest::prompt_run(run).to_connector(&a.destination_connector_id, a.destination_subpath.clone());
            match engine.exports().create(&req) {
                Ok(x) => {
                    a.last_export_id = Some(x.export_id);
                    a.last_error = None;
                }
                Err(err) => a.last_error = Some(format!("run {run}: {err}")),
            }
        }
        a.cursor = e.event_id;
    }
    Ok(())
}
