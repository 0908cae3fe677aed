//! Vector rows in the catalog: the source of truth that ANN files are rebuilt from.

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::Catalog;
use crate::embed::ModelRef;
use crate::error::{Error, Result};

/// An embedding space: what a vector describes and which kind of query it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Space {
    /// Keyframes, by the image tower of an image-text model (CLIP).
    Visual,
    /// What was said in a segment, by the sentence encoder.
    Transcript,
    /// Prompt-run metadata rendered as text, by the sentence encoder.
    Metadata,
}

impl Space {
    pub const ALL: [Space; 3] = [Space::Visual, Space::Transcript, Space::Metadata];

    pub fn as_str(self) -> &'static str {
        match self {
            Space::Visual => "visual",
            Space::Transcript => "transcript",
            Space::Metadata => "metadata",
        }
    }
}

/// The ANN scope of media: its index id, or `""` for playground media.
pub fn scope_of(index_id: Option<&str>) -> &str {
    index_id.unwrap_or("")
}

/// A vector to store for a segment.
#[derive(Debug, Clone)]
pub struct NewVector<'a> {
    pub segment_id: &'a str,
    pub vector: &'a [f32],
    /// The text that was embedded (transcript and metadata spaces).
    pub source_text: Option<&'a str>,
}

/// Count, wrapping sum and largest key of a space's vectors: what an ANN file must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fingerprint {
    pub count: u64,
    pub key_sum: u64,
    pub max_key: u64,
}

/// A stored vector with what made it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredVector {
    pub segment_id: String,
    pub space: Space,
    pub model: ModelRef,
    pub vector: Vec<f32>,
}

/// What a search hit needs from the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct HitRow {
    pub vector_id: u64,
    pub segment_id: String,
    pub video_id: String,
    pub run_id: Option<String>,
    pub start_us: i64,
    pub end_us: i64,
    pub thumbnail_path: Option<String>,
    pub vector: Vec<f32>,
    pub source_text: Option<String>,
}

pub(crate) fn to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn from_blob(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

impl Catalog {
    /// The model a scope's space was embedded with, if it has vectors.
    pub fn space_model(&self, scope: &str, space: Space) -> Result<Option<ModelRef>> {
        self.conn()
            .query_row(
                "SELECT model_id, model_revision, dims FROM space_models WHERE scope = ?1 AND space = ?2",
                params![scope, space.as_str()],
                |r| Ok(ModelRef { id: r.get(0)?, revision: r.get(1)?, dims: r.get::<_, i64>(2)? as usize }),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Store vectors of one scope and space made by `model`, replacing a segment's earlier vector.
    /// Refused when the space already holds vectors of another model. Returns the new keys.
    pub fn insert_vectors(
        &self,
        scope: &str,
        space: Space,
        model: &ModelRef,
        rows: &[NewVector<'_>],
    ) -> Result<Vec<u64>> {
        if let Some(bad) = rows.iter().find(|r| r.vector.len() != model.dims) {
            return Err(Error::ModelMismatch(format!(
                "a vector for {} has {} dimensions, {} makes {}",
                bad.segment_id,
                bad.vector.len(),
                model.id,
                model.dims
            )));
        }
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let recorded: Option<(String, String, i64)> = tx
            .query_row(
                "SELECT model_id, model_revision, dims FROM space_models WHERE scope = ?1 AND space = ?2",
                params![scope, space.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        match recorded {
            Some((id, rev, _)) if id != model.id || rev != model.revision => {
                let have: i64 = tx
                    .query_row(
                        "SELECT count(*) FROM vectors WHERE scope = ?1 AND space = ?2",
                        params![scope, space.as_str()],
                        |r| r.get(0),
                    )
                    .map_err(|e| self.err(e))?;
                if have > 0 {
                    return Err(Error::ModelMismatch(format!(
                        "the {} vectors of {} were made by {id} ({rev}); {} ({}) cannot add to them. \
                         Use the same model, or re-embed the index with `videovector embed --reembed`",
                        space.as_str(),
                        scope_label(scope),
                        model.id,
                        model.revision
                    )));
                }
                tx.execute(
                    "UPDATE space_models SET model_id = ?3, model_revision = ?4, dims = ?5 WHERE scope = ?1 AND space = ?2",
                    params![scope, space.as_str(), model.id, model.revision, model.dims as i64],
                )
                .map_err(|e| self.err(e))?;
            }
            Some(_) => {}
            None => {
                tx.execute(
                    "INSERT INTO space_models (scope, space, model_id, model_revision, dims) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![scope, space.as_str(), model.id, model.revision, model.dims as i64],
                )
                .map_err(|e| self.err(e))?;
            }
        }
        let mut keys = Vec::with_capacity(rows.len());
        {
            let mut del =
                tx.prepare("DELETE FROM vectors WHERE segment_id = ?1 AND space = ?2").map_err(|e| self.err(e))?;
            let mut ins = tx
                .prepare(
                    "INSERT INTO vectors (segment_id, scope, space, model_id, model_revision, dims, vector, source_text)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(|e| self.err(e))?;
            for r in rows {
                del.execute(params![r.segment_id, space.as_str()]).map_err(|e| self.err(e))?;
                ins.execute(params![
                    r.segment_id,
                    scope,
                    space.as_str(),
                    model.id,
                    model.revision,
                    model.dims as i64,
                    to_blob(r.vector),
                    r.source_text
                ])
                .map_err(|e| self.err(e))?;
                keys.push(tx.last_insert_rowid() as u64);
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(keys)
    }

    /// Delete every vector of a scope's space (before re-embedding it with another model).
    pub fn delete_space(&self, scope: &str, space: Space) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        for sql in [
            "DELETE FROM vectors WHERE scope = ?1 AND space = ?2",
            "DELETE FROM space_models WHERE scope = ?1 AND space = ?2",
            "DELETE FROM ann_files WHERE scope = ?1 AND space = ?2",
        ] {
            tx.execute(sql, params![scope, space.as_str()]).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// What the vectors of a scope's space add up to now.
    pub fn fingerprint(&self, scope: &str, space: Space) -> Result<Fingerprint> {
        // Sum the keys in Rust: SQLite's sum() is an error on 64-bit overflow, and wrapping is enough.
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT vector_id FROM vectors WHERE scope = ?1 AND space = ?2")
            .map_err(|e| self.err(e))?;
        let keys = stmt.query_map(params![scope, space.as_str()], |r| r.get::<_, i64>(0)).map_err(|e| self.err(e))?;
        let mut fp = Fingerprint::default();
        for k in keys {
            let k = k.map_err(|e| self.err(e))? as u64;
            fp.count += 1;
            fp.key_sum = fp.key_sum.wrapping_add(k);
            fp.max_key = fp.max_key.max(k);
        }
        Ok(fp)
    }

    /// The fingerprint recorded when a scope's ANN file was last saved.
    pub fn ann_fingerprint(&self, scope: &str, space: Space) -> Result<Option<Fingerprint>> {
        self.conn()
            .query_row(
                "SELECT count, key_sum, max_key FROM ann_files WHERE scope = ?1 AND space = ?2",
                params![scope, space.as_str()],
                |r| {
                    Ok(Fingerprint {
                        count: r.get::<_, i64>(0)? as u64,
                        key_sum: r.get::<_, i64>(1)? as u64,
                        max_key: r.get::<_, i64>(2)? as u64,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn set_ann_fingerprint(&self, scope: &str, space: Space, fp: Fingerprint) -> Result<()> {
        self.conn()
            .execute(
                "INSERT INTO ann_files (scope, space, count, key_sum, max_key) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (scope, space) DO UPDATE SET count = ?3, key_sum = ?4, max_key = ?5",
                params![scope, space.as_str(), fp.count as i64, fp.key_sum as i64, fp.max_key as i64],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every (key, vector) of a scope's space, for rebuilding its ANN index.
    pub fn space_vectors(&self, scope: &str, space: Space) -> Result<Vec<(u64, Vec<f32>)>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT vector_id, vector FROM vectors WHERE scope = ?1 AND space = ?2 ORDER BY vector_id")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![scope, space.as_str()], |r| {
                Ok((r.get::<_, i64>(0)? as u64, from_blob(&r.get::<_, Vec<u8>>(1)?)))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }

    /// Catalog rows behind ANN keys, in the order of `keys` (unknown keys are skipped).
    pub fn hit_rows(&self, keys: &[u64]) -> Result<Vec<HitRow>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT v.vector_id, s.segment_id, s.video_id, s.run_id, s.start_us, s.end_us, s.thumbnail_path, v.vector, v.source_text
                 FROM vectors v JOIN segments s ON s.segment_id = v.segment_id WHERE v.vector_id = ?1",
            )
            .map_err(|e| self.err(e))?;
        let mut out = Vec::with_capacity(keys.len());
        for &k in keys {
            let row = stmt
                .query_row([k as i64], |r| {
                    let run_id: String = r.get(3)?;
                    Ok(HitRow {
                        vector_id: r.get::<_, i64>(0)? as u64,
                        segment_id: r.get(1)?,
                        video_id: r.get(2)?,
                        run_id: (!run_id.is_empty()).then_some(run_id),
                        start_us: r.get(4)?,
                        end_us: r.get(5)?,
                        thumbnail_path: r.get(6)?,
                        vector: from_blob(&r.get::<_, Vec<u8>>(7)?),
                        source_text: r.get(8)?,
                    })
                })
                .optional()
                .map_err(|e| self.err(e))?;
            out.extend(row);
        }
        Ok(out)
    }

    /// Vectors of one media item, by space, then in timeline order.
    pub fn media_vectors(&self, video_id: &str) -> Result<Vec<StoredVector>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT v.segment_id, v.space, v.model_id, v.model_revision, v.dims, v.vector FROM vectors v
                 JOIN segments s ON s.segment_id = v.segment_id WHERE s.video_id = ?1 ORDER BY v.space, s.kind, s.ordinal",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([video_id], |r| {
                let space: String = r.get(1)?;
                Ok(StoredVector {
                    segment_id: r.get(0)?,
                    space: Space::ALL.into_iter().find(|s| s.as_str() == space).unwrap_or(Space::Visual),
                    model: ModelRef { id: r.get(2)?, revision: r.get(3)?, dims: r.get::<_, i64>(4)? as usize },
                    vector: from_blob(&r.get::<_, Vec<u8>>(5)?),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }

    /// Completed video segments of a scope (or of every scope) that have no vector in `space`:
    /// (scope, segment id, thumbnail path).
    pub fn segments_without_vectors(
        &self,
        scope: Option<&str>,
        space: Space,
    ) -> Result<Vec<(String, String, Option<String>)>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT coalesce(m.index_id, ''), s.segment_id, s.thumbnail_path FROM segments s JOIN media m ON m.video_id = s.video_id
                 WHERE m.status = 'completed' AND s.kind = 'video' AND (?1 IS NULL OR coalesce(m.index_id, '') = ?1)
                 AND NOT EXISTS (SELECT 1 FROM vectors v WHERE v.segment_id = s.segment_id AND v.space = ?2)
                 ORDER BY m.rowid, s.ordinal",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![scope, space.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }

    /// Scopes (index ids, `""` for the playground) that hold vectors in `space`.
    pub fn scopes_with_vectors(&self, space: Space) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT DISTINCT scope FROM vectors WHERE space = ?1 ORDER BY scope")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([space.as_str()], |r| r.get(0)).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }
}

fn scope_label(scope: &str) -> String {
    if scope.is_empty() {
        "the playground".to_string()
    } else {
        format!("index {scope}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_round_trip() {
        let v = vec![0.5f32, -1.25, 3.0e-8, f32::MAX];
        assert_eq!(from_blob(&to_blob(&v)), v);
    }
}
