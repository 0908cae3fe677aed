//! Answering a query: embed it, ask each space of the scope for candidates through the vector
//! store (with a candidate filter where the request restricts), re-score exactly, fuse.

use std::collections::{HashMap, HashSet};

use super::filter::Restriction;
use super::{
    candidates, decode_image, fuse, query_text, tie_hits, top_k, weights, Aggregation, ImageSearch, Modality,
    ModalityMatch, MultiRunSearch, MultimodalSearch, Ranked, ScoreKind, SearchHit, SearchResponse, TextSearch,
    MAX_MULTI_RUN_TOP_K,
};
use crate::error::{Error, Result};
use crate::ids::SegmentId;
use crate::ml::{Models, Role};
use crate::store::RunOutline;
use crate::store::{all_run_segments, all_segments, Candidates, Stores};
use crate::types::filter::Condition;
use crate::types::{ModelRef, Scope, Segment, SegmentKind, Space};

/// What a search reads: the stores and the query encoders.
pub(crate) struct Searcher<'a> {
    pub stores: &'a Stores,
    pub models: &'a Models,
}

/// Which segments a search may return.
enum Only {
    All,
    /// The segments of some runs (`run_ids` without conditions).
    Segments(HashSet<SegmentId>),
    /// Segments whose result passes a filter (`conditions`, with or without `run_ids`).
    Results(Restriction),
}

/// How many candidates to fetch from a space, and from which segments.
#[derive(Clone, Copy)]
struct Want<'a> {
    k: usize,
    only: &'a Only,
}

impl Searcher<'_> {
    /// The restriction a request asks for: `conditions` over the results of `run_ids` (or of
    /// every run in scope), or the segments of `run_ids`, or none.
    fn only(&self, scope: &Scope, run_ids: &[String], conditions: &[Condition], video_ids: &[String]) -> Result<Only> {
        if !video_ids.is_empty() {
            if !conditions.is_empty() {
                return Err(Error::invalid(
                    "video_ids",
                    "cannot be combined with conditions; filter by a condition instead",
                ));
            }
            // The media's ingest segments and, for run_ids, the runs' own segments of them.
            let mut set = HashSet::new();
            for id in video_ids {
                let media = self.stores.catalog.media(id)?;
                if Scope::of(media.index_id.as_ref()) != *scope {
                    return Err(Error::invalid("video_ids", format!("{id} is not a media item of {scope}")));
                }
                for kind in [SegmentKind::Video, SegmentKind::Audio] {
                    let runs = std::iter::once(None).chain(run_ids.iter().map(|r| Some(r.as_str())));
                    for run in runs {
                        set.extend(
                            all_run_segments(self.stores.catalog.as_ref(), id, kind, run)?
                                .into_iter()
                                .map(|s| s.segment_id),
                        );
                    }
                }
            }
            if let Some(runs) = self.run_segments(run_ids)? {
                set.retain(|s| runs.contains(s));
            }
            return Ok(Only::Segments(set));
        }
        if !conditions.is_empty() {
            return Ok(Only::Results(self.restriction(vec![scope.clone()], run_ids, conditions)?));
        }
        Ok(self.run_segments(run_ids)?.map_or(Only::All, Only::Segments))
    }

    /// Candidates of `space` for `query`, checked against the model that made the space.
    fn ranked(
        &self,
        scope: &Scope,
        space: Space,
        modality: Modality,
        query: &[f32],
        model: &ModelRef,
        want: Want<'_>,
    ) -> Result<Option<Ranked>> {
        let Want { k, only } = want;
        let Some(made_by) = self.stores.vectors.space_model(scope, space)? else {
            return Ok(None);
        };
        if made_by != *model {
            return Err(Error::ModelMismatch(format!(
                "the {space} vectors of {scope} were made by {} ({}), the query by {} ({}); search with --{}-model {} or re-embed",
                made_by.id,
                made_by.revision,
                model.id,
                model.revision,
                if space == Space::Visual { "visual" } else { "text" },
                made_by.id
            )));
        }
        let filter;
        let candidates = match only {
            Only::All => Candidates::All,
            Only::Segments(ids) => Candidates::Segments(ids),
            Only::Results(r) => {
                filter = r.as_filter();
                Candidates::Results(&filter)
            }
        };
        let rows = self.stores.vectors.search(scope, space, query, k, candidates)?;
        Ok(Some(Ranked::new(modality, rows, query)))
    }

    /// Text search: keyframes (CLIP text tower) and, where they exist, transcripts and metadata
    /// (sentence encoder); several spaces are fused by reciprocal rank fusion.
    pub fn text(&self, scope: &Scope, req: &TextSearch) -> Result<SearchResponse> {
        let query = query_text("query", &req.query)?;
        let k = top_k(req.top_k)?;
        let only = self.only(scope, &req.run_ids, &req.conditions, &req.video_ids)?;
        let mut lists = Vec::new();
        if self.stores.vectors.space_model(scope, Space::Visual)?.is_some() {
            let clip = self.models.visual()?.ok_or_else(|| self.models.missing(Role::Visual))?;
            let q = clip.embed_texts(&[query])?.remove(0);
            lists.extend(self.ranked(
                scope,
                Space::Visual,
                Modality::Visual,
                &q,
                clip.model_ref(),
                Want { k: candidates(k), only: &only },
            )?);
        }
        for space in [Space::Transcript, Space::Metadata] {
            if self.stores.vectors.space_model(scope, space)?.is_some() {
                let enc = self.models.text()?.ok_or_else(|| self.models.missing(Role::Text))?;
                let q = enc.embed(&[query])?.remove(0);
                lists.extend(self.ranked(
                    scope,
                    space,
                    Modality::of_space(space),
                    &q,
                    enc.model_ref(),
                    Want { k: candidates(k), only: &only },
                )?);
            }
        }
        Ok(fuse(lists, k, None))
    }

    /// Keyword search over what was said (every word must occur). Each hit is the primary
    /// segment holding the phrase's middle; `snippet` is the phrase.
    pub fn keyword(&self, scope: &Scope, req: &TextSearch) -> Result<SearchResponse> {
        let query = query_text("query", &req.query)?;
        let k = top_k(req.top_k)?;
        if !req.conditions.is_empty() {
            return Err(Error::invalid("conditions", "keyword search takes no conditions; use text search"));
        }
        let only = self.run_segments(&req.run_ids)?;
        let mut segments_of: HashMap<String, Vec<Segment>> = HashMap::new();
        let mut results: Vec<SearchHit> = Vec::new();
        for (rank, hit) in self.stores.catalog.keyword_phrases(scope, query, candidates(k))?.into_iter().enumerate() {
            if !segments_of.contains_key(hit.video_id.as_str()) {
                let media = self.stores.catalog.media(&hit.video_id)?;
                let segments = all_segments(self.stores.catalog.as_ref(), &hit.video_id, media.primary_kind())?;
                segments_of.insert(hit.video_id.to_string(), segments);
            }
            let segments = &segments_of[hit.video_id.as_str()];
            let mid = (hit.start_us + hit.end_us) / 2;
            let Some(segment) =
                segments.iter().enumerate().find(|(i, s)| s.holds(mid, i + 1 == segments.len())).map(|(_, s)| s)
            else {
                continue;
            };
            if results.iter().any(|r| r.segment_id == segment.segment_id)
                || only.as_ref().is_some_and(|o| !o.contains(&segment.segment_id))
            {
                continue;
            }
            let score = hit.score as f32;
            results.push(SearchHit {
                segment_id: segment.segment_id.clone(),
                video_id: segment.video_id.clone(),
                start: segment.start,
                end: segment.end,
                score,
                thumbnail_path: segment.thumbnail_path.clone(),
                modality: Modality::Keyword,
                matches: vec![ModalityMatch { modality: Modality::Keyword, score, rank: rank + 1 }],
                snippet: Some(hit.text),
                run_id: None,
            });
            if results.len() == k {
                break;
            }
        }
        Ok(SearchResponse { results, score_kind: ScoreKind::Bm25 })
    }

    /// Image search over keyframes; `score` is the cosine similarity.
    pub fn image(&self, scope: &Scope, req: &ImageSearch) -> Result<SearchResponse> {
        let k = top_k(req.top_k)?;
        let only = self.only(scope, &req.run_ids, &req.conditions, &req.video_ids)?;
        let img = decode_image(&req.image_data)?;
        let clip = self.models.visual()?.ok_or_else(|| self.models.missing(Role::Visual))?;
        let q = clip.embed_images(&[img])?.remove(0);
        let lists: Vec<Ranked> = self
            .ranked(
                scope,
                Space::Visual,
                Modality::Image,
                &q,
                clip.model_ref(),
                Want { k: candidates(k), only: &only },
            )?
            .into_iter()
            .collect();
        Ok(fuse(lists, k, None))
    }

    /// Multimodal search: `text_weight * cos(text) + image_weight * cos(image)` over keyframes.
    pub fn multimodal(&self, scope: &Scope, req: &MultimodalSearch) -> Result<SearchResponse> {
        let k = top_k(req.top_k)?;
        let (tw, iw) = weights(req.text_weight, req.image_weight)?;
        let only = self.only(scope, &req.run_ids, &req.conditions, &req.video_ids)?;
        if req.text_query.is_none() && req.image_data.is_none() {
            return Err(Error::invalid("text_query", "give text_query, image_data or both"));
        }
        let text = req.text_query.as_deref().map(|t| query_text("text_query", t)).transpose()?;
        let img = req.image_data.as_ref().map(decode_image).transpose()?;
        let clip = self.models.visual()?.ok_or_else(|| self.models.missing(Role::Visual))?;
        let tq = text.map(|t| clip.embed_texts(&[t])).transpose()?.map(|mut v| v.remove(0));
        let iq = img.map(|i| clip.embed_images(&[i])).transpose()?.map(|mut v| v.remove(0));
        let mut lists = Vec::new();
        let mut queries: Vec<(&[f32], f32)> = Vec::new();
        if let Some(q) = &tq {
            lists.extend(self.ranked(
                scope,
                Space::Visual,
                Modality::Text,
                q,
                clip.model_ref(),
                Want { k: candidates(k), only: &only },
            )?);
            queries.push((q, tw));
        }
        if let Some(q) = &iq {
            lists.extend(self.ranked(
                scope,
                Space::Visual,
                Modality::Image,
                q,
                clip.model_ref(),
                Want { k: candidates(k), only: &only },
            )?);
            queries.push((q, iw));
        }
        Ok(fuse(lists, k, Some(&queries)))
    }

    /// A text search over each run's segments, combined by `aggregation`.
    pub fn multi_run(&self, req: &MultiRunSearch) -> Result<SearchResponse> {
        let query = query_text("query", &req.query)?;
        let k = req.top_k.unwrap_or(5);
        if !(1..=MAX_MULTI_RUN_TOP_K).contains(&k) {
            return Err(Error::invalid("top_k", format!("must be 1 to {MAX_MULTI_RUN_TOP_K} (per run), got {k}")));
        }
        let scopes = match (&req.index_id, req.run_ids.is_empty()) {
            (Some(index), true) => vec![Scope::Index(self.stores.catalog.index(index)?.index_id)],
            (None, true) => return Err(Error::invalid("run_ids", "give run_ids, index_id or both")),
            (_, false) => Vec::new(),
        };
        let mut runs = self.runs(&scopes, &req.run_ids)?;
        runs.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        let aggregation = req.aggregation.unwrap_or_default();
        let mut kind = ScoreKind::Cosine;
        let mut all: Vec<SearchHit> = Vec::new();
        let last = runs.len().saturating_sub(1).max(1) as f32;
        for (i, run) in runs.iter().enumerate() {
            let Some(scope) = self.run_scope(run)? else { continue };
            let per_run = TextSearch {
                query: query.to_string(),
                top_k: Some(k),
                run_ids: vec![run.run_id.to_string()],
                ..Default::default()
            };
            let found = self.text(&scope, &per_run)?;
            kind = found.score_kind;
            let weight = if aggregation == Aggregation::Weighted { 1.0 - 0.5 * i as f32 / last } else { 1.0 };
            all.extend(found.results.into_iter().map(|mut h| {
                h.score *= weight;
                h.run_id = Some(run.run_id.clone());
                h
            }));
        }
        all.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| tie_hits(a, b)));
        if aggregation != Aggregation::All {
            let mut seen = HashSet::new();
            all.retain(|h| seen.insert(h.segment_id.clone()));
            all.truncate(k);
        }
        Ok(SearchResponse { results: all, score_kind: kind })
    }

    /// The scope of a run's media (`None` when the run covers no media any more).
    fn run_scope(&self, run: &RunOutline) -> Result<Option<Scope>> {
        if let Some(index) = &run.index_id {
            return Ok(Some(Scope::Index(index.clone())));
        }
        for video in self.stores.prompts.run_videos(run.run_id.as_str())? {
            match self.stores.catalog.media(video.as_str()) {
                Ok(m) => return Ok(Some(Scope::of(m.index_id.as_ref()))),
                Err(Error::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}
