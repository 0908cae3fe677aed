//! Vectors in SQLite (the truth) and a usearch index per (scope, space) kept in step with them.
//!
//! Every insert or delete of a vector row bumps its space's `generation` (triggers, so cascades
//! from deleted segments count too). A loaded index remembers the generation it reflects; a
//! search that finds another generation in the catalog (a write by this process or any other)
//! first brings the index up to date by comparing key sets, adding and removing only what
//! changed. An index is never rebuilt for a delete.
//!
//! Locking: each index sits behind an `RwLock`. Searches share it; adds, removes and `reserve`
//! (which usearch requires to run alone) take it exclusively.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use rusqlite::{params, Connection, OptionalExtension};

use super::ann::{AnnConfig, AnnIndex};
use super::filter::{passing_keys, result_vectors, results_generation};
use super::{scope_from_key, scope_key, Sql, SqliteStore};
use crate::error::{Error, Result};
use crate::ids::{SegmentId, VideoId};
use crate::store::{Candidates, NewVector, ResultFilter, StoredVector, VectorHit, VectorStore};
use crate::types::{ModelRef, Scope, Space};

type SpaceKey = (String, Space);

thread_local! {
    /// Full builds of an ANN index from the catalog's rows made by this thread (what deletes and
    /// writes by other processes must not cause). Per thread, so that a test can count its own.
    pub(crate) static FULL_BUILDS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// A loaded index, the keys it holds and the generation of the catalog it reflects.
struct Loaded {
    index: AnnIndex,
    keys: HashSet<u64>,
    generation: i64,
}

/// `(vector key, result id)` of a (scope, space) for one set of runs and scopes, with the vector
/// and result generations it was read at.
pub(super) struct ResultVectors {
    generations: (i64, i64),
    pairs: Arc<Vec<(u64, i64)>>,
}

/// Cache of [`ResultVectors`] by (scope, space, runs, scopes of the filter).
pub(super) type ResultVectorCache = Mutex<HashMap<(String, Space, Vec<String>, Vec<String>), ResultVectors>>;

/// The open ANN indexes of one store.
pub(super) struct AnnCache {
    dir: PathBuf,
    config: AnnConfig,
    entries: Mutex<HashMap<SpaceKey, Arc<RwLock<Option<Loaded>>>>>,
    dirty: Mutex<HashSet<SpaceKey>>,
}

impl AnnCache {
    pub(super) fn new(dir: &Path, config: AnnConfig) -> Self {
        AnnCache { dir: dir.to_path_buf(), config, entries: Mutex::default(), dirty: Mutex::default() }
    }

    fn entry(&self, key: &SpaceKey) -> Arc<RwLock<Option<Loaded>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).entry(key.clone()).or_default().clone()
    }

    fn existing(&self, key: &SpaceKey) -> Option<Arc<RwLock<Option<Loaded>>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
    }

    fn space_dir(&self, scope: &str) -> PathBuf {
        self.dir.join(if scope.is_empty() { "_playground" } else { scope })
    }

    /// `ann/<index id or _playground>/<space>.g<generation>[.f16|.i8].usearch`.
    fn file(&self, key: &SpaceKey, generation: i64) -> PathBuf {
        let tag = self.config.scalar.file_tag();
        self.space_dir(&key.0).join(format!("{}.g{generation}{tag}.usearch", key.1.as_str()))
    }

    /// Remove the files of a space other than `keep`'s generation (in this storage).
    fn remove_old_files(&self, key: &SpaceKey, keep: Option<i64>) {
        let prefix = format!("{}.g", key.1.as_str());
        let kept = keep.map(|g| self.file(key, g));
        let Ok(entries) = std::fs::read_dir(self.space_dir(&key.0)) else { return };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let ours = name.starts_with(&prefix) && name.ends_with(".usearch");
            if ours && kept.as_ref().is_none_or(|k| k.file_name() != Some(e.file_name().as_os_str())) {
                // Best effort: a leftover file is never loaded (its generation is not current).
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Relocked poisoned guards: the index data stays consistent because every change to it is a
/// single usearch call, and the generation is only advanced after all of them succeeded.
macro_rules! relock {
    ($e:expr) => {
        $e.unwrap_or_else(|p| p.into_inner())
    };
}

fn to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn from_blob(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// Model and generation of a space, `None` when it holds no vectors. The row itself is never
/// deleted, so that generations only grow: a cached index can always tell it is behind.
fn space_state(c: &Connection, scope: &str, space: Space) -> Result<Option<(ModelRef, i64)>> {
    c.query_row(
        "SELECT model_id, model_revision, dims, generation FROM space_models WHERE scope = ?1 AND space = ?2
         AND EXISTS (SELECT 1 FROM vectors v WHERE v.scope = ?1 AND v.space = ?2)",
        params![scope, space.as_str()],
        |r| {
            Ok((ModelRef::new(r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)? as usize), r.get(3)?))
        },
    )
    .optional()
    .db()
}

fn space_keys(c: &Connection, scope: &str, space: Space) -> Result<HashSet<u64>> {
    let mut stmt = c.prepare_cached("SELECT vector_id FROM vectors WHERE scope = ?1 AND space = ?2").db()?;
    let rows = stmt.query_map(params![scope, space.as_str()], |r| r.get::<_, i64>(0)).db()?;
    rows.map(|k| k.map(|k| k as u64)).collect::<rusqlite::Result<_>>().db()
}

fn vectors_of(c: &Connection, keys: &[u64]) -> Result<Vec<(u64, Vec<f32>)>> {
    let mut stmt = c.prepare_cached("SELECT vector FROM vectors WHERE vector_id = ?1").db()?;
    let mut out = Vec::with_capacity(keys.len());
    for &k in keys {
        if let Some(b) = stmt.query_row([k as i64], |r| r.get::<_, Vec<u8>>(0)).optional().db()? {
            out.push((k, from_blob(&b)));
        }
    }
    Ok(out)
}

fn generation_of(c: &Connection, scope: &str, space: Space) -> Result<i64> {
    let g = c
        .query_row(
            "SELECT generation FROM space_models WHERE scope = ?1 AND space = ?2",
            params![scope, space.as_str()],
            |r| r.get(0),
        )
        .optional()
        .db()?;
    Ok(g.unwrap_or(0))
}

/// The model recorded for a space, whether or not it still holds vectors.
fn recorded_model(c: &Connection, scope: &str, space: Space) -> Result<Option<ModelRef>> {
    c.query_row(
        "SELECT model_id, model_revision, dims FROM space_models WHERE scope = ?1 AND space = ?2",
        params![scope, space.as_str()],
        |r| Ok(ModelRef::new(r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)? as usize)),
    )
    .optional()
    .db()
}

impl SqliteStore {
    /// Keys of the vectors of (scope, space) whose segment has a result passing `filter`. The
    /// pairs (vector, result) of the filter's runs are read once per generation of the space and
    /// of the results, and kept; each filter then costs its conditions' index reads.
    fn result_keys(
        &self,
        scope: &str,
        space: Space,
        generation: i64,
        filter: &ResultFilter<'_>,
    ) -> Result<HashSet<u64>> {
        let mut scopes: Vec<String> = filter.scopes.iter().map(|s| super::scope_key(s).to_string()).collect();
        scopes.sort();
        let mut runs = filter.run_ids.to_vec();
        runs.sort();
        let key = (scope.to_string(), space, runs, scopes);
        self.db.read_snapshot(|c| {
            let generations = (generation, results_generation(c)?);
            let cached = relock!(self.result_vectors.lock())
                .get(&key)
                .filter(|e| e.generations == generations)
                .map(|e| e.pairs.clone());
            let pairs = match cached {
                Some(p) => p,
                None => {
                    let pairs = Arc::new(result_vectors(c, scope, space.as_str(), filter)?);
                    let mut cache = relock!(self.result_vectors.lock());
                    if cache.len() >= 16 {
                        cache.clear();
                    }
                    cache.insert(key, ResultVectors { generations, pairs: pairs.clone() });
                    pairs
                }
            };
            passing_keys(c, &pairs, filter)
        })
    }

    /// An index up to date with generation `current` of the catalog (loading, rebuilding or
    /// catching up as needed), locked for searching.
    fn fresh_index(&self, key: &SpaceKey, dims: usize, current: i64) -> Result<Arc<RwLock<Option<Loaded>>>> {
        let entry = self.ann.entry(key);
        if relock!(entry.read()).as_ref().is_some_and(|l| l.generation >= current) {
            return Ok(entry);
        }
        let mut slot = relock!(entry.write());
        // One snapshot: the generation and the rows it counts.
        let (generation, keys) =
            self.db.read_snapshot(|c| Ok((generation_of(c, &key.0, key.1)?, space_keys(c, &key.0, key.1)?)))?;
        match slot.as_mut() {
            Some(l) if l.generation >= generation => {}
            Some(l) => {
                let added: Vec<u64> = keys.difference(&l.keys).copied().collect();
                let removed: Vec<u64> = l.keys.difference(&keys).copied().collect();
                let rows = self.db.read(|c| vectors_of(c, &added))?;
                for k in removed {
                    l.index.remove(k)?;
                    l.keys.remove(&k);
                }
                l.index.reserve(rows.len())?;
                for (k, v) in &rows {
                    l.index.add(*k, v)?;
                    l.keys.insert(*k);
                }
                l.generation = generation;
                relock!(self.ann.dirty.lock()).insert(key.clone());
            }
            None => {
                let file = self.ann.file(key, generation);
                let loaded = AnnIndex::load(&file, dims, self.ann.config)?.filter(|a| a.len() == keys.len());
                let index = match loaded {
                    Some(index) => index,
                    None => {
                        let mut all: Vec<u64> = keys.iter().copied().collect();
                        all.sort_unstable();
                        let rows = self.db.read(|c| vectors_of(c, &all))?;
                        let index = AnnIndex::build(dims, self.ann.config, &rows)?;
                        FULL_BUILDS.with(|n| n.set(n.get() + 1));
                        index.save(&file)?;
                        self.ann.remove_old_files(key, Some(generation));
                        index
                    }
                };
                *slot = Some(Loaded { index, keys, generation });
            }
        }
        drop(slot);
        Ok(entry)
    }

    /// Apply a write this process made (generation `before` -> `after`) to a loaded index, if it
    /// reflected `before`; otherwise the next search catches up from the catalog.
    fn apply(&self, key: &SpaceKey, before: i64, after: i64, removed: &[u64], added: &[(u64, &[f32])]) -> Result<()> {
        let Some(entry) = self.ann.existing(key) else { return Ok(()) };
        let mut slot = relock!(entry.write());
        let Some(l) = slot.as_mut().filter(|l| l.generation == before) else { return Ok(()) };
        for k in removed {
            if l.keys.remove(k) {
                l.index.remove(*k)?;
            }
        }
        l.index.reserve(added.len())?;
        for (k, v) in added {
            l.index.add(*k, v)?;
            l.keys.insert(*k);
        }
        l.generation = after;
        relock!(self.ann.dirty.lock()).insert(key.clone());
        Ok(())
    }
}

impl VectorStore for SqliteStore {
    fn space_model(&self, scope: &Scope, space: Space) -> Result<Option<ModelRef>> {
        Ok(self.db.read(|c| space_state(c, scope_key(scope), space))?.map(|(m, _)| m))
    }

    fn upsert(&self, scope: &Scope, space: Space, model: &ModelRef, rows: &[NewVector<'_>]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        if let Some(bad) = rows.iter().find(|r| r.vector.len() != model.dims) {
            return Err(Error::ModelMismatch(format!(
                "a vector for {} has {} dimensions, {} makes {}",
                bad.segment_id,
                bad.vector.len(),
                model.id,
                model.dims
            )));
        }
        let sk = scope_key(scope);
        let key = (sk.to_string(), space);
        // Load the index before the write (from its file when current), so that the write is
        // applied to it and saved with the next flush: an engine that only writes (an ingest)
        // must not leave the file a generation behind for the next search to rebuild in full.
        if let Some((made_by, generation)) = self.db.read(|c| space_state(c, sk, space))? {
            if made_by.dims == model.dims {
                self.fresh_index(&key, model.dims, generation)?;
            }
        }
        let (before, after, removed, keys) = self.db.write(|tx| {
            match recorded_model(tx, sk, space)? {
                Some(made_by) if made_by.id != model.id || made_by.revision != model.revision => {
                    let have: i64 = tx
                        .query_row(
                            "SELECT count(*) FROM vectors WHERE scope = ?1 AND space = ?2",
                            params![sk, space.as_str()],
                            |r| r.get(0),
                        )
                        .db()?;
                    if have > 0 {
                        return Err(Error::ModelMismatch(format!(
                            "the {space} vectors of {scope} were made by {} ({}); {} ({}) cannot add to them. \
                             Use the same model, or re-embed the index with `videovector embed --reembed`",
                            made_by.id, made_by.revision, model.id, model.revision
                        )));
                    }
                    tx.execute(
                        "UPDATE space_models SET model_id = ?3, model_revision = ?4, dims = ?5 WHERE scope = ?1 AND space = ?2",
                        params![sk, space.as_str(), model.id, model.revision, model.dims as i64],
                    )
                    .db()?;
                }
                Some(_) => {}
                None => {
                    tx.execute(
                        "INSERT INTO space_models (scope, space, model_id, model_revision, dims) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![sk, space.as_str(), model.id, model.revision, model.dims as i64],
                    )
                    .db()?;
                }
            }
            let before = generation_of(tx, sk, space)?;
            let mut removed = Vec::new();
            let mut keys = Vec::with_capacity(rows.len());
            let mut old =
                tx.prepare_cached("SELECT vector_id FROM vectors WHERE segment_id = ?1 AND space = ?2").db()?;
            let mut del = tx.prepare_cached("DELETE FROM vectors WHERE vector_id = ?1").db()?;
            let mut ins = tx
                .prepare_cached(
                    "INSERT INTO vectors (segment_id, scope, space, model_id, model_revision, dims, vector, source_text)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .db()?;
            for r in rows {
                if let Some(k) = old.query_row(params![r.segment_id.as_str(), space.as_str()], |r| r.get::<_, i64>(0)).optional().db()? {
                    del.execute([k]).db()?;
                    removed.push(k as u64);
                }
                ins.execute(params![
                    r.segment_id.as_str(),
                    sk,
                    space.as_str(),
                    model.id,
                    model.revision,
                    model.dims as i64,
                    to_blob(r.vector),
                    r.source_text
                ])
                .db()?;
                keys.push(tx.last_insert_rowid() as u64);
            }
            Ok((before, generation_of(tx, sk, space)?, removed, keys))
        })?;
        let added: Vec<(u64, &[f32])> = keys.into_iter().zip(rows.iter().map(|r| r.vector)).collect();
        self.apply(&key, before, after, &removed, &added)?;
        // The first vectors of a space (nothing was loaded), or a write by another process in
        // between: bring the index up to the catalog now.
        self.fresh_index(&key, model.dims, after)?;
        Ok(())
    }

    fn remove_media(&self, video_id: &VideoId) -> Result<()> {
        let changes = self.db.write(|tx| {
            let mut stmt = tx
                .prepare(
                    "SELECT v.scope, v.space, v.vector_id FROM vectors v JOIN segments s ON s.segment_id = v.segment_id
                     WHERE s.video_id = ?1 ORDER BY v.scope, v.space",
                )
                .db()?;
            let rows = stmt
                .query_map([video_id.as_str()], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
                })
                .db()?
                .collect::<rusqlite::Result<Vec<_>>>()
                .db()?;
            let mut by_space: HashMap<SpaceKey, (i64, i64, Vec<u64>)> = HashMap::new();
            for (scope, space, key) in rows {
                let space: Space = space.parse()?;
                let e = match by_space.entry((scope.clone(), space)) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        let g = generation_of(tx, &scope, space)?;
                        v.insert((g, g, Vec::new()))
                    }
                };
                e.2.push(key as u64);
            }
            tx.execute(
                "DELETE FROM vectors WHERE segment_id IN (SELECT segment_id FROM segments WHERE video_id = ?1)",
                [video_id.as_str()],
            )
            .db()?;
            for (key, e) in by_space.iter_mut() {
                e.1 = generation_of(tx, &key.0, key.1)?;
            }
            Ok(by_space)
        })?;
        for (key, (before, after, removed)) in changes {
            self.apply(&key, before, after, &removed, &[])?;
        }
        Ok(())
    }

    fn drop_space(&self, scope: &Scope, space: Space) -> Result<()> {
        let sk = scope_key(scope);
        self.db.write(|tx| {
            // The space's row stays (its generation keeps growing); without vectors it has no model.
            tx.execute("DELETE FROM vectors WHERE scope = ?1 AND space = ?2", params![sk, space.as_str()]).db()?;
            Ok(())
        })?;
        let key = (sk.to_string(), space);
        relock!(self.ann.entries.lock()).remove(&key);
        relock!(self.ann.dirty.lock()).remove(&key);
        self.ann.remove_old_files(&key, None);
        Ok(())
    }

    fn search(
        &self,
        scope: &Scope,
        space: Space,
        query: &[f32],
        k: usize,
        candidates: Candidates<'_>,
    ) -> Result<Vec<VectorHit>> {
        let sk = scope_key(scope);
        let Some((model, generation)) = self.db.read(|c| space_state(c, sk, space))? else {
            return Ok(Vec::new());
        };
        if query.len() != model.dims {
            return Err(Error::ModelMismatch(format!(
                "a query of {} dimensions for {space} vectors of {} dimensions",
                query.len(),
                model.dims
            )));
        }
        let allowed: Option<HashSet<u64>> = match candidates {
            Candidates::All => None,
            Candidates::Segments(ids) => Some(self.db.read(|c| segment_keys(c, sk, space, ids))?),
            Candidates::Results(filter) => Some(self.result_keys(sk, space, generation, filter)?),
        };
        let key = (sk.to_string(), space);
        let entry = self.fresh_index(&key, model.dims, generation)?;
        let found = {
            let slot = relock!(entry.read());
            let Some(l) = slot.as_ref() else { return Ok(Vec::new()) };
            match &allowed {
                None => l.index.search(query, k)?,
                Some(keys) if keys.len() <= self.ann.config.exact_scan_max => l.index.scan(query, k, keys)?,
                Some(keys) => l.index.filtered_search(query, k, |key| keys.contains(&key))?,
            }
        };
        let keys: Vec<u64> = found.into_iter().map(|(key, _)| key).collect();
        self.db.read(|c| hits(c, &keys))
    }

    fn media_vectors(&self, video_id: &str) -> Result<Vec<StoredVector>> {
        self.db.read(|c| {
            let mut stmt = c
                .prepare(
                    "SELECT v.segment_id, v.space, v.model_id, v.model_revision, v.dims, v.vector FROM vectors v
                     JOIN segments s ON s.segment_id = v.segment_id WHERE s.video_id = ?1 ORDER BY v.space, s.kind, s.ordinal",
                )
                .db()?;
            let rows = stmt
                .query_map([video_id], |r| {
                    let space: String = r.get(1)?;
                    Ok(StoredVector {
                        segment_id: SegmentId::from(r.get::<_, String>(0)?),
                        space: super::parse_column(1, &space)?,
                        model: ModelRef::new(r.get::<_, String>(2)?, r.get::<_, String>(3)?, r.get::<_, i64>(4)? as usize),
                        vector: from_blob(&r.get::<_, Vec<u8>>(5)?),
                    })
                })
                .db()?;
            rows.collect::<rusqlite::Result<Vec<_>>>().db()
        })
    }

    fn scopes_with_vectors(&self, space: Space) -> Result<Vec<Scope>> {
        self.db.read(|c| {
            let mut stmt = c.prepare("SELECT DISTINCT scope FROM vectors WHERE space = ?1 ORDER BY scope").db()?;
            let rows = stmt.query_map([space.as_str()], |r| r.get::<_, String>(0)).db()?;
            rows.map(|r| r.map(scope_from_key)).collect::<rusqlite::Result<Vec<_>>>().db()
        })
    }

    fn flush(&self) -> Result<()> {
        let dirty: Vec<SpaceKey> = relock!(self.ann.dirty.lock()).drain().collect();
        for key in dirty {
            let Some(entry) = self.ann.existing(&key) else { continue };
            let slot = relock!(entry.read());
            if let Some(l) = slot.as_ref() {
                l.index.save(&self.ann.file(&key, l.generation))?;
                self.ann.remove_old_files(&key, Some(l.generation));
            }
        }
        Ok(())
    }
}

/// Keys of a space's vectors whose segment's `column` is one of `values`.
fn segment_keys(c: &Connection, scope: &str, space: Space, ids: &HashSet<SegmentId>) -> Result<HashSet<u64>> {
    let mut stmt =
        c.prepare_cached("SELECT vector_id FROM vectors WHERE segment_id = ?1 AND scope = ?2 AND space = ?3").db()?;
    let mut out = HashSet::new();
    for id in ids {
        let rows = stmt.query_map(params![id.as_str(), scope, space.as_str()], |r| r.get::<_, i64>(0)).db()?;
        for k in rows {
            out.insert(k.db()? as u64);
        }
    }
    Ok(out)
}

/// Catalog rows behind ANN keys, in the order of `keys` (keys deleted meanwhile are skipped).
fn hits(c: &Connection, keys: &[u64]) -> Result<Vec<VectorHit>> {
    let mut stmt = c
        .prepare_cached(
            "SELECT s.segment_id, s.video_id, s.run_id, s.start_us, s.end_us, s.thumbnail_path, v.vector, v.source_text
             FROM vectors v JOIN segments s ON s.segment_id = v.segment_id WHERE v.vector_id = ?1",
        )
        .db()?;
    let mut out = Vec::with_capacity(keys.len());
    for &k in keys {
        let row = stmt
            .query_row([k as i64], |r| {
                let run_id: String = r.get(2)?;
                Ok(VectorHit {
                    segment_id: SegmentId::from(r.get::<_, String>(0)?),
                    video_id: VideoId::from(r.get::<_, String>(1)?),
                    run_id: (!run_id.is_empty()).then_some(run_id),
                    start_us: r.get(3)?,
                    end_us: r.get(4)?,
                    thumbnail_path: r.get(5)?,
                    vector: from_blob(&r.get::<_, Vec<u8>>(6)?),
                    source_text: r.get(7)?,
                })
            })
            .optional()
            .db()?;
        out.extend(row);
    }
    Ok(out)
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
