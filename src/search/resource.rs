//! The search resource: request checks, query embedding, candidates per space, fusion.

use super::{
    candidates, decode_image, fuse, query_text, top_k, weights, ImageSearch, ModalityMatch, MultimodalSearch, Ranked,
    ScoreKind, SearchHit, SearchResponse, TextSearch,
};
use crate::error::{Error, Result};
use crate::store::Space;

/// `client.search`: text, image and multimodal search over an index (`Some(index id or name)`)
/// or the playground (`None`).
pub struct Search<'a> {
    engine: &'a crate::Engine,
}

impl<'a> Search<'a> {
    pub(crate) fn new(engine: &'a crate::Engine) -> Self {
        Search { engine }
    }

    fn scope(&self, index: Option<&str>) -> Result<String> {
        Ok(match index {
            Some(i) => self.engine.catalog().get_index(i)?.index_id,
            None => String::new(),
        })
    }

    /// Prompt runs arrive with the prompts issue; until then every run id is unknown.
    fn check_runs(&self, run_ids: &[String]) -> Result<()> {
        match run_ids.first() {
            Some(id) => Err(Error::NotFound {
                kind: "prompt run",
                id: id.clone(),
                hint: ". This engine has no prompt runs yet: search the ingest segmentation by leaving run_ids empty"
                    .into(),
            }),
            None => Ok(()),
        }
    }

    /// Candidates of `space` for `query`, checked against the model that made the space.
    fn ranked(
        &self,
        scope: &str,
        space: Space,
        modality: &str,
        query: &[f32],
        model: &crate::embed::ModelRef,
        k: usize,
    ) -> Result<Option<Ranked>> {
        let Some(ann) = self.engine.ann(scope, space)? else {
            return Ok(None);
        };
        if let Some(made_by) = self.engine.catalog().space_model(scope, space)? {
            if made_by != *model {
                return Err(Error::ModelMismatch(format!(
                    "the {} vectors here were made by {} ({}), the query by {} ({}); search with --{}-model {} or re-embed",
                    space.as_str(),
                    made_by.id,
                    made_by.revision,
                    model.id,
                    model.revision,
                    if space == Space::Visual { "visual" } else { "text" },
                    made_by.id
                )));
            }
        }
        let keys: Vec<u64> = ann.search(query, k)?.into_iter().map(|(key, _)| key).collect();
        let rows = self.engine.catalog().hit_rows(&keys)?;
        Ok(Some(Ranked::new(modality, rows, query)))
    }

    /// Text search: keyframes (CLIP text tower) and, where they exist, transcripts and metadata
    /// (sentence encoder); several spaces are fused by reciprocal rank fusion.
    pub fn text(&self, index: Option<&str>, req: &TextSearch) -> Result<SearchResponse> {
        let scope = self.scope(index)?;
        let query = query_text("query", &req.query)?;
        let k = top_k(req.top_k)?;
        self.check_runs(&req.run_ids)?;
        let mut lists = Vec::new();
        if self.engine.catalog().space_model(&scope, Space::Visual)?.is_some() {
            let clip =
                self.engine.visual_model()?.ok_or_else(|| crate::vectors::missing(self.engine, Space::Visual))?;
            let q = clip.embed_texts(&[query])?.remove(0);
            lists.extend(self.ranked(&scope, Space::Visual, "visual", &q, clip.model_ref(), candidates(k))?);
        }
        for space in [Space::Transcript, Space::Metadata] {
            if self.engine.catalog().space_model(&scope, space)?.is_some() {
                let enc = self.engine.text_model()?.ok_or_else(|| crate::vectors::missing(self.engine, space))?;
                let q = enc.embed(&[query])?.remove(0);
                lists.extend(self.ranked(&scope, space, space.as_str(), &q, enc.model_ref(), candidates(k))?);
            }
        }
        Ok(fuse(lists, k, None))
    }

    /// Keyword search over what was said (FTS5 over transcript phrases; every word must occur).
    /// Each hit is the segment holding the phrase's middle; `snippet` is the phrase.
    pub fn keyword(&self, index: Option<&str>, req: &TextSearch) -> Result<SearchResponse> {
        let scope = self.scope(index)?;
        let query = query_text("query", &req.query)?;
        let k = top_k(req.top_k)?;
        self.check_runs(&req.run_ids)?;
        let mut results: Vec<SearchHit> = Vec::new();
        for (rank, hit) in self.engine.catalog().keyword_phrases(&scope, query, candidates(k))?.into_iter().enumerate()
        {
            let Some(segment) = self.engine.catalog().segment_at(&hit.video_id, (hit.start_us + hit.end_us) / 2)?
            else {
                continue;
            };
            if results.iter().any(|r| r.segment_id == segment.segment_id) {
                continue;
            }
            let score = -hit.bm25 as f32;
            results.push(SearchHit {
                segment_id: segment.segment_id,
                video_id: segment.video_id,
                start: segment.start,
                end: segment.end,
                score,
                thumbnail_path: segment.thumbnail_path,
                modality: "keyword".into(),
                matches: vec![ModalityMatch { modality: "keyword".into(), score, rank: rank + 1 }],
                snippet: Some(hit.text),
            });
            if results.len() == k {
                break;
            }
        }
        Ok(SearchResponse { results, score_kind: ScoreKind::Bm25 })
    }

    /// Image search over keyframes; `score` is the cosine similarity.
    pub fn image(&self, index: Option<&str>, req: &ImageSearch) -> Result<SearchResponse> {
        let scope = self.scope(index)?;
        let k = top_k(req.top_k)?;
        self.check_runs(&req.run_ids)?;
        let img = decode_image(&req.image_data)?;
        let clip = self.engine.visual_model()?.ok_or_else(|| crate::vectors::missing(self.engine, Space::Visual))?;
        let q = clip.embed_images(&[img])?.remove(0);
        let lists: Vec<Ranked> =
            self.ranked(&scope, Space::Visual, "image", &q, clip.model_ref(), candidates(k))?.into_iter().collect();
        Ok(fuse(lists, k, None))
    }

    /// Multimodal search: `text_weight * cos(text) + image_weight * cos(image)` over keyframes.
    pub fn multimodal(&self, index: Option<&str>, req: &MultimodalSearch) -> Result<SearchResponse> {
        let scope = self.scope(index)?;
        let k = top_k(req.top_k)?;
        let (tw, iw) = weights(req.text_weight, req.image_weight)?;
        self.check_runs(&req.run_ids)?;
        if req.text_query.is_none() && req.image_data.is_none() {
            return Err(Error::invalid("text_query", "give text_query, image_data or both"));
        }
        let text = req.text_query.as_deref().map(|t| query_text("text_query", t)).transpose()?;
        let img = req.image_data.as_ref().map(decode_image).transpose()?;
        let clip = self.engine.visual_model()?.ok_or_else(|| crate::vectors::missing(self.engine, Space::Visual))?;
        let tq = text.map(|t| clip.embed_texts(&[t])).transpose()?.map(|mut v| v.remove(0));
        let iq = img.map(|i| clip.embed_images(&[i])).transpose()?.map(|mut v| v.remove(0));
        let mut lists = Vec::new();
        let mut queries: Vec<(&[f32], f32)> = Vec::new();
        if let Some(q) = &tq {
            lists.extend(self.ranked(&scope, Space::Visual, "text", q, clip.model_ref(), candidates(k))?);
            queries.push((q, tw));
        }
        if let Some(q) = &iq {
            lists.extend(self.ranked(&scope, Space::Visual, "image", q, clip.model_ref(), candidates(k))?);
            queries.push((q, iw));
        }
        Ok(fuse(lists, k, Some(&queries)))
    }
}
