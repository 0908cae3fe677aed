//! `engine.embeddings()`: raw vectors out (per segment of a video, or of a text), and embedding
//! keyframes that have no vector yet (after adding a visual model) or all of them again.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::Engine;
use crate::error::{Error, Result};
use crate::ids::{SegmentId, VideoId};
use crate::jobs::JobContext;
use crate::ml::Role;
use crate::pipeline::embed::{embed_texts, embed_thumbnails};
use crate::store::all_segments;
use crate::types::{Scope, Segment, SegmentKind, Space, Status};

/// What a vector stands for: one segment (the only scope this engine makes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EmbeddingScope {
    Segment,
}

/// One stored vector of a media item (the API's `embeddings.video` items).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SegmentEmbedding {
    pub segment_id: SegmentId,
    pub start: f64,
    pub end: f64,
    /// The space the vector lives in.
    pub embedding_option: Space,
    pub embedding_scope: EmbeddingScope,
    pub model: String,
    pub model_revision: String,
    pub embedding: Vec<f32>,
}

/// The vectors of a completed video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VideoEmbeddings {
    /// The video's status (always `completed`: vectors exist once it is).
    pub status: Status,
    /// The video id.
    pub id: VideoId,
    pub data: Vec<SegmentEmbedding>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TextEmbedding {
    pub embedding: Vec<f32>,
}

/// The vector of a text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TextEmbeddings {
    /// The space the vector belongs to and the model that made it.
    pub space: Space,
    pub model: String,
    pub model_revision: String,
    /// Always exactly one vector (a list to match `embeddings.video`).
    pub data: Vec<TextEmbedding>,
}

/// `client.embeddings`.
pub struct Embeddings<'a> {
    engine: &'a Engine,
}

impl<'a> Embeddings<'a> {
    pub(super) fn new(engine: &'a Engine) -> Self {
        Embeddings { engine }
    }

    /// Stored vectors of a completed media item (409 while it is still processing).
    pub fn video(&self, video_id: &str) -> Result<VideoEmbeddings> {
        let stores = self.engine.stores();
        let media = stores.catalog.media(video_id)?;
        if media.status != Status::Completed {
            return Err(Error::Conflict(format!(
                "video {video_id} is {}; its vectors exist once it is completed",
                media.status
            )));
        }
        let segments: HashMap<SegmentId, Segment> = [SegmentKind::Video, SegmentKind::Audio]
            .into_iter()
            .map(|k| all_segments(stores.catalog.as_ref(), video_id, k))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .map(|s| (s.segment_id.clone(), s))
            .collect();
        let data = stores
            .vectors
            .media_vectors(video_id)?
            .into_iter()
            .filter_map(|v| {
                let s = segments.get(&v.segment_id)?;
                Some(SegmentEmbedding {
                    start: s.start,
                    end: s.end,
                    segment_id: v.segment_id,
                    embedding_option: v.space,
                    embedding_scope: EmbeddingScope::Segment,
                    model: v.model.id,
                    model_revision: v.model.revision,
                    embedding: v.vector,
                })
            })
            .collect();
        Ok(VideoEmbeddings { status: media.status, id: media.video_id, data })
    }

    /// The vector of a text in `space`: the visual space (CLIP's text tower, comparable with
    /// keyframe vectors) or the transcript/metadata space (the sentence encoder).
    pub fn text(&self, text: &str, space: Space) -> Result<TextEmbeddings> {
        let text = crate::search::query_text("text", text)?;
        let models = &self.engine.core().models;
        let (v, model) = match space {
            Space::Visual => {
                let clip = models.visual()?.ok_or_else(|| models.missing(Role::Visual))?;
                (clip.embed_texts(&[text])?.remove(0), clip.model_ref().clone())
            }
            _ => {
                let enc = models.text()?.ok_or_else(|| models.missing(Role::Text))?;
                (enc.embed(&[text])?.remove(0), enc.model_ref().clone())
            }
        };
        Ok(TextEmbeddings {
            space,
            model: model.id,
            model_revision: model.revision,
            data: vec![TextEmbedding { embedding: v }],
        })
    }

    /// Embed every completed segment's keyframe that has no visual vector yet, in one index
    /// (id or name) or everywhere (`None`). Returns the number of vectors stored.
    pub fn embed_missing(&self, index: Option<&str>) -> Result<usize> {
        let core = self.engine.core();
        let scope = self.scope(index)?;
        core.models.visual()?.ok_or_else(|| core.models.missing(Role::Visual))?;
        let todo = core.stores.catalog.thumbnails_without_vector(scope.as_ref(), Space::Visual)?;
        let done = embed_thumbnails(&core.stores, &core.models, &todo, &JobContext::detached())?;
        core.stores.vectors.flush()?;
        if let Some(first) = done.skipped.first() {
            return Err(Error::media(first.clone(), format!("{} keyframes could not be read", done.skipped.len())));
        }
        Ok(done.stored)
    }

    /// Drop the visual vectors of one index (or everywhere) and embed every keyframe again:
    /// how an index moves to another visual model. Returns the number of vectors stored.
    pub fn reembed(&self, index: Option<&str>) -> Result<usize> {
        let core = self.engine.core();
        let scope = self.scope(index)?;
        core.models.visual()?.ok_or_else(|| core.models.missing(Role::Visual))?;
        let scopes = match &scope {
            Some(s) => vec![s.clone()],
            None => core.stores.vectors.scopes_with_vectors(Space::Visual)?,
        };
        for s in scopes {
            core.stores.vectors.drop_space(&s, Space::Visual)?;
        }
        self.embed_missing(index)
    }

    /// Embed `text` for a segment into the transcript or metadata space with the sentence encoder.
    pub fn add_segment_text(&self, segment_id: &str, space: Space, text: &str) -> Result<()> {
        if space == Space::Visual {
            return Err(Error::invalid("space", "segment text goes to the transcript or metadata space"));
        }
        let core = self.engine.core();
        let segment = core.stores.catalog.segment(segment_id)?;
        let media = core.stores.catalog.media(&segment.video_id)?;
        let scope = Scope::of(media.index_id.as_ref());
        embed_texts(&core.stores, &core.models, &scope, space, &[(segment.segment_id, text.to_string())])?;
        core.stores.vectors.flush()
    }

    fn scope(&self, index: Option<&str>) -> Result<Option<Scope>> {
        index.map(|i| Ok(Scope::Index(self.engine.stores().catalog.index(i)?.index_id))).transpose()
    }
}
