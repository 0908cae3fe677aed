//! Vector search: text, image and multimodal queries over an index's (or the playground's)
//! embedding spaces, with the API's request fields and documented scores.
//!
//! Scores (`score_kind` in every response):
//! - `cosine`: one space answered the query; `score` is the cosine similarity of the query and
//!   the segment's vector, in [-1, 1].
//! - `rrf`: a text query answered by several spaces (keyframes by CLIP, what was said by the
//!   sentence encoder): cosines of different models are not comparable, so the ranks are fused
//!   by reciprocal rank fusion, `score = sum over spaces of 1 / (60 + rank)` (rank from 1); each
//!   space's cosine and rank are in `matches`.
//! - `weighted_cosine`: multimodal search, `score = text_weight * cos(text) + image_weight *
//!   cos(image)` over the visual space, with the weights as given.
//!
//! - `bm25`: keyword search over transcripts (SQLite FTS5), `score = -bm25`, higher is better.
//!
//! Ties are broken by video id, start time and segment id, so results are deterministic.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub(crate) mod filter;
pub(crate) mod query;
pub(crate) mod sql;

pub use filter::{FilterHit, FilterResponse, FilterSearch, DEFAULT_PAGE_SIZE};
pub use sql::{SqlGenerate, SqlQuery};

use crate::error::{Error, Result};
use crate::ids::{RunId, SegmentId, VideoId};
use crate::store::VectorHit as HitRow;
use crate::types::filter::Condition;

/// `top_k` when none is given.
pub const DEFAULT_TOP_K: usize = 10;
/// Largest `top_k` a search accepts.
pub const MAX_TOP_K: usize = 1000;
/// Longest query text in characters (the API's limit for text embeddings).
pub const MAX_QUERY_CHARS: usize = 4096;
/// The `k` of reciprocal rank fusion.
pub const RRF_K: f32 = 60.0;

/// An image given to a search: a file, or the encoded bytes (the API's `image_data`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ImageInput {
    Path(PathBuf),
    Bytes(Vec<u8>),
}

/// `POST /indexes/{index_id}/search`: `TextSearch::new("query").top_k(5)`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TextSearch {
    pub query: String,
    /// Results to return, 1 to [`MAX_TOP_K`]. Default [`DEFAULT_TOP_K`].
    pub top_k: Option<usize>,
    /// Restrict to segments of these prompt runs; empty: every segment.
    #[serde(default)]
    pub run_ids: Vec<String>,
    /// Restrict to segments whose run result passes these conditions (AND), inside the vector
    /// search: `top_k` results come back whenever that many segments pass.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Only segments of these media items (of the searched scope); empty: every media item.
    #[serde(default)]
    pub video_ids: Vec<String>,
}

/// `POST /indexes/{index_id}/image-search`: `ImageSearch::new(ImageInput::Path(..)).top_k(5)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ImageSearch {
    pub image_data: ImageInput,
    pub top_k: Option<usize>,
    #[serde(default)]
    pub run_ids: Vec<String>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Only segments of these media items (of the searched scope); empty: every media item.
    #[serde(default)]
    pub video_ids: Vec<String>,
}

/// `POST /indexes/{index_id}/multimodal-search`:
/// `MultimodalSearch::new().text("..").image(ImageInput::Path(..)).weights(0.7, 0.3)`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MultimodalSearch {
    pub text_query: Option<String>,
    pub image_data: Option<ImageInput>,
    /// Weight of the text's cosine, >= 0. Default 0.5.
    pub text_weight: Option<f32>,
    /// Weight of the image's cosine, >= 0. Default 0.5.
    pub image_weight: Option<f32>,
    pub top_k: Option<usize>,
    #[serde(default)]
    pub run_ids: Vec<String>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Only segments of these media items (of the searched scope); empty: every media item.
    #[serde(default)]
    pub video_ids: Vec<String>,
}

/// The builder methods every search request has: `top_k`, `run_ids` and `conditions`.
macro_rules! common_builders {
    ($($request:ty),+) => {$(
        impl $request {
            pub fn top_k(mut self, top_k: usize) -> Self {
                self.top_k = Some(top_k);
                self
            }

            /// Search only the segments of these prompt runs (their results and their own segments).
            pub fn run_ids(mut self, run_ids: Vec<String>) -> Self {
                self.run_ids = run_ids;
                self
            }

            /// Search only segments whose run result passes every condition.
            pub fn conditions(mut self, conditions: Vec<Condition>) -> Self {
                self.conditions = conditions;
                self
            }

            /// Search only segments of these media items (a collection's, say).
            pub fn video_ids(mut self, video_ids: Vec<String>) -> Self {
                self.video_ids = video_ids;
                self
            }
        }
    )+};
}

common_builders!(TextSearch, ImageSearch, MultimodalSearch);

impl TextSearch {
    pub fn new(query: impl Into<String>) -> Self {
        TextSearch { query: query.into(), ..Default::default() }
    }
}

impl ImageSearch {
    pub fn new(image: ImageInput) -> Self {
        ImageSearch {
            image_data: image,
            top_k: None,
            run_ids: Vec::new(),
            conditions: Vec::new(),
            video_ids: Vec::new(),
        }
    }
}

impl MultimodalSearch {
    pub fn new() -> Self {
        MultimodalSearch::default()
    }

    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.text_query = Some(text.into());
        self
    }

    pub fn image(mut self, image: ImageInput) -> Self {
        self.image_data = Some(image);
        self
    }

    pub fn weights(mut self, text_weight: f32, image_weight: f32) -> Self {
        self.text_weight = Some(text_weight);
        self.image_weight = Some(image_weight);
        self
    }
}

/// How `POST /search/multi-run` combines the hits of several runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Aggregation {
    /// Each segment once, with its best score over the runs.
    #[default]
    Best,
    /// Every run's hits, a segment once per run that found it.
    All,
    /// As `best`, after weighting each run's scores by its recency: 1.0 for the newest run down
    /// to 0.5 for the oldest, linearly.
    Weighted,
}

/// Largest `top_k` of a multi-run search (per run).
pub const MAX_MULTI_RUN_TOP_K: usize = 50;

/// `POST /search/multi-run`: a text search over the segments of each run, combined.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MultiRunSearch {
    pub query: String,
    /// The runs; empty: every run over media of `index_id`.
    #[serde(default)]
    pub run_ids: Vec<String>,
    pub index_id: Option<String>,
    pub aggregation: Option<Aggregation>,
    /// Hits per run, 1 to [`MAX_MULTI_RUN_TOP_K`]. Default 5.
    pub top_k: Option<usize>,
}

impl MultiRunSearch {
    pub fn new(query: impl Into<String>) -> Self {
        MultiRunSearch { query: query.into(), ..Default::default() }
    }

    pub fn run_ids(mut self, run_ids: Vec<String>) -> Self {
        self.run_ids = run_ids;
        self
    }

    pub fn index_id(mut self, index: impl Into<String>) -> Self {
        self.index_id = Some(index.into());
        self
    }

    pub fn aggregation(mut self, aggregation: Aggregation) -> Self {
        self.aggregation = Some(aggregation);
        self
    }

    pub fn top_k(mut self, top_k: usize) -> Self {
        self.top_k = Some(top_k);
        self
    }
}

/// How `score` was computed (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ScoreKind {
    Cosine,
    Rrf,
    WeightedCosine,
    /// Keyword search: the store's full-text relevance, higher is better (BM25 in the embedded
    /// store).
    Bm25,
}

/// Which part of a segment matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Modality {
    /// The keyframe, by a text query (CLIP's text tower).
    Visual,
    /// What was said (sentence encoder).
    Transcript,
    /// Prompt-run metadata (sentence encoder).
    Metadata,
    /// Multimodal search: the text part, in the visual space.
    Text,
    /// Image and multimodal search: the image part, in the visual space.
    Image,
    /// Keyword search over transcripts.
    Keyword,
}

impl Modality {
    pub fn as_str(self) -> &'static str {
        match self {
            Modality::Visual => "visual",
            Modality::Transcript => "transcript",
            Modality::Metadata => "metadata",
            Modality::Text => "text",
            Modality::Image => "image",
            Modality::Keyword => "keyword",
        }
    }

    pub(crate) fn of_space(space: crate::types::Space) -> Self {
        match space {
            crate::types::Space::Transcript => Modality::Transcript,
            crate::types::Space::Metadata => Modality::Metadata,
            _ => Modality::Visual,
        }
    }
}

/// How one modality matched a hit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModalityMatch {
    pub modality: Modality,
    /// The modality's own similarity: the cosine for vector spaces, the BM25 score (higher is
    /// better) for `keyword`.
    pub score: f32,
    /// Rank of the segment in that modality's candidates, from 1.
    pub rank: usize,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SearchHit {
    pub segment_id: SegmentId,
    pub video_id: VideoId,
    /// Seconds.
    pub start: f64,
    pub end: f64,
    pub score: f32,
    pub thumbnail_path: Option<String>,
    /// The modality that contributed most to the score.
    pub modality: Modality,
    pub matches: Vec<ModalityMatch>,
    /// The text that matched, for transcript and metadata hits.
    pub snippet: Option<String>,
    /// The run whose segments the hit was found among (multi-run search), or whose own
    /// segmentation made the segment.
    pub run_id: Option<RunId>,
}

/// Ranked results and how their scores were computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SearchResponse {
    pub results: Vec<SearchHit>,
    pub score_kind: ScoreKind,
}

/// Validate `top_k`.
pub(crate) fn top_k(value: Option<usize>) -> Result<usize> {
    match value.unwrap_or(DEFAULT_TOP_K) {
        0 => Err(Error::invalid("top_k", "must be at least 1")),
        k if k > MAX_TOP_K => Err(Error::invalid("top_k", format!("must be at most {MAX_TOP_K}, got {k}"))),
        k => Ok(k),
    }
}

/// Validate a query text: non-empty after trimming, at most [`MAX_QUERY_CHARS`].
pub(crate) fn query_text<'a>(field: &str, text: &'a str) -> Result<&'a str> {
    let t = text.trim();
    if t.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if t.chars().count() > MAX_QUERY_CHARS {
        return Err(Error::invalid(field, format!("must be at most {MAX_QUERY_CHARS} characters")));
    }
    Ok(t)
}

/// Validate multimodal weights: finite, non-negative, not both zero.
pub(crate) fn weights(text: Option<f32>, image: Option<f32>) -> Result<(f32, f32)> {
    let (t, i) = (text.unwrap_or(0.5), image.unwrap_or(0.5));
    for (field, w) in [("text_weight", t), ("image_weight", i)] {
        if !w.is_finite() || w < 0.0 {
            return Err(Error::invalid(field, format!("must be a non-negative number, got {w}")));
        }
    }
    if t == 0.0 && i == 0.0 {
        return Err(Error::invalid("text_weight", "text_weight and image_weight cannot both be zero"));
    }
    Ok((t, i))
}

/// Decode a query image (alpha composited onto white, as the reference processor does).
pub(crate) fn decode_image(input: &ImageInput) -> Result<image::RgbImage> {
    let (bytes, name) = match input {
        ImageInput::Path(p) => (std::fs::read(p).map_err(|e| Error::io(p, e))?, p.display().to_string()),
        ImageInput::Bytes(b) => (b.clone(), "image_data".to_string()),
    };
    crate::media::decode_image_bytes(&bytes, &name).map_err(|m| Error::invalid("image_data", m))
}

pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Candidates of one modality: catalog rows with the exact cosine to the query, best first.
pub(crate) struct Ranked {
    pub modality: Modality,
    pub hits: Vec<(HitRow, f32)>,
}

impl Ranked {
    /// Rank rows by exact cosine to `query` (the ANN order is only a candidate list).
    pub fn new(modality: Modality, rows: Vec<HitRow>, query: &[f32]) -> Self {
        let mut hits: Vec<(HitRow, f32)> =
            rows.into_iter().map(|r| (dot(&r.vector, query), r)).map(|(c, r)| (r, c)).collect();
        hits.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| tie(&a.0, &b.0)));
        Ranked { modality, hits }
    }
}

pub(crate) fn tie_hits(a: &SearchHit, b: &SearchHit) -> std::cmp::Ordering {
    a.video_id.cmp(&b.video_id).then(a.start.total_cmp(&b.start)).then(a.segment_id.cmp(&b.segment_id))
}

fn tie(a: &HitRow, b: &HitRow) -> std::cmp::Ordering {
    a.video_id.cmp(&b.video_id).then(a.start_us.cmp(&b.start_us)).then(a.segment_id.cmp(&b.segment_id))
}

/// Query vectors with their weights, for multimodal scores.
pub(crate) type WeightedQueries<'a> = [(&'a [f32], f32)];

/// Fuse ranked candidate lists into `top_k` hits. One list: scores are its cosines. Several
/// lists: reciprocal rank fusion. `weighted` (multimodal): the weighted sum of each candidate's
/// exact cosines to the query vectors, whichever list found it.
pub(crate) fn fuse(lists: Vec<Ranked>, top_k: usize, weighted: Option<&WeightedQueries<'_>>) -> SearchResponse {
    struct Acc {
        row: HitRow,
        score: f32,
        matches: Vec<ModalityMatch>,
    }
    let kind = match (weighted.is_some(), lists.len()) {
        (true, _) => ScoreKind::WeightedCosine,
        (false, 0 | 1) => ScoreKind::Cosine,
        (false, _) => ScoreKind::Rrf,
    };
    let mut acc: BTreeMap<SegmentId, Acc> = BTreeMap::new();
    for list in &lists {
        for (rank, (row, cosine)) in list.hits.iter().enumerate() {
            let e = acc.entry(row.segment_id.clone()).or_insert_with(|| Acc {
                row: row.clone(),
                score: 0.0,
                matches: Vec::new(),
            });
            e.matches.push(ModalityMatch { modality: list.modality, score: *cosine, rank: rank + 1 });
            match kind {
                ScoreKind::Cosine => e.score = *cosine,
                ScoreKind::Rrf => e.score += 1.0 / (RRF_K + (rank + 1) as f32),
                ScoreKind::WeightedCosine | ScoreKind::Bm25 => {}
            }
        }
    }
    if let Some(queries) = weighted {
        for e in acc.values_mut() {
            e.score = queries.iter().map(|(q, w)| w * dot(&e.row.vector, q)).sum();
        }
    }
    let mut all: Vec<Acc> = acc.into_values().collect();
    all.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| tie(&a.row, &b.row)));
    all.truncate(top_k);
    let results = all
        .into_iter()
        .map(|a| {
            let best =
                a.matches.iter().max_by(|x, y| x.score.total_cmp(&y.score)).map_or(Modality::Visual, |m| m.modality);
            SearchHit {
                segment_id: a.row.segment_id,
                video_id: a.row.video_id,
                start: crate::types::us_to_secs(a.row.start_us),
                end: crate::types::us_to_secs(a.row.end_us),
                score: a.score,
                thumbnail_path: a.row.thumbnail_path,
                modality: best,
                matches: a.matches,
                snippet: a.row.source_text,
                run_id: a.row.run_id.map(RunId::from),
            }
        })
        .collect();
    SearchResponse { results, score_kind: kind }
}

/// How many ANN candidates to fetch for `top_k` results.
pub(crate) fn candidates(top_k: usize) -> usize {
    (top_k * 4).clamp(50, 4 * MAX_TOP_K)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, v: Vec<f32>) -> HitRow {
        HitRow {
            segment_id: id.into(),
            video_id: "vid".into(),
            run_id: None,
            start_us: 0,
            end_us: 1,
            thumbnail_path: None,
            vector: v,
            source_text: None,
        }
    }

    #[test]
    fn rrf_rewards_agreement_between_spaces() {
        let q = [1.0f32, 0.0];
        let a = Ranked::new(
            Modality::Visual,
            vec![row("s1", vec![1.0, 0.0]), row("s2", vec![0.9, 0.1]), row("s3", vec![0.1, 0.9])],
            &q,
        );
        let b = Ranked::new(Modality::Transcript, vec![row("s2", vec![1.0, 0.0]), row("s3", vec![0.5, 0.5])], &q);
        let r = fuse(vec![a, b], 10, None);
        assert_eq!(r.score_kind, ScoreKind::Rrf);
        assert_eq!(
            r.results[0].segment_id.as_str(),
            "s2",
            "second in one space and first in the other beats first in one only"
        );
        assert_eq!(r.results[0].matches.len(), 2);
        assert!((r.results[0].score - (1.0 / 62.0 + 1.0 / 61.0)).abs() < 1e-6);
    }

    #[test]
    fn ties_are_broken_by_segment_id_and_single_lists_report_cosines() {
        let q = [1.0f32, 0.0];
        let a = Ranked::new(Modality::Visual, vec![row("b", vec![0.5, 0.5]), row("a", vec![0.5, 0.5])], &q);
        let r = fuse(vec![a], 1, None);
        assert_eq!((r.score_kind, r.results.len(), r.results[0].segment_id.as_str()), (ScoreKind::Cosine, 1, "a"));
        assert!((r.results[0].score - 0.5).abs() < 1e-6);
    }

    #[test]
    fn request_checks_name_the_field() {
        assert!(top_k(Some(0)).unwrap_err().to_string().contains("top_k"));
        assert!(top_k(Some(MAX_TOP_K + 1)).is_err());
        assert_eq!(top_k(None).unwrap(), DEFAULT_TOP_K);
        assert!(query_text("query", "   ").unwrap_err().to_string().contains("query"));
        assert!(weights(Some(-1.0), None).unwrap_err().to_string().contains("text_weight"));
        assert!(weights(Some(0.0), Some(0.0)).is_err());
        assert!(weights(Some(f32::NAN), None).is_err());
        assert_eq!(weights(Some(0.7), Some(0.3)).unwrap(), (0.7, 0.3));
        let err = decode_image(&ImageInput::Bytes(b"not an image".to_vec())).unwrap_err();
        assert!(err.to_string().contains("image_data"), "{err}");
    }
}
