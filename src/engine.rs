//! The engine: one data folder, and resource handles shaped like the SDK's
//! (`engine.indexes().create(..)`, `engine.media().ingest(..)`, `engine.media().list_segments(..)`).

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::ingest::{self, IngestOptions, Progress};
use crate::media::MediaType;
use crate::store::{
    Catalog, Completed, Index, Layout, Media, MediaScope, NewMedia, Page, PageRequest, Segment, SegmentKind, Space,
    Status,
};
use crate::vectors::{AnnCache, EngineOptions, Models};

/// An open data folder. All state lives on disk: opening the same folder again sees everything.
pub struct Engine {
    layout: Layout,
    catalog: Catalog,
    pub(crate) options: EngineOptions,
    pub(crate) models: Models,
    pub(crate) ann: AnnCache,
}

impl Engine {
    /// Open (creating if needed) the data folder at `dir` with default models.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, EngineOptions::default())
    }

    /// Open the data folder at `dir` with the given models and ANN settings.
    pub fn open_with(dir: impl AsRef<Path>, options: EngineOptions) -> Result<Self> {
        let layout = Layout::create(dir.as_ref())?;
        let catalog = Catalog::open(&layout.catalog())?;
        Ok(Engine { layout, catalog, options, models: Models::default(), ann: AnnCache::default() })
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn data_dir(&self) -> &Path {
        self.layout.root()
    }

    /// The catalog, for checks and tools.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn indexes(&self) -> Indexes<'_> {
        Indexes { engine: self }
    }

    pub fn media(&self) -> MediaResource<'_> {
        MediaResource { engine: self }
    }

    pub fn search(&self) -> crate::search::Search<'_> {
        crate::search::Search::new(self)
    }
}

/// `client.indexes`: create, list, retrieve, delete.
pub struct Indexes<'a> {
    engine: &'a Engine,
}

impl Indexes<'_> {
    /// Create an index; a name in use is a conflict (409) unless `idempotency_key` created it.
    pub fn create(&self, name: &str, idempotency_key: Option<&str>) -> Result<Index> {
        self.engine.catalog.create_index(name, idempotency_key)
    }

    pub fn list(&self) -> Result<Vec<Index>> {
        self.engine.catalog.list_indexes()
    }

    /// By id (`idx_...`) or name.
    pub fn retrieve(&self, id_or_name: &str) -> Result<Index> {
        self.engine.catalog.get_index(id_or_name)
    }

    /// Delete the index, its media, their segments and their files.
    pub fn delete(&self, id_or_name: &str) -> Result<()> {
        let index_id = self.retrieve(id_or_name)?.index_id;
        for video_id in self.engine.catalog.delete_index(&index_id)? {
            self.engine.layout.remove_media_files(&video_id)?;
        }
        for space in Space::ALL {
            self.engine.catalog.delete_space(&index_id, space)?;
        }
        self.engine.invalidate_ann(&index_id);
        let dir = self.engine.layout.ann_file(&index_id, "x");
        if let Some(dir) = dir.parent().filter(|d| d.exists()) {
            std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        Ok(())
    }

    /// Media of an index, paginated.
    pub fn list_videos(&self, id_or_name: &str, page: &PageRequest) -> Result<Page<Media>> {
        let index = self.retrieve(id_or_name)?;
        self.engine.catalog.list_media(MediaScope::Index(&index.index_id), page)
    }
}

/// The outcome of ingesting one file, as the CLI prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestResult {
    /// `None` only when the path could not be read at all, so nothing was recorded.
    pub video_id: Option<String>,
    pub source_path: String,
    pub status: Status,
    pub media_type: Option<MediaType>,
    /// Seconds.
    pub duration: Option<f64>,
    /// True when this content (or idempotency key) was already ingested and nothing was redone.
    pub deduplicated: bool,
    pub error: Option<String>,
    /// Problems that did not stop the ingest.
    pub warnings: Vec<String>,
    /// Video segments (for audio files: the audio segments).
    pub segments: Vec<Segment>,
    /// Audio segments of a video with sound.
    pub audio_segments: Vec<Segment>,
}

/// Which segments [`MediaResource::list_segments`] returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SegmentQuery {
    /// `video` or `audio`; default: the media's primary kind (audio for audio files, video otherwise).
    pub kind: Option<SegmentKind>,
    #[serde(flatten)]
    pub page: PageRequest,
}

/// Result of a batch lookup: what was found, and the ids that were not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch<T> {
    pub data: Vec<T>,
    pub not_found: Vec<String>,
}

/// A status snapshot of one media item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusSnapshot {
    pub video_id: String,
    pub status: Status,
    pub error: Option<String>,
    pub updated_at: String,
}

/// `client.videos`: ingest, retrieve, list, delete, segments, batch.
pub struct MediaResource<'a> {
    engine: &'a Engine,
}

impl MediaResource<'_> {
    /// Ingest one file with default settings into the playground, or as `opts` says.
    pub fn ingest(&self, path: impl AsRef<Path>, opts: &IngestOptions) -> Result<IngestResult> {
        let mut results = self.ingest_many(&[path.as_ref().to_path_buf()], opts, &mut |_, _| {})?;
        Ok(results.remove(0))
    }

    /// Ingest files (folders are walked, in name order). A file that fails is recorded as
    /// `failed` with its error and the batch goes on; only a bad request fails the whole call.
    pub fn ingest_many(
        &self,
        paths: &[PathBuf],
        opts: &IngestOptions,
        on_progress: &mut dyn FnMut(&Path, Progress),
    ) -> Result<Vec<IngestResult>> {
        opts.segmentation.validate()?;
        if opts.idempotency_key.is_some() && paths.len() > 1 {
            return Err(Error::invalid(
                "idempotency_key",
                "applies to a single file; ingest files one by one to give each a key",
            ));
        }
        let index_id = opts.index.as_deref().map(|i| self.engine.catalog.get_index(i)).transpose()?.map(|i| i.index_id);
        // Models asked for by name must load before anything is stored.
        self.engine.visual_model()?;
        crate::transcribe::speech_model(self.engine, opts.enable_transcription)?;
        let files = expand_paths(paths)?;
        let mut results = Vec::with_capacity(files.len());
        for file in files {
            let result = self.ingest_file(&file, index_id.as_deref(), opts, &mut |p| on_progress(&file, p));
            results.push(match result {
                Ok(r) => r,
                // A broken catalog or a reused idempotency key stops the batch; a bad file does not.
                Err(e @ (Error::Catalog { .. } | Error::Conflict(_))) => return Err(e),
                Err(e) => IngestResult {
                    video_id: None,
                    source_path: file.display().to_string(),
                    status: Status::Failed,
                    media_type: None,
                    duration: None,
                    deduplicated: false,
                    error: Some(e.to_string()),
                    warnings: Vec::new(),
                    segments: Vec::new(),
                    audio_segments: Vec::new(),
                },
            });
        }
        self.engine.flush_ann()?;
        Ok(results)
    }

    /// Process again every media item an interrupted ingest left `pending` or `processing`,
    /// from its recorded source path, under its existing id.
    pub fn resume(
        &self,
        opts: &IngestOptions,
        on_progress: &mut dyn FnMut(&Path, Progress),
    ) -> Result<Vec<IngestResult>> {
        let mut results = Vec::new();
        for media in self.engine.catalog.unfinished_media()? {
            let path = PathBuf::from(&media.source_path);
            self.engine.catalog.restart_media(&media.video_id, &media.source_path)?;
            results.push(self.process(&media.video_id, &path, opts, &mut |p| on_progress(&path, p))?);
        }
        self.engine.flush_ann()?;
        Ok(results)
    }

    fn ingest_file(
        &self,
        path: &Path,
        index_id: Option<&str>,
        opts: &IngestOptions,
        on_progress: &mut dyn FnMut(Progress),
    ) -> Result<IngestResult> {
        let catalog = &self.engine.catalog;
        let (hash, size) = hash_file(path)?;
        let source = absolute(path);
        let existing = match opts.idempotency_key.as_deref() {
            Some(key) => match catalog.find_media_by_idempotency_key(key)? {
                Some(m) if m.content_hash != hash || m.index_id.as_deref() != index_id => {
                    return Err(Error::Conflict(format!(
                        "idempotency key {key:?} was used for {} ({}); {} is different content or another index",
                        m.video_id,
                        m.source_path,
                        path.display()
                    )))
                }
                Some(m) => Some(m),
                None => catalog.find_media_by_content(index_id, &hash)?,
            },
            None => catalog.find_media_by_content(index_id, &hash)?,
        };
        let video_id = match existing {
            Some(m) if m.status == Status::Completed => return self.result(&m.video_id, true),
            Some(m) => {
                catalog.restart_media(&m.video_id, &source)?;
                m.video_id
            }
            None => {
                let title = opts.title.clone().unwrap_or_else(|| {
                    path.file_name().map_or_else(|| source.clone(), |n| n.to_string_lossy().into_owned())
                });
                catalog
                    .insert_media(&NewMedia {
                        index_id,
                        title: &title,
                        source_path: &source,
                        content_hash: &hash,
                        size_bytes: size,
                        idempotency_key: opts.idempotency_key.as_deref(),
                    })?
                    .video_id
            }
        };
        self.process(&video_id, path, opts, on_progress)
    }

    /// Analyse, segment and extract one file whose row is `processing`; record the outcome.
    fn process(
        &self,
        video_id: &str,
        path: &Path,
        opts: &IngestOptions,
        on_progress: &mut dyn FnMut(Progress),
    ) -> Result<IngestResult> {
        let layout = &self.engine.layout;
        let mut work = || -> Result<()> {
            let analysis = ingest::analyse(path, &opts.segmentation.shots, on_progress)?;
            let plan = ingest::plan(&analysis, &opts.segmentation)?;
            on_progress(Progress::Extracting);
            let (segments, gif) =
                ingest::extract(path, layout, video_id, &analysis, &plan, &opts.segmentation, &opts.output)?;
            let settings = serde_json::to_string(&opts.segmentation).expect("segmentation config serialises");
            let warnings: Vec<String> = (analysis.decode_errors > 0)
                .then(|| {
                    format!(
                        "{}: {} packets could not be decoded and were skipped",
                        path.display(),
                        analysis.decode_errors
                    )
                })
                .into_iter()
                .collect();
            self.engine.catalog.complete_media(
                video_id,
                &Completed {
                    info: &analysis.info,
                    duration_us: analysis.duration_us,
                    segmentation_json: &settings,
                    gif_path: gif.as_deref(),
                    warnings: &warnings,
                    segments: &segments,
                },
            )
        };
        if let Err(e) = work() {
            if matches!(e, Error::Catalog { .. }) {
                return Err(e);
            }
            layout.remove_media_files(video_id)?;
            self.engine.catalog.fail_media(video_id, &e.to_string())?;
            return self.result(video_id, false);
        }
        on_progress(Progress::Embedding);
        let mut result = self.result(video_id, false)?;
        // Keyframe vectors; segments of this scope left without them by an earlier kill are
        // embedded too. Failing here leaves the media completed, to be embedded later.
        let scope = self.retrieve(video_id)?.index_id.unwrap_or_default();
        let embedded = self
            .engine
            .catalog
            .segments_without_vectors(Some(&scope), Space::Visual)
            .and_then(|todo| self.engine.embed_keyframes(&todo));
        match embedded {
            Ok(_) => {
                if let Some(reason) = self.engine.model_off_reason(Space::Visual) {
                    result.warnings.push(format!(
                        "keyframes were not embedded: no visual model ({}): {reason}",
                        crate::embed::DEFAULT_VISUAL_MODEL
                    ));
                }
            }
            Err(e @ Error::Catalog { .. }) => return Err(e),
            Err(e) => {
                result.warnings.push(format!("keyframes were not embedded: {e}; run `videovector embed` to retry"))
            }
        }
        if result.media_type != Some(crate::MediaType::Image) {
            match crate::transcribe::speech_model(self.engine, opts.enable_transcription) {
                Ok(Some(model)) => {
                    on_progress(Progress::Transcribing);
                    match self.engine.transcribe_media(video_id, path, &model) {
                        Ok(_) => {}
                        Err(e @ Error::Catalog { .. }) => return Err(e),
                        Err(e) => result.warnings.push(format!("speech was not transcribed: {e}")),
                    }
                }
                Ok(None) => {
                    if let (None, Some(reason)) = (opts.enable_transcription, self.engine.asr_off_reason()) {
                        result.warnings.push(format!(
                            "speech was not transcribed: no speech model ({}): {reason}",
                            crate::embed::DEFAULT_ASR_MODEL
                        ));
                    }
                }
                Err(e) => result.warnings.push(format!("speech was not transcribed: {e}")),
            }
        }
        Ok(result)
    }

    fn result(&self, video_id: &str, deduplicated: bool) -> Result<IngestResult> {
        let m = self.retrieve(video_id)?;
        let (segments, audio_segments) = if m.status == Status::Completed {
            let video = self.engine.catalog.all_segments(video_id, SegmentKind::Video)?;
            let audio = self.engine.catalog.all_segments(video_id, SegmentKind::Audio)?;
            if video.is_empty() {
                (audio, Vec::new())
            } else {
                (video, audio)
            }
        } else {
            (Vec::new(), Vec::new())
        };
        Ok(IngestResult {
            video_id: Some(m.video_id),
            source_path: m.source_path,
            status: m.status,
            media_type: m.media_type,
            duration: m.duration,
            deduplicated,
            error: m.error,
            warnings: m.warnings,
            segments,
            audio_segments,
        })
    }

    pub fn retrieve(&self, video_id: &str) -> Result<Media> {
        self.engine.catalog.get_media(video_id)
    }

    /// All media in ingest order, paginated.
    pub fn list(&self, page: &PageRequest) -> Result<Page<Media>> {
        self.engine.catalog.list_media(MediaScope::All, page)
    }

    /// Media that belongs to no index.
    pub fn list_playground(&self, page: &PageRequest) -> Result<Page<Media>> {
        self.engine.catalog.list_media(MediaScope::Playground, page)
    }

    /// Delete a media item, its segments, vectors, thumbnails and preview.
    pub fn delete(&self, video_id: &str) -> Result<()> {
        let scope = self.retrieve(video_id)?.index_id.unwrap_or_default();
        self.engine.catalog.delete_media(video_id)?;
        // Its vectors went with its segments; the scope's ANN files no longer match the
        // catalog and are rebuilt on next use.
        self.engine.invalidate_ann(&scope);
        self.engine.layout.remove_media_files(video_id)
    }

    /// Segments of a media item in timeline order, paginated.
    pub fn list_segments(&self, video_id: &str, query: &SegmentQuery) -> Result<Page<Segment>> {
        let kind = match query.kind {
            Some(k) => k,
            None => match self.retrieve(video_id)?.media_type {
                Some(MediaType::Audio) => SegmentKind::Audio,
                _ => SegmentKind::Video,
            },
        };
        self.engine.catalog.list_segments(video_id, Some(kind), &query.page)
    }

    pub fn batch_retrieve(&self, video_ids: &[String]) -> Result<Batch<Media>> {
        let mut batch = Batch { data: Vec::new(), not_found: Vec::new() };
        for id in video_ids {
            match self.retrieve(id) {
                Ok(m) => batch.data.push(m),
                Err(Error::NotFound { .. }) => batch.not_found.push(id.clone()),
                Err(e) => return Err(e),
            }
        }
        Ok(batch)
    }

    pub fn batch_status(&self, video_ids: &[String]) -> Result<Batch<StatusSnapshot>> {
        let b = self.batch_retrieve(video_ids)?;
        Ok(Batch {
            data: b
                .data
                .into_iter()
                .map(|m| StatusSnapshot {
                    video_id: m.video_id,
                    status: m.status,
                    error: m.error,
                    updated_at: m.updated_at,
                })
                .collect(),
            not_found: b.not_found,
        })
    }
}

/// Files named, with folders walked recursively in name order (hidden entries skipped).
fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| Error::io(p, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|e| !e.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
                .collect();
            entries.sort();
            out.extend(expand_paths(&entries)?);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// SHA-256 (hex) and size of a file, read in 1 MiB blocks.
fn hash_file(path: &Path) -> Result<(String, u64)> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    let hash = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((hash, size))
}

fn absolute(path: &Path) -> String {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()).to_string_lossy().into_owned()
}
