//! Approximate nearest-neighbour search over unit vectors: usearch HNSW with the inner product
//! (the cosine of unit vectors, without computing two norms per distance; vectors that are not
//! unit are normalised on the way in).
//!
//! An ANN file is a cache of the catalog's vector rows, named after the generation of the space
//! it holds: loaded only when that generation is the catalog's, rebuilt from the rows otherwise.

use std::collections::HashSet;
use std::path::Path;

use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use crate::error::{Error, Result};

/// HNSW settings. Defaults are usearch's graph degree with a wider search beam, chosen by the
/// recall measurement in `benches/ann.rs` (recall@10 >= 0.98 on clustered 512-d vectors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnConfig {
    /// Graph degree (`M`). Default 16.
    pub connectivity: usize,
    /// Beam width while adding (`ef_construction`). Default 128.
    pub expansion_add: usize,
    /// Beam width while searching (`ef`). Default 128.
    pub expansion_search: usize,
    /// A filtered search with at most this many candidates scans their vectors exactly (about
    /// 0.5 us each) instead of walking the graph with the filter, which misses some of the true
    /// nearest when few nodes pass (recall well below 1 on 100,000 vectors with 13% passing).
    /// Default 32,768.
    pub exact_scan_max: usize,
    /// How the graph stores vectors (the catalog keeps f32 either way). Default `F32`.
    pub scalar: AnnScalar,
}

/// Storage of vectors inside an ANN index: f32, or half the memory with f16, or a quarter with
/// int8, at the recall `scripts/compare_ann.sh` measures (README, Figures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnnScalar {
    #[default]
    F32,
    F16,
    I8,
}

impl AnnScalar {
    fn kind(self) -> ScalarKind {
        match self {
            AnnScalar::F32 => ScalarKind::F32,
            AnnScalar::F16 => ScalarKind::F16,
            AnnScalar::I8 => ScalarKind::I8,
        }
    }

    /// What ANN file names carry, so that a changed setting builds a new file.
    pub fn file_tag(self) -> &'static str {
        match self {
            AnnScalar::F32 => "",
            AnnScalar::F16 => ".f16",
            AnnScalar::I8 => ".i8",
        }
    }
}

impl std::str::FromStr for AnnScalar {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(AnnScalar::F32),
            "f16" => Ok(AnnScalar::F16),
            "i8" | "int8" => Ok(AnnScalar::I8),
            _ => Err(Error::invalid("ann_scalar", format!("{s:?} is not one of f32, f16, i8"))),
        }
    }
}

impl Default for AnnConfig {
    fn default() -> Self {
        AnnConfig {
            connectivity: 16,
            expansion_add: 128,
            expansion_search: 128,
            exact_scan_max: 32_768,
            scalar: AnnScalar::F32,
        }
    }
}

/// `v` as a unit vector: borrowed when it already is one (the models' output), else divided by
/// its norm (a zero vector stays zero).
fn unit(v: &[f32]) -> std::borrow::Cow<'_, [f32]> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if (norm - 1.0).abs() <= 1e-4 || norm == 0.0 {
        std::borrow::Cow::Borrowed(v)
    } else {
        std::borrow::Cow::Owned(v.iter().map(|x| x / norm).collect())
    }
}

/// One ANN index (one scope, one space).
pub struct AnnIndex {
    index: Index,
    dims: usize,
}

fn ann_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Store(format!("vector index ({what}): {e}"))
}

impl AnnIndex {
    /// An empty index for `dims`-dimensional vectors.
    pub fn new(dims: usize, config: AnnConfig) -> Result<Self> {
        let options = IndexOptions {
            dimensions: dims,
            // usearch's int8 inner product is not scaled back to [-1, 1]; its int8 cosine is.
            metric: if config.scalar == AnnScalar::I8 { MetricKind::Cos } else { MetricKind::IP },
            quantization: config.scalar.kind(),
            connectivity: config.connectivity,
            expansion_add: config.expansion_add,
            expansion_search: config.expansion_search,
            multi: false,
        };
        let index = Index::new(&options).map_err(|e| ann_err("new", e))?;
        Ok(AnnIndex { index, dims })
    }

    /// An index holding `rows`, added from every core (usearch adds concurrently once reserved).
    pub fn build(dims: usize, config: AnnConfig, rows: &[(u64, Vec<f32>)]) -> Result<Self> {
        use rayon::prelude::*;
        let ann = AnnIndex::new(dims, config)?;
        if let Some((key, v)) = rows.iter().find(|(_, v)| v.len() != dims) {
            return Err(Error::ModelMismatch(format!(
                "vector {key} has {} dimensions for an index of {dims}",
                v.len()
            )));
        }
        ann.index
            .reserve_capacity_and_threads(rows.len().max(64), rayon::current_num_threads())
            .map_err(|e| ann_err("reserve", e))?;
        rows.par_iter().try_for_each(|(key, v)| ann.index.add(*key, &unit(v)).map_err(|e| ann_err("add", e)))?;
        Ok(ann)
    }

    /// Load a saved index; `None` when the file is missing or unreadable (the caller rebuilds).
    pub fn load(path: &Path, dims: usize, config: AnnConfig) -> Result<Option<Self>> {
        if !path.is_file() {
            return Ok(None);
        }
        let ann = AnnIndex::new(dims, config)?;
        match ann.index.load(&path.to_string_lossy()) {
            Ok(()) if ann.index.dimensions() == dims => {
                ann.index.change_expansion_search(config.expansion_search);
                Ok(Some(ann))
            }
            _ => Ok(None),
        }
    }

    /// Write the index through a temporary file and a rename.
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let tmp = crate::store::blobs::temp_path(path);
        let saved = self.index.save(&tmp.to_string_lossy()).map_err(|e| ann_err(&tmp.display().to_string(), e));
        if let Err(e) = saved.and_then(|()| std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(())
    }

    /// The SIMD kernels usearch picked for this index (`serial` when none).
    pub fn hardware_acceleration(&self) -> String {
        self.index.hardware_acceleration()
    }

    pub fn dims(&self) -> usize {
        self.dims
    }

    pub fn len(&self) -> usize {
        self.index.size()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Make room for `extra` more vectors. usearch requires that nothing else uses the index
    /// meanwhile: callers hold it exclusively (`&mut`).
    pub fn reserve(&mut self, extra: usize) -> Result<()> {
        let need = self.index.size() + extra;
        if need > self.index.capacity() {
            self.index.reserve(need.max(self.index.capacity() * 2).max(64)).map_err(|e| ann_err("reserve", e))?;
        }
        Ok(())
    }

    /// Add (or replace) a vector under `key`; exclusive (`&mut`) because it may grow the index.
    pub fn add(&mut self, key: u64, vector: &[f32]) -> Result<()> {
        if vector.len() != self.dims {
            return Err(Error::ModelMismatch(format!(
                "vector of {} dimensions for an index of {}",
                vector.len(),
                self.dims
            )));
        }
        if self.index.contains(key) {
            self.index.remove(key).map_err(|e| ann_err("remove", e))?;
        }
        self.reserve(1)?;
        self.index.add(key, &unit(vector)).map_err(|e| ann_err("add", e))
    }

    pub fn remove(&mut self, key: u64) -> Result<()> {
        self.index.remove(key).map_err(|e| ann_err("remove", e))?;
        Ok(())
    }

    /// The `k` nearest keys with their cosine similarity, best first.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<(u64, f32)>> {
        if self.index.size() == 0 || k == 0 {
            return Ok(Vec::new());
        }
        let m = self.index.search(&unit(query), k).map_err(|e| ann_err("search", e))?;
        Ok(m.keys.into_iter().zip(m.distances).map(|(key, d)| (key, 1.0 - d)).collect())
    }

    /// The `k` nearest keys among those `keep` accepts, best first.
    pub fn filtered_search(&self, query: &[f32], k: usize, keep: impl Fn(u64) -> bool) -> Result<Vec<(u64, f32)>> {
        if self.index.size() == 0 || k == 0 {
            return Ok(Vec::new());
        }
        let m = self.index.filtered_search(&unit(query), k, keep).map_err(|e| ann_err("search", e))?;
        Ok(m.keys.into_iter().zip(m.distances).map(|(key, d)| (key, 1.0 - d)).collect())
    }

    /// The exact `k` nearest among `keys` (brute force over their stored vectors): for candidate
    /// sets small enough that a graph search would mostly walk past filtered-out nodes.
    pub fn scan(&self, query: &[f32], k: usize, keys: &HashSet<u64>) -> Result<Vec<(u64, f32)>> {
        let query = unit(query);
        let mut buf = vec![0f32; self.dims()];
        let mut scored = Vec::with_capacity(keys.len());
        for &key in keys {
            if self.index.get(key, &mut buf).map_err(|e| ann_err("get", e))? > 0 {
                scored.push((key, buf.iter().zip(query.iter()).map(|(a, b)| a * b).sum::<f32>()));
            }
        }
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(k);
        Ok(scored)
    }

    /// The exact `k` nearest (brute force), for measuring recall.
    pub fn exact_search(&self, query: &[f32], k: usize) -> Result<Vec<(u64, f32)>> {
        if self.index.size() == 0 || k == 0 {
            return Ok(Vec::new());
        }
        let m = self.index.exact_search(&unit(query), k).map_err(|e| ann_err("search", e))?;
        Ok(m.keys.into_iter().zip(m.distances).map(|(key, d)| (key, 1.0 - d)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: Vec<f32>) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }

    #[test]
    fn finds_the_nearest_and_survives_a_save_and_load() {
        let rows: Vec<(u64, Vec<f32>)> = (0..200u64)
            .map(|i| {
                (i + 10, unit((0..8).map(|d| ((i * 8 + d) as f32 * 0.37 + (i * d) as f32 * 0.011).sin()).collect()))
            })
            .collect();
        let ann = AnnIndex::build(8, AnnConfig::default(), &rows).unwrap();
        let hits = ann.search(&rows[42].1, 3).unwrap();
        assert_eq!(hits[0].0, 52);
        assert!((hits[0].1 - 1.0).abs() < 1e-5);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/visual.usearch");
        ann.save(&path).unwrap();
        let again = AnnIndex::load(&path, 8, AnnConfig::default()).unwrap().unwrap();
        assert_eq!(again.len(), 200);
        assert_eq!(again.search(&rows[42].1, 1).unwrap()[0].0, 52);
        assert!(AnnIndex::load(&dir.path().join("missing"), 8, AnnConfig::default()).unwrap().is_none());
        std::fs::write(dir.path().join("junk"), b"not an index").unwrap();
        assert!(
            AnnIndex::load(&dir.path().join("junk"), 8, AnnConfig::default()).unwrap().is_none(),
            "a corrupt file is rebuilt, not trusted"
        );
    }

    #[test]
    fn half_and_int8_storage_find_the_nearest_and_vectors_that_are_not_unit_score_their_cosine() {
        // Pseudo-random directions (an LCG), far apart in 32 dimensions.
        let mut state = 12345u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        let rows: Vec<(u64, Vec<f32>)> = (0..300u64).map(|i| (i, unit((0..32).map(|_| next()).collect()))).collect();
        for scalar in [AnnScalar::F16, AnnScalar::I8] {
            let ann = AnnIndex::build(32, AnnConfig { scalar, ..AnnConfig::default() }, &rows).unwrap();
            let hits = ann.search(&rows[123].1, 1).unwrap();
            assert_eq!(hits[0].0, 123, "{scalar:?}");
            assert!((hits[0].1 - 1.0).abs() < 0.02, "{scalar:?}: self-similarity {}", hits[0].1);
        }
        // A query three times too long scores as its unit vector does.
        let mut ann = AnnIndex::new(32, AnnConfig::default()).unwrap();
        ann.add(7, &rows[5].1.iter().map(|x| x * 2.0).collect::<Vec<_>>()).unwrap();
        let hit = ann.search(&rows[5].1.iter().map(|x| x * 3.0).collect::<Vec<_>>(), 1).unwrap();
        assert_eq!(hit[0].0, 7);
        assert!((hit[0].1 - 1.0).abs() < 1e-5, "cosine {}", hit[0].1);
    }
}
