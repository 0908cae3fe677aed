//! Transcript phrases in the catalog, with an FTS5 index for keyword search.

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::Catalog;
use crate::embed::ModelRef;
use crate::error::Result;

/// A stored phrase: the API's transcript item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredPhrase {
    /// Seconds from the start of the media.
    pub start: f64,
    pub end: f64,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// A phrase to store, in microseconds from the start of the media.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPhrase {
    pub window_segment_id: Option<String>,
    pub start_us: i64,
    pub end_us: i64,
    pub text: String,
    pub language: Option<String>,
}

/// A keyword hit: the phrase and its BM25 rank value (lower is better, as SQLite reports it).
#[derive(Debug, Clone, PartialEq)]
pub struct KeywordHit {
    pub video_id: String,
    pub start_us: i64,
    pub end_us: i64,
    pub text: String,
    pub bm25: f64,
}

impl Catalog {
    /// Replace the transcript of a media item.
    pub fn set_phrases(&self, video_id: &str, model: &ModelRef, phrases: &[NewPhrase]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        tx.execute("DELETE FROM phrases WHERE video_id = ?1", [video_id]).map_err(|e| self.err(e))?;
        {
            let mut ins = tx
                .prepare(
                    "INSERT INTO phrases (video_id, window_segment_id, start_us, end_us, text, language, model_id, model_revision)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(|e| self.err(e))?;
            for p in phrases {
                ins.execute(params![
                    video_id,
                    p.window_segment_id,
                    p.start_us,
                    p.end_us,
                    p.text,
                    p.language,
                    model.id,
                    model.revision
                ])
                .map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// The transcript of a media item in time order.
    pub fn phrases(&self, video_id: &str) -> Result<Vec<StoredPhrase>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT start_us, end_us, text, language FROM phrases WHERE video_id = ?1 ORDER BY start_us, phrase_id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([video_id], |r| {
                Ok(StoredPhrase {
                    start: crate::segment::us_to_secs(r.get(0)?),
                    end: crate::segment::us_to_secs(r.get(1)?),
                    text: r.get(2)?,
                    language: r.get(3)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }

    /// Phrases of media in `scope` (index id, `""` for the playground) matching every word of
    /// `query`, best BM25 first.
    pub fn keyword_phrases(&self, scope: &str, query: &str, limit: usize) -> Result<Vec<KeywordHit>> {
        // Each word is quoted, so the query is words, not FTS5 syntax from the user.
        let fts: Vec<String> = query
            .split(|c: char| !c.is_alphanumeric() && c != '\'')
            .filter(|w| !w.is_empty())
            .map(|w| format!("\"{}\"", w.replace('"', "")))
            .collect();
        if fts.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT p.video_id, p.start_us, p.end_us, p.text, bm25(phrases_fts) FROM phrases_fts
                 JOIN phrases p ON p.phrase_id = phrases_fts.rowid JOIN media m ON m.video_id = p.video_id
                 WHERE phrases_fts MATCH ?1 AND coalesce(m.index_id, '') = ?2 ORDER BY bm25(phrases_fts), p.phrase_id LIMIT ?3",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![fts.join(" "), scope, limit as i64], |r| {
                Ok(KeywordHit {
                    video_id: r.get(0)?,
                    start_us: r.get(1)?,
                    end_us: r.get(2)?,
                    text: r.get(3)?,
                    bm25: r.get(4)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }
}
