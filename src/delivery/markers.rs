//! Markers: a colour and a note a user pins on a media item, a segment, a prompt, a run, or one
//! extracted field of a prompt, a run or a result. One marker per (target, field).

use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use super::db::Db;
use crate::error::{Error, Result};
use crate::store::sqlite::now_rfc3339;

/// What a marker can be pinned on.
pub const TARGET_TYPES: [&str; 6] = ["video", "segment", "prompt", "prompt_run", "segment_result", "video_result"];

/// A marker (`mrk_...`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Marker {
    pub marker_id: String,
    /// One of [`TARGET_TYPES`].
    pub target_type: String,
    /// The id of the target; for a result, `<run_id>/<segment_id>` or `<run_id>/<video_id>`.
    pub target_id: String,
    /// A field of the target's schema (`place`, `people.name`); `None`: the target itself.
    pub field_path: Option<String>,
    pub color: Option<String>,
    pub note: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A marker to create or replace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MarkerUpsert {
    pub target_type: String,
    pub target_id: String,
    #[serde(default)]
    pub field_path: Option<String>,
    #[serde(default)]
    pub color: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
}

impl MarkerUpsert {
    pub fn new(target_type: impl Into<String>, target_id: impl Into<String>) -> Self {
        MarkerUpsert { target_type: target_type.into(), target_id: target_id.into(), ..Default::default() }
    }

    pub fn field(mut self, path: impl Into<String>) -> Self {
        self.field_path = Some(path.into());
        self
    }

    pub fn color(mut self, color: impl Into<String>) -> Self {
        self.color = Some(color.into());
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
}

const COLUMNS: &str = "marker_id, target_type, target_id, field_path, color, note, created_at, updated_at";

fn from_row(r: &Row) -> rusqlite::Result<Marker> {
    let field: String = r.get(3)?;
    Ok(Marker {
        marker_id: r.get(0)?,
        target_type: r.get(1)?,
        target_id: r.get(2)?,
        field_path: (!field.is_empty()).then_some(field),
        color: r.get(4)?,
        note: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

/// Check the shape of an upsert (the target's existence is the engine's check).
pub(crate) fn check(m: &MarkerUpsert) -> Result<()> {
    if !TARGET_TYPES.contains(&m.target_type.as_str()) {
        return Err(Error::invalid(
            "target_type",
            format!("{:?}: use one of {}", m.target_type, TARGET_TYPES.join(", ")),
        ));
    }
    if m.target_id.trim().is_empty() {
        return Err(Error::invalid("target_id", "is required"));
    }
    if m.field_path.as_deref().is_some_and(|f| f.trim().is_empty() || f.len() > 256) {
        return Err(Error::invalid("field_path", "must be 1 to 256 characters"));
    }
    if m.field_path.is_some() && matches!(m.target_type.as_str(), "video" | "segment") {
        return Err(Error::invalid("field_path", "applies to prompts, runs and results (extracted fields)"));
    }
    if m.color.as_deref().is_some_and(|c| c.len() > 32) {
        return Err(Error::invalid("color", "must be at most 32 characters"));
    }
    if m.note.as_deref().is_some_and(|n| n.chars().count() > 2000) {
        return Err(Error::invalid("note", "must be at most 2000 characters"));
    }
    let blank = |v: &Option<String>| v.as_deref().is_none_or(|t| t.trim().is_empty());
    if blank(&m.color) && blank(&m.note) {
        return Err(Error::invalid("color", "give a color, a note or both"));
    }
    Ok(())
}

/// Create, or replace the color and note of, the marker of (target, field).
pub(crate) fn upsert(db: &Db, m: &MarkerUpsert) -> Result<Marker> {
    check(m)?;
    let field = m.field_path.clone().unwrap_or_default();
    let now = now_rfc3339();
    let id = crate::ids::new("mrk");
    db.with(|c| {
        c.execute(
            "INSERT INTO markers (marker_id, target_type, target_id, field_path, color, note, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
             ON CONFLICT (target_type, target_id, field_path)
             DO UPDATE SET color = excluded.color, note = excluded.note, updated_at = excluded.updated_at",
            params![id, m.target_type, m.target_id, field, m.color, m.note, now],
        )
    })?;
    db.with(|c| {
        c.query_row(
            &format!("SELECT {COLUMNS} FROM markers WHERE target_type = ?1 AND target_id = ?2 AND field_path = ?3"),
            params![m.target_type, m.target_id, field],
            from_row,
        )
    })
}

/// Markers, optionally of one target type and id, oldest first.
pub(crate) fn list(db: &Db, target_type: Option<&str>, target_id: Option<&str>) -> Result<Vec<Marker>> {
    db.with(|c| {
        let mut stmt = c.prepare(&format!(
            "SELECT {COLUMNS} FROM markers WHERE (?1 IS NULL OR target_type = ?1) AND (?2 IS NULL OR target_id = ?2)
             ORDER BY created_at, marker_id"
        ))?;
        let rows = stmt.query_map(params![target_type, target_id], from_row)?;
        rows.collect()
    })
}

pub(crate) fn get(db: &Db, marker_id: &str) -> Result<Marker> {
    db.with(|c| {
        c.query_row(&format!("SELECT {COLUMNS} FROM markers WHERE marker_id = ?1"), [marker_id], from_row).optional()
    })?
    .ok_or_else(|| Error::not_found("marker", marker_id))
}

pub(crate) fn delete(db: &Db, marker_id: &str) -> Result<()> {
    let n = db.with(|c| c.execute("DELETE FROM markers WHERE marker_id = ?1", [marker_id]))?;
    if n == 0 {
        return Err(Error::not_found("marker", marker_id));
    }
    Ok(())
}
