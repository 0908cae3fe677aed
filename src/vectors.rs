//! The engine's vector side: which models it uses, embedding segments into the catalog, the ANN
//! indexes kept in step with it, and raw vectors out (the API's `embeddings.video` / `.text`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use crate::embed::{
    self, clip::CLIP_FILES, source, text::TEXT_MODEL_FILES, ClipEncoder, ModelRef, TextEncoder, WhisperModel,
};
use crate::error::{Error, Result};
use crate::store::ann::{AnnConfig, AnnIndex};
use crate::store::{NewVector, Space};
use crate::{Engine, Status};

/// Which model to use for a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelChoice {
    /// The default model if its files can be found; without them the role is off, and
    /// ingest says so in its warnings.
    Default,
    /// This folder or id; missing files are an error.
    Use(String),
    /// No model for this role.
    Off,
}

/// Engine settings beyond the data folder.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineOptions {
    /// Image-text model for keyframes and text queries. Default: [`embed::DEFAULT_VISUAL_MODEL`] when present.
    pub visual_model: ModelChoice,
    /// Sentence encoder for transcripts and metadata. Default: [`embed::DEFAULT_TEXT_MODEL`] when present.
    pub text_model: ModelChoice,
    /// Speech-to-text model. Default: [`embed::DEFAULT_ASR_MODEL`] when present.
    pub asr_model: ModelChoice,
    pub ann: AnnConfig,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            visual_model: ModelChoice::Default,
            text_model: ModelChoice::Default,
            asr_model: ModelChoice::Default,
            ann: AnnConfig::default(),
        }
    }
}

/// Models loaded on first use.
#[derive(Default)]
pub(crate) struct Models {
    visual: OnceLock<std::result::Result<Option<Arc<ClipEncoder>>, String>>,
    text: OnceLock<std::result::Result<Option<Arc<TextEncoder>>, String>>,
    asr: OnceLock<std::result::Result<Option<Arc<Mutex<WhisperModel>>>, String>>,
}

/// ANN indexes by (scope, space), loaded or rebuilt on first use.
#[derive(Default)]
pub(crate) struct AnnCache {
    open: Mutex<HashMap<(String, Space), Arc<AnnIndex>>>,
    dirty: Mutex<Vec<(String, Space)>>,
}

fn load_model<T>(
    choice: &ModelChoice,
    default_id: &str,
    required: &[&str],
    data_dir: &Path,
    load: impl FnOnce(&embed::ModelFiles) -> Result<T>,
) -> std::result::Result<Option<Arc<T>>, String> {
    let spec = match choice {
        ModelChoice::Off => return Ok(None),
        ModelChoice::Default => default_id,
        ModelChoice::Use(s) => s.as_str(),
    };
    match source::resolve(spec, required, &source::search_dirs(Some(data_dir))) {
        Ok(files) => load(&files).map(|m| Some(Arc::new(m))).map_err(|e| e.to_string()),
        // Remember only where we looked: `missing()` and the ingest warning add the rest.
        Err(Error::ModelMissing { hint, .. }) if *choice == ModelChoice::Default => Err(format!("off: {hint}")),
        Err(e) => Err(e.to_string()),
    }
}

impl Engine {
    /// The visual model, loading it on first use. `Ok(None)` when turned off.
    pub fn visual_model(&self) -> Result<Option<Arc<ClipEncoder>>> {
        let loaded = self.models.visual.get_or_init(|| {
            load_model(&self.options.visual_model, embed::DEFAULT_VISUAL_MODEL, CLIP_FILES, self.data_dir(), |f| {
                ClipEncoder::load(f, &embed::device())
            })
        });
        model_result(loaded)
    }

    /// The sentence encoder, loading it on first use. `Ok(None)` when turned off.
    pub fn text_model(&self) -> Result<Option<Arc<TextEncoder>>> {
        let loaded = self.models.text.get_or_init(|| {
            load_model(&self.options.text_model, embed::DEFAULT_TEXT_MODEL, TEXT_MODEL_FILES, self.data_dir(), |f| {
                TextEncoder::load(f, &embed::device())
            })
        });
        model_result(loaded)
    }

    /// The speech model, loading it on first use. `Ok(None)` when turned off or, for the
    /// default, not found.
    pub fn asr_model(&self) -> Result<Option<Arc<Mutex<WhisperModel>>>> {
        let loaded = self.models.asr.get_or_init(|| {
            // The weights file differs by layout (model.safetensors or CTranslate2's model.bin).
            load_model(
                &self.options.asr_model,
                embed::DEFAULT_ASR_MODEL,
                &["config.json", "tokenizer.json"],
                self.data_dir(),
                |f| WhisperModel::load(f, &embed::device()).map(Mutex::new),
            )
        });
        model_result(loaded)
    }

    /// Why the speech model is off, when the default was asked for and not found.
    pub(crate) fn asr_off_reason(&self) -> Option<String> {
        self.models.asr.get().and_then(|r| r.as_ref().err()).and_then(|r| r.strip_prefix("off: ").map(str::to_string))
    }

    /// Why a role has no model, when the default was asked for and not found.
    pub(crate) fn model_off_reason(&self, space: Space) -> Option<String> {
        let reason = match space {
            Space::Visual => self.models.visual.get().and_then(|r| r.as_ref().err().cloned()),
            _ => self.models.text.get().and_then(|r| r.as_ref().err().cloned()),
        };
        reason.and_then(|r| r.strip_prefix("off: ").map(str::to_string))
    }

    /// The ANN index of a scope's space, loaded from its file when that matches the catalog,
    /// rebuilt from the catalog otherwise. `None` when the space holds no vectors.
    pub(crate) fn ann(&self, scope: &str, space: Space) -> Result<Option<Arc<AnnIndex>>> {
        let key = (scope.to_string(), space);
        if let Some(a) = self.ann.open.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(Some(a.clone()));
        }
        let Some(model) = self.catalog().space_model(scope, space)? else {
            return Ok(None);
        };
        let current = self.catalog().fingerprint(scope, space)?;
        let path = self.layout().ann_file(scope, space.as_str());
        let saved = self.catalog().ann_fingerprint(scope, space)?;
        let loaded = match saved {
            Some(fp) if fp == current => {
                AnnIndex::load(&path, model.dims, self.options.ann)?.filter(|a| a.len() as u64 == current.count)
            }
            _ => None,
        };
        let ann = match loaded {
            Some(a) => a,
            None => {
                let rows = self.catalog().space_vectors(scope, space)?;
                let a = AnnIndex::build(model.dims, self.options.ann, &rows)?;
                a.save(&path)?;
                self.catalog().set_ann_fingerprint(scope, space, current)?;
                a
            }
        };
        let ann = Arc::new(ann);
        self.ann.open.lock().unwrap_or_else(|p| p.into_inner()).insert(key, ann.clone());
        Ok(Some(ann))
    }

    /// Store vectors for segments of one scope and keep its ANN index in step.
    pub(crate) fn add_vectors(
        &self,
        scope: &str,
        space: Space,
        model: &ModelRef,
        rows: &[NewVector<'_>],
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        // Open (or rebuild) the index before the insert, so it does not already hold the new rows.
        let existing = self.ann(scope, space)?;
        let keys = self.catalog().insert_vectors(scope, space, model, rows)?;
        match existing {
            Some(ann) => {
                for (key, row) in keys.iter().zip(rows) {
                    ann.add(*key, row.vector)?;
                }
                self.ann.dirty.lock().unwrap_or_else(|p| p.into_inner()).push((scope.to_string(), space));
            }
            // First vectors of this space: build the index from the catalog.
            None => {
                self.ann(scope, space)?;
            }
        }
        Ok(())
    }

    /// Save every ANN index changed since the last save and record what it holds. A crash
    /// before this only means a rebuild on the next open.
    pub(crate) fn flush_ann(&self) -> Result<()> {
        let dirty: Vec<(String, Space)> =
            std::mem::take(&mut *self.ann.dirty.lock().unwrap_or_else(|p| p.into_inner()));
        let mut done = Vec::new();
        for key in dirty {
            if done.contains(&key) {
                continue;
            }
            let ann = self.ann.open.lock().unwrap_or_else(|p| p.into_inner()).get(&key).cloned();
            if let Some(ann) = ann {
                let (scope, space) = (&key.0, key.1);
                ann.save(&self.layout().ann_file(scope, space.as_str()))?;
                self.catalog().set_ann_fingerprint(scope, space, self.catalog().fingerprint(scope, space)?)?;
            }
            done.push(key);
        }
        Ok(())
    }

    /// Forget the loaded ANN indexes of a scope (after deletes): the next use checks the file
    /// against the catalog and rebuilds it.
    pub(crate) fn invalidate_ann(&self, scope: &str) {
        self.ann.open.lock().unwrap_or_else(|p| p.into_inner()).retain(|(s, _), _| s != scope);
        self.ann.dirty.lock().unwrap_or_else(|p| p.into_inner()).retain(|(s, _)| s != scope);
    }

    /// Embed the keyframes of these video segments (thumbnails on disk) into the visual space.
    /// Returns how many vectors were stored; `Ok(0)` without a visual model.
    pub(crate) fn embed_keyframes(&self, segments: &[(String, String, Option<String>)]) -> Result<usize> {
        let Some(clip) = self.visual_model()? else {
            return Ok(0);
        };
        let mut stored = 0;
        for chunk in segments.chunks(crate::embed::clip::IMAGE_BATCH) {
            let mut images = Vec::with_capacity(chunk.len());
            let mut rows = Vec::with_capacity(chunk.len());
            for (scope, segment_id, thumb) in chunk {
                let Some(thumb) = thumb else { continue };
                let img = image::open(thumb)
                    .map_err(|e| Error::Catalog { path: thumb.into(), message: format!("thumbnail: {e}") })?;
                images.push(crate::search::flatten_alpha(img));
                rows.push((scope.as_str(), segment_id.as_str()));
            }
            let vectors = clip.embed_images(&images)?;
            // Group by scope (a batch may span media of several indexes).
            let mut by_scope: HashMap<&str, Vec<NewVector<'_>>> = HashMap::new();
            for ((scope, segment_id), v) in rows.iter().zip(&vectors) {
                by_scope.entry(scope).or_default().push(NewVector { segment_id, vector: v, source_text: None });
            }
            for (scope, rows) in by_scope {
                self.add_vectors(scope, Space::Visual, clip.model_ref(), &rows)?;
                stored += rows.len();
            }
        }
        Ok(stored)
    }

    /// Embed `text` for a segment into the transcript or metadata space with the sentence encoder.
    pub fn add_segment_text(&self, segment_id: &str, space: Space, text: &str) -> Result<()> {
        if space == Space::Visual {
            return Err(Error::invalid("space", "segment text goes to the transcript or metadata space"));
        }
        let encoder = self.text_model()?.ok_or_else(|| missing(self, space))?;
        let segment = self.catalog().get_segment(segment_id)?;
        let media = self.catalog().get_media(&segment.video_id)?;
        let v = encoder.embed(&[text])?.remove(0);
        let scope = crate::store::vectors::scope_of(media.index_id.as_deref()).to_string();
        self.add_vectors(
            &scope,
            space,
            encoder.model_ref(),
            &[NewVector { segment_id, vector: &v, source_text: Some(text) }],
        )?;
        self.flush_ann()
    }

    /// The embeddings resource: raw vectors for other vector stores.
    pub fn embeddings(&self) -> Embeddings<'_> {
        Embeddings { engine: self }
    }

    /// Embed every completed video segment that has no visual vector yet (`index` `None`: all
    /// scopes). With `reembed`, the scope's visual vectors are dropped first, which is how an
    /// index moves to another model. Returns the number of vectors stored.
    pub fn embed(&self, index: Option<&str>, reembed: bool) -> Result<usize> {
        let scope = index.map(|i| self.catalog().get_index(i)).transpose()?.map(|i| i.index_id);
        self.visual_model()?.ok_or_else(|| missing(self, Space::Visual))?;
        if reembed {
            let scopes = match &scope {
                Some(s) => vec![s.clone()],
                None => self.catalog().scopes_with_vectors(Space::Visual)?,
            };
            for s in scopes {
                self.catalog().delete_space(&s, Space::Visual)?;
                self.invalidate_ann(&s);
            }
        }
        let todo = self.catalog().segments_without_vectors(scope.as_deref(), Space::Visual)?;
        let n = self.embed_keyframes(&todo)?;
        self.flush_ann()?;
        Ok(n)
    }
}

fn model_result<T>(r: &std::result::Result<Option<Arc<T>>, String>) -> Result<Option<Arc<T>>> {
    match r {
        Ok(m) => Ok(m.clone()),
        Err(e) if e.starts_with("off: ") => Ok(None),
        Err(e) => Err(Error::ModelUnavailable(e.clone())),
    }
}

/// One stored vector of a media item (the API's `embeddings.video` items).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentEmbedding {
    pub segment_id: String,
    pub start: f64,
    pub end: f64,
    /// The space: `visual`, `transcript` or `metadata`.
    pub embedding_option: String,
    /// Always `segment` here: one vector per segment.
    pub embedding_scope: String,
    pub model: String,
    pub model_revision: String,
    pub embedding: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoEmbeddings {
    pub status: String,
    /// The video id.
    pub id: String,
    pub data: Vec<SegmentEmbedding>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextEmbedding {
    pub embedding: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextEmbeddings {
    pub status: String,
    /// The space the vector belongs to and the model that made it.
    pub space: Space,
    pub model: String,
    pub model_revision: String,
    /// Always exactly one vector (a list to match `embeddings.video`).
    pub data: Vec<TextEmbedding>,
}

/// `client.embeddings`: the stored per-segment vectors of a media item, and text vectors.
pub struct Embeddings<'a> {
    engine: &'a Engine,
}

impl Embeddings<'_> {
    /// Stored vectors of a completed media item (409 while it is still processing).
    pub fn video(&self, video_id: &str) -> Result<VideoEmbeddings> {
        let media = self.engine.media().retrieve(video_id)?;
        if media.status != Status::Completed {
            return Err(Error::Conflict(format!(
                "video {video_id} is {}; its vectors exist once it is completed",
                media.status.as_str()
            )));
        }
        let segments: HashMap<String, crate::store::Segment> =
            [crate::store::SegmentKind::Video, crate::store::SegmentKind::Audio]
                .into_iter()
                .map(|k| self.engine.catalog().all_segments(video_id, k))
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .flatten()
                .map(|s| (s.segment_id.clone(), s))
                .collect();
        let data = self
            .engine
            .catalog()
            .media_vectors(video_id)?
            .into_iter()
            .filter_map(|v| {
                let s = segments.get(&v.segment_id)?;
                Some(SegmentEmbedding {
                    start: s.start,
                    end: s.end,
                    segment_id: v.segment_id,
                    embedding_option: v.space.as_str().into(),
                    embedding_scope: "segment".into(),
                    model: v.model.id,
                    model_revision: v.model.revision,
                    embedding: v.vector,
                })
            })
            .collect();
        Ok(VideoEmbeddings { status: "completed".into(), id: video_id.into(), data })
    }

    /// The vector of a text in `space`: the visual space (CLIP's text tower, comparable with
    /// keyframe vectors; the default) or the transcript/metadata space (the sentence encoder).
    pub fn text(&self, text: &str, space: Space) -> Result<TextEmbeddings> {
        let text = crate::search::query_text("text", text)?;
        let (v, model) = match space {
            Space::Visual => {
                let clip = self.engine.visual_model()?.ok_or_else(|| missing(self.engine, Space::Visual))?;
                (clip.embed_texts(&[text])?.remove(0), clip.model_ref().clone())
            }
            _ => {
                let enc = self.engine.text_model()?.ok_or_else(|| missing(self.engine, space))?;
                (enc.embed(&[text])?.remove(0), enc.model_ref().clone())
            }
        };
        Ok(TextEmbeddings {
            status: "completed".into(),
            space,
            model: model.id,
            model_revision: model.revision,
            data: vec![TextEmbedding { embedding: v }],
        })
    }
}

/// The error for a role without a model.
pub(crate) fn missing(engine: &Engine, space: Space) -> Error {
    let (model, files) = match space {
        Space::Visual => (embed::DEFAULT_VISUAL_MODEL, CLIP_FILES),
        _ => (embed::DEFAULT_TEXT_MODEL, TEXT_MODEL_FILES),
    };
    Error::ModelMissing {
        model: model.into(),
        missing: files.iter().map(|s| s.to_string()).collect(),
        hint: engine.model_off_reason(space).unwrap_or_else(|| "that model is turned off for this engine".into()),
    }
}
