//! `engine.videos()`: ingest (as jobs), retrieve, list, delete, segments, batch helpers and
//! transcripts.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Engine;
use crate::error::{Error, Result};
use crate::ids::{JobId, VideoId};
use crate::pipeline::{IngestOptions, IngestRequest};
use crate::store::{all_segments, MediaFilter, NewMedia, Stores};
use crate::types::{
    Job, JobKind, JobRequest, JobStatus, Media, MediaType, Page, PageRequest, Phrase, Scope, Segment, SegmentKind,
    Status,
};

/// The outcome of ingesting one file, as the CLI prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IngestResult {
    /// `None` only when the path could not be read at all, so nothing was recorded.
    pub video_id: Option<VideoId>,
    /// The job that ingested it (`None` when nothing was run).
    pub job_id: Option<JobId>,
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

/// A file handed to the engine: the media row and the job that will process it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Submission {
    pub source_path: String,
    /// `None` when the file could not be read, so nothing was recorded (`error` says why).
    pub video_id: Option<VideoId>,
    /// `None` when there is nothing to do (already ingested) or the file could not be read.
    pub job_id: Option<JobId>,
    /// This content (or idempotency key) was already ingested.
    pub deduplicated: bool,
    pub error: Option<String>,
}

/// Which segments [`Videos::list_segments`] returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SegmentQuery {
    /// `video` or `audio`; default: the media's primary kind (audio for audio files, video otherwise).
    pub kind: Option<SegmentKind>,
    /// The segments of a prompt run: those it made of its own when it asked for another
    /// segmentation, else the ingest segments it read.
    #[serde(default)]
    pub run_id: Option<String>,
    /// The segments of the newest run that made its own (the ingest ones when none did).
    #[serde(default)]
    pub latest_run: bool,
    #[serde(flatten)]
    pub page: PageRequest,
}

impl SegmentQuery {
    pub fn new() -> Self {
        SegmentQuery::default()
    }

    pub fn kind(mut self, kind: SegmentKind) -> Self {
        self.kind = Some(kind);
        self
    }

    pub fn run_id(mut self, run_id: impl Into<String>) -> Self {
        self.run_id = Some(run_id.into());
        self
    }

    pub fn latest_run(mut self) -> Self {
        self.latest_run = true;
        self
    }

    pub fn page(mut self, page: PageRequest) -> Self {
        self.page = page;
        self
    }
}

/// Result of a batch lookup: what was found, and the ids that were not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Batch<T> {
    pub data: Vec<T>,
    pub not_found: Vec<String>,
}

/// A status snapshot of one media item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StatusSnapshot {
    pub video_id: VideoId,
    pub status: Status,
    pub error: Option<String>,
    pub updated_at: String,
}

/// What `transcript VIDEO_ID` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Transcript {
    pub video_id: VideoId,
    pub phrases: Vec<Phrase>,
}

/// `client.videos`.
pub struct Videos<'a> {
    engine: &'a Engine,
}

impl<'a> Videos<'a> {
    pub(super) fn new(engine: &'a Engine) -> Self {
        Videos { engine }
    }

    /// Ingest one file into the playground, or as `opts` says, and wait for it.
    pub fn ingest(&self, path: impl AsRef<Path>, opts: &IngestOptions) -> Result<IngestResult> {
        let mut results = self.ingest_many(&[path.as_ref().to_path_buf()], opts, &mut |_| {})?;
        Ok(results.remove(0))
    }

    /// Ingest files (folders are walked, in name order) and wait for them, reporting each running
    /// job's progress. A file that fails is recorded as `failed` with its error and the batch
    /// goes on; only a bad request fails the whole call.
    pub fn ingest_many(
        &self,
        paths: &[PathBuf],
        opts: &IngestOptions,
        on_progress: &mut dyn FnMut(&Job),
    ) -> Result<Vec<IngestResult>> {
        let submitted = self.submit(paths, opts)?;
        self.wait_for(submitted, on_progress)
    }

    /// Hand files to the engine's workers and return at once: each new file is a media row
    /// (`pending`) and a job. Content already ingested into the scope (or an idempotency key
    /// already used for it) is not ingested again.
    pub fn submit(&self, paths: &[PathBuf], opts: &IngestOptions) -> Result<Vec<Submission>> {
        opts.segmentation.validate()?;
        if opts.idempotency_key.is_some() && paths.len() > 1 {
            return Err(Error::invalid(
                "idempotency_key",
                "applies to a single file; ingest files one by one to give each a key",
            ));
        }
        let catalog = &self.engine.stores().catalog;
        let scope = match opts.index.as_deref() {
            Some(i) => Scope::Index(catalog.index(i)?.index_id),
            None => Scope::Playground,
        };
        // Models asked for by name must load before anything is stored.
        self.engine.core().models.visual()?;
        if opts.enable_transcription == Some(true) {
            self.engine
                .core()
                .models
                .speech()?
                .ok_or_else(|| self.engine.core().models.missing(crate::ml::Role::Speech))?;
        }
        let mut out = Vec::new();
        for file in expand_paths(paths)? {
            out.push(match submit_file(self.engine.stores(), &file, &scope, opts) {
                Ok(s) => s,
                Err(e @ Error::IdempotencyConflict { .. }) => return Err(e),
                Err(e) if e.is_store_failure() => return Err(e),
                Err(e) => Submission {
                    source_path: file.display().to_string(),
                    video_id: None,
                    job_id: None,
                    deduplicated: false,
                    error: Some(e.to_string()),
                },
            });
        }
        self.engine.pool().notify();
        Ok(out)
    }
}

/// Record one file as media of `scope` (or find it there already) and create its ingest job.
pub(crate) fn submit_file(stores: &Stores, path: &Path, scope: &Scope, opts: &IngestOptions) -> Result<Submission> {
    let (hash, size) = hash_file(path)?;
    let source = absolute(path);
    let existing = match opts.idempotency_key.as_deref() {
        Some(key) => match stores.catalog.media_by_idempotency_key(key)? {
            Some(m) if m.content_hash != hash || Scope::of(m.index_id.as_ref()) != *scope => {
                return Err(Error::IdempotencyConflict {
                    key: key.to_string(),
                    message: format!(
                        "it was used for {} ({}); {} is different content or another index",
                        m.video_id,
                        m.source_path,
                        path.display()
                    ),
                })
            }
            Some(m) => Some(m),
            None => stores.catalog.media_by_content(scope, &hash)?,
        },
        None => stores.catalog.media_by_content(scope, &hash)?,
    };
    let submission = |video_id: VideoId, job_id: Option<JobId>, deduplicated| Submission {
        source_path: source.clone(),
        video_id: Some(video_id),
        job_id,
        deduplicated,
        error: None,
    };
    let request =
        |video_id: &VideoId| IngestRequest { video_id: video_id.clone(), path: source.clone(), options: opts.clone() };
    match existing {
        Some(m) if m.status == Status::Completed => Ok(submission(m.video_id, None, true)),
        // Unfinished: its job (pending, or running in some engine) will finish it.
        Some(m) => match stores.jobs.active_job_for_media(&m.video_id)? {
            Some(job) => Ok(submission(m.video_id, Some(job.job_id), false)),
            None => {
                let job = create_job(stores, &request(&m.video_id), scope)?;
                Ok(submission(m.video_id, Some(job.job_id), false))
            }
        },
        None => {
            let title = opts.title.clone().unwrap_or_else(|| {
                path.file_name().map_or_else(|| source.clone(), |n| n.to_string_lossy().into_owned())
            });
            let request_json =
                serde_json::to_string(opts).map_err(|e| Error::Internal(format!("ingest options: {e}")))?;
            let media = stores.catalog.insert_media(&NewMedia {
                scope,
                title: &title,
                source_path: &source,
                content_hash: &hash,
                size_bytes: size,
                idempotency_key: opts.idempotency_key.as_deref(),
                request_json: &request_json,
            })?;
            let job = create_job(stores, &request(&media.video_id), scope)?;
            Ok(submission(media.video_id, Some(job.job_id), false))
        }
    }
}

fn create_job(stores: &Stores, request: &IngestRequest, scope: &Scope) -> Result<Job> {
    let request_json = serde_json::to_string(request).map_err(|e| Error::Internal(format!("ingest request: {e}")))?;
    stores.jobs.create_job(&JobRequest {
        kind: JobKind::Ingest,
        video_id: Some(request.video_id.clone()),
        index_id: scope.index_id().cloned(),
        request_json,
    })
}

impl Videos<'_> {
    /// Wait for submitted files' jobs and collect their outcomes.
    fn wait_for(&self, submitted: Vec<Submission>, on_progress: &mut dyn FnMut(&Job)) -> Result<Vec<IngestResult>> {
        let jobs: Vec<JobId> = submitted.iter().filter_map(|s| s.job_id.clone()).collect();
        if !jobs.is_empty() && !self.engine.pool().has_workers() {
            return Err(Error::Conflict(
                "this engine runs no workers (EngineOptions::workers is 0); the jobs are queued for an engine that has some"
                    .into(),
            ));
        }
        for id in &jobs {
            self.engine.jobs().wait_with(id, None, on_progress)?;
        }
        submitted
            .into_iter()
            .map(|s| match (&s.video_id, &s.error) {
                (Some(id), _) => self.result(id, s.job_id, s.deduplicated),
                (None, error) => Ok(IngestResult {
                    video_id: None,
                    job_id: None,
                    source_path: s.source_path,
                    status: Status::Failed,
                    media_type: None,
                    duration: None,
                    deduplicated: false,
                    error: error.clone(),
                    warnings: Vec::new(),
                    segments: Vec::new(),
                    audio_segments: Vec::new(),
                }),
            })
            .collect()
    }

    /// Finish every media item left `pending` or `processing`: jobs a crash interrupted are
    /// already picked up by the workers; media without a job gets one, with the options its
    /// ingest was asked with. Waits for all of them.
    pub fn resume(&self, on_progress: &mut dyn FnMut(&Job)) -> Result<Vec<IngestResult>> {
        let stores = self.engine.stores();
        let mut submitted = Vec::new();
        for media in stores.catalog.unfinished_media()? {
            let job = match stores.jobs.active_job_for_media(&media.video_id)? {
                Some(job) => job,
                None => {
                    let options: IngestOptions = match stores.catalog.media_request(&media.video_id)? {
                        Some(json) => serde_json::from_str(&json).map_err(|e| {
                            Error::Internal(format!("the stored request of {} cannot be read: {e}", media.video_id))
                        })?,
                        // Ingested before requests were kept: the defaults are all there is.
                        None => IngestOptions::default(),
                    };
                    let req =
                        IngestRequest { video_id: media.video_id.clone(), path: media.source_path.clone(), options };
                    create_job(self.engine.stores(), &req, &Scope::of(media.index_id.as_ref()))?
                }
            };
            submitted.push(Submission {
                source_path: media.source_path,
                video_id: Some(media.video_id),
                job_id: Some(job.job_id),
                deduplicated: false,
                error: None,
            });
        }
        self.engine.pool().notify();
        self.wait_for(submitted, on_progress)
    }

    fn result(&self, video_id: &VideoId, job_id: Option<JobId>, deduplicated: bool) -> Result<IngestResult> {
        let m = self.retrieve(video_id)?;
        let catalog = self.engine.stores().catalog.as_ref();
        let (segments, audio_segments) = if m.status == Status::Completed {
            let primary = all_segments(catalog, video_id, m.primary_kind())?;
            let audio = match m.primary_kind() {
                SegmentKind::Audio => Vec::new(),
                _ => all_segments(catalog, video_id, SegmentKind::Audio)?,
            };
            (primary, audio)
        } else {
            (Vec::new(), Vec::new())
        };
        let error = match (&m.error, &job_id) {
            (Some(e), _) => Some(e.clone()),
            (None, Some(j)) if m.status != Status::Completed => self.engine.stores().jobs.job(j)?.error,
            _ => None,
        };
        Ok(IngestResult {
            video_id: Some(m.video_id),
            job_id,
            source_path: m.source_path,
            status: m.status,
            media_type: m.media_type,
            duration: m.duration,
            deduplicated,
            error,
            warnings: m.warnings,
            segments,
            audio_segments,
        })
    }

    pub fn retrieve(&self, video_id: &str) -> Result<Media> {
        self.engine.stores().catalog.media(video_id)
    }

    /// All media in ingest order, paginated.
    pub fn list(&self, page: &PageRequest) -> Result<Page<Media>> {
        self.engine.stores().catalog.list_media(MediaFilter::All, page)
    }

    /// Media that belongs to no index.
    pub fn list_playground(&self, page: &PageRequest) -> Result<Page<Media>> {
        self.engine.stores().catalog.list_media(MediaFilter::Scope(&Scope::Playground), page)
    }

    /// Delete a media item (stopping its ingest if one runs), its segments, vectors,
    /// transcript, thumbnails and preview. Its vectors leave the ANN index one by one: nothing
    /// is rebuilt.
    pub fn delete(&self, video_id: &str) -> Result<()> {
        let stores = self.engine.stores();
        let media = self.retrieve(video_id)?;
        if let Some(job) = stores.jobs.active_job_for_media(video_id)? {
            self.engine.jobs().cancel(&job.job_id)?;
            self.engine.jobs().wait(&job.job_id, Some(Duration::from_secs(30)))?;
        }
        stores.vectors.remove_media(&media.video_id)?;
        stores.catalog.delete_media(video_id)?;
        stores.blobs.remove_media(&media.video_id)
    }

    /// Segments of a media item in timeline order, paginated.
    pub fn list_segments(&self, video_id: &str, query: &SegmentQuery) -> Result<Page<Segment>> {
        let kind = match query.kind {
            Some(k) => k,
            None => self.retrieve(video_id)?.primary_kind(),
        };
        let stores = self.engine.stores();
        let run = match (&query.run_id, query.latest_run) {
            (Some(_), true) => return Err(Error::invalid("latest_run", "give run_id or latest_run, not both")),
            (Some(r), false) => {
                stores.prompts.run(r)?;
                // A run that kept the ingest segmentation read (and so covers) the ingest segments.
                let own = stores.catalog.segments(video_id, kind, Some(r), &PageRequest::first(1))?;
                (!own.data.is_empty()).then(|| r.clone())
            }
            (None, true) => stores.catalog.latest_segment_run(video_id)?,
            (None, false) => None,
        };
        stores.catalog.segments(video_id, kind, run.as_deref(), &query.page)
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

    /// The transcript of a media item (empty when it had no speech or was not transcribed).
    pub fn transcript(&self, video_id: &str) -> Result<Transcript> {
        let media = self.retrieve(video_id)?;
        Ok(Transcript { phrases: self.engine.stores().catalog.phrases(video_id)?, video_id: media.video_id })
    }
}

impl Job {
    /// Whether the job ended well.
    pub fn succeeded(&self) -> bool {
        self.status == JobStatus::Completed
    }
}

/// Files named, with folders walked recursively in name order (hidden entries skipped). A folder
/// reached twice (a symlink loop, or two links to one folder) is walked once.
fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    fn walk(p: &Path, seen: &mut HashSet<PathBuf>, out: &mut Vec<PathBuf>) -> Result<()> {
        if !p.is_dir() {
            out.push(p.to_path_buf());
            return Ok(());
        }
        let real = std::fs::canonicalize(p).map_err(|e| Error::io(p, e))?;
        if !seen.insert(real) {
            return Ok(());
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
            .map_err(|e| Error::io(p, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|e| !e.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
            .collect();
        entries.sort();
        for e in entries {
            walk(&e, seen, out)?;
        }
        Ok(())
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for p in paths {
        walk(p, &mut seen, &mut out)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_directory_symlink_loop_recurses_without_end() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::create_dir(&a).unwrap();
        std::fs::write(a.join("clip.mp4"), b"x").unwrap();
        std::fs::write(a.join(".hidden.mp4"), b"x").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(&a, a.join("loop")).unwrap();
        let files = expand_paths(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(files, vec![a.join("clip.mp4")], "each file once, hidden ones skipped, and the walk ends");
    }
}
