//! Collections: named sets of processed media items, across indexes (the second platform's
//! `client.collections`). Deleting a collection keeps its media; deleting media drops it from
//! every collection (read paths skip and forget ids whose media is gone).

use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use super::db::{Db, Sql};
use crate::error::{Error, Result};
use crate::store::sqlite::now_rfc3339;

/// A collection (`col_...`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Collection {
    pub collection_id: String,
    pub name: String,
    pub description: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub video_count: u64,
    /// Up to four media items' first keyframes, newest additions first.
    pub thumbnails: Vec<CollectionThumbnail>,
}

/// A keyframe that stands for a collection in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CollectionThumbnail {
    pub video_id: String,
    pub segment_id: String,
    pub path: String,
}

/// One page of a page-numbered listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NumberedPage<T> {
    pub data: Vec<T>,
    /// From 1.
    pub page: u32,
    pub page_size: u32,
    pub total: u64,
}

/// Largest `page_size`.
pub const MAX_PAGE_SIZE: u32 = 100;

pub(crate) fn check_page(page: u32, page_size: u32) -> Result<()> {
    if page == 0 {
        return Err(Error::invalid("page", "counts from 1"));
    }
    if page_size == 0 || page_size > MAX_PAGE_SIZE {
        return Err(Error::invalid("page_size", format!("must be 1 to {MAX_PAGE_SIZE}")));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 255 {
        return Err(Error::invalid("name", "must be 1 to 255 characters"));
    }
    Ok(name.to_string())
}

/// Refuse a name another collection has.
fn free_name(db: &Db, name: &str, except: &str) -> Result<()> {
    let taken: Option<String> = db.with(|c| {
        c.query_row(
            "SELECT collection_id FROM collections WHERE name = ?1 AND collection_id != ?2",
            params![name, except],
            |r| r.get(0),
        )
        .optional()
    })?;
    match taken {
        Some(other) => Err(Error::Conflict(format!("collection {other} is named {name:?} already"))),
        None => Ok(()),
    }
}

pub(crate) struct Row0 {
    pub collection_id: String,
    pub name: String,
    pub description: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

fn row(r: &Row) -> rusqlite::Result<Row0> {
    Ok(Row0 {
        collection_id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        created_at: r.get(3)?,
        updated_at: r.get(4)?,
    })
}

const COLUMNS: &str = "collection_id, name, description, created_at, updated_at";

pub(crate) fn create(db: &Db, name: &str, description: Option<&str>) -> Result<Row0> {
    let name = check_name(name)?;
    free_name(db, &name, "")?;
    let id = crate::ids::new("col");
    let now = now_rfc3339();
    db.with(|c| {
        c.execute(
            "INSERT INTO collections (collection_id, name, description, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
            params![id, name, description, now],
        )
    })?;
    get(db, &id)
}

pub(crate) fn get(db: &Db, id: &str) -> Result<Row0> {
    db.with(|c| {
        c.query_row(&format!("SELECT {COLUMNS} FROM collections WHERE collection_id = ?1"), [id], row).optional()
    })?
    .ok_or_else(|| Error::not_found("collection", id))
}

/// Collections by creation, newest first: one page, and the total.
pub(crate) fn list(db: &Db, page: u32, page_size: u32) -> Result<(Vec<Row0>, u64)> {
    check_page(page, page_size)?;
    db.with(|c| {
        let total: i64 = c.query_row("SELECT COUNT(*) FROM collections", [], |r| r.get(0))?;
        let mut stmt = c.prepare(&format!(
            "SELECT {COLUMNS} FROM collections ORDER BY created_at DESC, collection_id LIMIT ?1 OFFSET ?2"
        ))?;
        let rows = stmt.query_map(params![page_size, (page - 1) * page_size], row)?;
        Ok((rows.collect::<rusqlite::Result<Vec<_>>>()?, total as u64))
    })
}

pub(crate) fn update(db: &Db, id: &str, name: Option<&str>, description: Option<&str>) -> Result<Row0> {
    if name.is_none() && description.is_none() {
        return Err(Error::invalid("name", "give a name or a description to change"));
    }
    let old = get(db, id)?;
    let name = match name {
        Some(n) => check_name(n)?,
        None => old.name,
    };
    free_name(db, &name, id)?;
    let description = description.map(str::to_string).or(old.description);
    db.with(|c| {
        c.execute(
            "UPDATE collections SET name = ?2, description = ?3, updated_at = ?4 WHERE collection_id = ?1",
            params![id, name, description, now_rfc3339()],
        )
    })?;
    get(db, id)
}

pub(crate) fn delete(db: &Db, id: &str) -> Result<()> {
    let n = db.write(|tx| {
        tx.execute("DELETE FROM collection_media WHERE collection_id = ?1", [id]).sql()?;
        tx.execute("DELETE FROM collections WHERE collection_id = ?1", [id]).sql()
    })?;
    if n == 0 {
        return Err(Error::not_found("collection", id));
    }
    Ok(())
}

/// The media ids of a collection, newest additions first.
pub(crate) fn members(db: &Db, id: &str) -> Result<Vec<(String, String)>> {
    db.with(|c| {
        let mut stmt = c.prepare(
            "SELECT video_id, added_at FROM collection_media WHERE collection_id = ?1 ORDER BY added_at DESC, video_id",
        )?;
        let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect()
    })
}

pub(crate) fn add(db: &Db, id: &str, video_id: &str) -> Result<()> {
    get(db, id)?;
    let n = db.with(|c| {
        c.execute(
            "INSERT OR IGNORE INTO collection_media (collection_id, video_id, added_at) VALUES (?1, ?2, ?3)",
            params![id, video_id, now_rfc3339()],
        )
    })?;
    if n == 0 {
        return Err(Error::Conflict(format!("media {video_id} is already in collection {id}")));
    }
    Ok(())
}

pub(crate) fn remove(db: &Db, id: &str, video_id: &str) -> Result<()> {
    get(db, id)?;
    let n = db.with(|c| {
        c.execute("DELETE FROM collection_media WHERE collection_id = ?1 AND video_id = ?2", params![id, video_id])
    })?;
    if n == 0 {
        return Err(Error::not_found("collection media", format!("{video_id} in {id}")));
    }
    Ok(())
}

/// Forget a media item that no longer exists, in every collection.
pub(crate) fn forget(db: &Db, video_id: &str) -> Result<()> {
    db.with(|c| c.execute("DELETE FROM collection_media WHERE video_id = ?1", [video_id]))?;
    Ok(())
}
