//! Automations of an index, as stored: an import automation (a connector's new files imported,
//! then a preset prompt run over them) and an export automation (each completed run of the
//! index exported to a connector). What drives them is `engine::automations`.

use std::time::Duration;

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::db::Db;
use crate::error::{Error, Result};
use crate::store::sqlite::now_rfc3339;

/// The import automation of an index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ImportAutomation {
    pub index_id: String,
    /// Whether it is configured to run at all.
    pub enabled: bool,
    /// A temporary stop that keeps the configuration.
    pub paused: bool,
    pub connector_id: String,
    #[serde(default)]
    pub source_prefix: String,
    #[serde(default = "star")]
    pub file_pattern: String,
    #[serde(default = "yes")]
    pub recursive: bool,
    /// How long the source must stay unchanged after new files appear before they are imported:
    /// the API's `5m`, `10m`, `1h` or `1d` (the library takes any `<n>s|m|h|d`).
    pub debounce_interval: String,
    /// A prompt run over each import's media: `{"prompt_id": ...}` plus any run options
    /// (`video_segmentation_type`, ...).
    pub prompt_preset: Option<Value>,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub updated_at: String,
    /// The newest import it started.
    #[serde(default)]
    pub last_import_id: Option<String>,
    /// The run it started over that import's media.
    #[serde(default)]
    pub last_run_id: Option<String>,
    #[serde(default)]
    pub last_checked_at: Option<String>,
    #[serde(default)]
    pub last_error: Option<String>,
}

fn star() -> String {
    "*".into()
}
fn yes() -> bool {
    true
}

impl ImportAutomation {
    pub fn new(
        index_id: impl Into<String>,
        connector_id: impl Into<String>,
        debounce_interval: impl Into<String>,
    ) -> Self {
        ImportAutomation {
            index_id: index_id.into(),
            enabled: true,
            paused: false,
            connector_id: connector_id.into(),
            source_prefix: String::new(),
            file_pattern: star(),
            recursive: true,
            debounce_interval: debounce_interval.into(),
            prompt_preset: None,
            created_at: String::new(),
            updated_at: String::new(),
            last_import_id: None,
            last_run_id: None,
            last_checked_at: None,
            last_error: None,
        }
    }

    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.source_prefix = prefix.into();
        self
    }

    pub fn pattern(mut self, pattern: impl Into<String>) -> Self {
        self.file_pattern = pattern.into();
        self
    }

    pub fn prompt_preset(mut self, preset: Value) -> Self {
        self.prompt_preset = Some(preset);
        self
    }
}

/// The export automation of an index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ExportAutomation {
    pub index_id: String,
    pub enabled: bool,
    pub paused: bool,
    pub destination_connector_id: String,
    pub destination_subpath: Option<String>,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub updated_at: String,
    #[serde(default)]
    pub last_export_id: Option<String>,
    #[serde(default)]
    pub last_error: Option<String>,
    /// The event log position it has read up to (runs completed before it was saved are not
    /// exported).
    #[serde(default)]
    pub cursor: u64,
}

impl ExportAutomation {
    pub fn new(index_id: impl Into<String>, connector_id: impl Into<String>, subpath: Option<String>) -> Self {
        ExportAutomation {
            index_id: index_id.into(),
            enabled: true,
            paused: false,
            destination_connector_id: connector_id.into(),
            destination_subpath: subpath,
            created_at: String::new(),
            updated_at: String::new(),
            last_export_id: None,
            last_error: None,
            cursor: 0,
        }
    }
}

/// `5m`, `10m`, `1h`, `1d` (and any `<n>s|m|h|d` of at least one second).
pub fn parse_interval(text: &str) -> Result<Duration> {
    let bad = || Error::invalid("debounce_interval", format!("{text:?}: use 5m, 10m, 1h or 1d"));
    let t = text.trim();
    let (n, unit) = t.split_at(t.len().saturating_sub(1));
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(bad()),
    };
    if secs == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(secs))
}

fn load<T: for<'de> Deserialize<'de>>(db: &Db, index_id: &str, kind: &str) -> Result<Option<T>> {
    let text: Option<String> = db.with(|c| {
        c.query_row("SELECT config FROM automations WHERE index_id = ?1 AND kind = ?2", params![index_id, kind], |r| {
            r.get(0)
        })
        .optional()
    })?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| Error::Store(format!("automation of {index_id}: {e}"))))
        .transpose()
}

fn save<T: Serialize>(db: &Db, index_id: &str, kind: &str, value: &T) -> Result<()> {
    let text = serde_json::to_string(value).map_err(|e| Error::Internal(e.to_string()))?;
    db.with(|c| {
        c.execute(
            "INSERT INTO automations (index_id, kind, config) VALUES (?1, ?2, ?3)
             ON CONFLICT (index_id, kind) DO UPDATE SET config = excluded.config",
            params![index_id, kind, text],
        )
    })?;
    Ok(())
}

pub(crate) fn get_import(db: &Db, index_id: &str) -> Result<Option<ImportAutomation>> {
    load(db, index_id, "import")
}

pub(crate) fn get_export(db: &Db, index_id: &str) -> Result<Option<ExportAutomation>> {
    load(db, index_id, "export")
}

/// Store an import automation (its run state is kept from the one it replaces).
pub(crate) fn put_import(db: &Db, mut a: ImportAutomation) -> Result<ImportAutomation> {
    parse_interval(&a.debounce_interval)?;
    super::glob("file_pattern", &a.file_pattern)?;
    a.source_prefix = super::relative_path("source_prefix", &a.source_prefix)?;
    if let Some(p) = &a.prompt_preset {
        if p.get("prompt_id").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(Error::invalid("prompt_preset", "needs a prompt_id"));
        }
    }
    let now = now_rfc3339();
    let old = get_import(db, &a.index_id)?;
    a.created_at = old.as_ref().map_or_else(|| now.clone(), |o| o.created_at.clone());
    a.updated_at = now;
    if let Some(o) = old {
        (a.last_import_id, a.last_run_id, a.last_checked_at) = (o.last_import_id, o.last_run_id, o.last_checked_at);
    }
    save(db, &a.index_id.clone(), "import", &a)?;
    Ok(a)
}

pub(crate) fn put_export(db: &Db, mut a: ExportAutomation, cursor: u64) -> Result<ExportAutomation> {
    a.destination_subpath = a
        .destination_subpath
        .as_deref()
        .map(|s| super::relative_path("destination_subpath", s))
        .transpose()?
        .filter(|s| !s.is_empty());
    let now = now_rfc3339();
    let old = get_export(db, &a.index_id)?;
    a.created_at = old.as_ref().map_or_else(|| now.clone(), |o| o.created_at.clone());
    a.updated_at = now;
    a.cursor = old.as_ref().map_or(cursor, |o| o.cursor);
    a.last_export_id = old.and_then(|o| o.last_export_id);
    save(db, &a.index_id.clone(), "export", &a)?;
    Ok(a)
}

/// Record the driver's progress on an automation it read (no other fields change).
pub(crate) fn save_import_state(db: &Db, a: &ImportAutomation) -> Result<()> {
    save(db, &a.index_id, "import", a)
}

pub(crate) fn save_export_state(db: &Db, a: &ExportAutomation) -> Result<()> {
    save(db, &a.index_id, "export", a)
}

pub(crate) fn set_paused(db: &Db, index_id: &str, kind: &str, paused: bool) -> Result<()> {
    let missing =
        || Error::not_found(if kind == "import" { "import automation" } else { "export automation" }, index_id);
    match kind {
        "import" => {
            let mut a = get_import(db, index_id)?.ok_or_else(missing)?;
            a.paused = paused;
            a.updated_at = now_rfc3339();
            save(db, index_id, kind, &a)
        }
        _ => {
            let mut a = get_export(db, index_id)?.ok_or_else(missing)?;
            a.paused = paused;
            a.updated_at = now_rfc3339();
            save(db, index_id, kind, &a)
        }
    }
}

/// Every automation of one kind.
pub(crate) fn all_imports(db: &Db) -> Result<Vec<ImportAutomation>> {
    all(db, "import")
}

pub(crate) fn all_exports(db: &Db) -> Result<Vec<ExportAutomation>> {
    all(db, "export")
}

fn all<T: for<'de> Deserialize<'de>>(db: &Db, kind: &str) -> Result<Vec<T>> {
    let texts: Vec<String> = db.with(|c| {
        let mut stmt = c.prepare("SELECT config FROM automations WHERE kind = ?1 ORDER BY index_id")?;
        let rows = stmt.query_map([kind], |r| r.get(0))?;
        rows.collect()
    })?;
    Ok(texts.iter().filter_map(|t| serde_json::from_str(t).ok()).collect())
}
