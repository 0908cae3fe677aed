//! Structured extraction: prompt runs as jobs. Each segment of the run's media goes to the
//! language model with the prompt, the schema and the evidence the engine has (see
//! [`evidence`]); the reply is constrained to the schema while it is written and validated
//! against it before it is stored. Then, per media item, the optional media-wide synthesis, and
//! the results' `metadata_text` embedded into the metadata space.
//!
//! A run is resumable: results are stored one segment at a time, and a run that starts again
//! (after a crash, `kill -9` included) skips the segments that already have a good result.

pub(crate) mod evidence;
pub(crate) mod schema;

use std::sync::Mutex;
use std::time::Instant;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::ids::{LlmCallId, RunId, SegmentId, VideoId};
use crate::jobs::JobContext;
use crate::ml::llm::{Finish, LanguageModel, Message};
use crate::ml::Models;
use crate::pipeline::analyse::Analysis;
use crate::pipeline::plan::Plan;
use crate::segment::SegmentationConfig;
use crate::store::{all_run_segments, all_segments, Stores};
use crate::types::{
    us_to_secs, AudioSegmentation, JobStage, LlmCall, Media, MediaType, Prompt, PromptRun, RunRequest, RunStatus,
    Scope, Segment, SegmentKind, SegmentResult, SegmentRetry, Space, Status, VideoResult, VideoSegmentation,
};

/// The most tokens a reply may have, unless the engine's options say otherwise.
pub const MAX_REPLY_TOKENS: usize = 512;

/// The system message of every extraction call.
pub const SYSTEM_PROMPT: &str = "You extract structured metadata from one segment of a media file. \
Reply with JSON that follows the schema. Use only the evidence given. When the evidence does not \
say, pick the closest allowed value, or write an empty string.";

/// A language model and the longest reply allowed from it.
type Lm<'a> = (&'a Mutex<LanguageModel>, usize);

/// The request stored with a prompt-run job.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct RunJob {
    pub run_id: RunId,
}

/// The request stored with a segment-retry job.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct RetryJob {
    pub retry_id: String,
}

/// What one call produced.
struct CallOutcome {
    metadata: std::result::Result<Value, String>,
    raw: Option<String>,
}

/// Run (or resume) a prompt run.
pub(crate) fn run(stores: &Stores, models: &Models, run_id: &RunId, ctx: &JobContext) -> Result<()> {
    let run = stores.prompts.run(run_id)?;
    if run.status.is_final() {
        return Ok(());
    }
    stores.prompts.set_run_status(run_id, RunStatus::Processing, None)?;
    match execute(stores, models, &run, ctx) {
        Ok(()) => {
            let now = stores.prompts.run(run_id)?;
            let status = if now.failed_segments == 0 && now.video_level_failed_items == 0 {
                RunStatus::Completed
            } else if now.completed_segments > 0 {
                RunStatus::CompletedWithFailures
            } else {
                RunStatus::Failed
            };
            let error = (status == RunStatus::Failed).then(|| format!("all {} segments failed", now.failed_segments));
            stores.prompts.set_run_status(run_id, status, error.as_deref())?;
            Ok(())
        }
        Err(Error::Cancelled) if ctx.stop_reason() == Some(crate::jobs::StopReason::Shutdown) => Err(Error::Cancelled),
        Err(Error::Cancelled) => {
            stores.prompts.set_run_status(run_id, RunStatus::Cancelled, None)?;
            Err(Error::Cancelled)
        }
        Err(e) if e.is_store_failure() => Err(e),
        Err(e) => {
            stores.prompts.set_run_status(run_id, RunStatus::Failed, Some(&e.to_string()))?;
            Err(e)
        }
    }
}

/// The segments a run asks about for one media item, of its primary kind: the run's own
/// segmentation when it made one, else the ingest segmentation.
pub(crate) fn run_segments(stores: &Stores, media: &Media, run_id: &RunId) -> Result<Vec<Segment>> {
    let own = all_run_segments(stores.catalog.as_ref(), &media.video_id, media.primary_kind(), Some(run_id))?;
    if !own.is_empty() {
        return Ok(own);
    }
    all_segments(stores.catalog.as_ref(), &media.video_id, media.primary_kind())
}

/// The segmentation a run needs for a media item when the ingest one does not match its request
/// (`None` when it does): the ingest settings (thresholds and all) with the run's types and durations.
pub(crate) fn own_segmentation(stores: &Stores, media: &Media, req: &RunRequest) -> Result<Option<SegmentationConfig>> {
    let ingest: SegmentationConfig = stores
        .catalog
        .media_request(&media.video_id)?
        .and_then(|j| serde_json::from_str::<Value>(&j).ok())
        .and_then(|v| serde_json::from_value(v["segmentation"].clone()).ok())
        .unwrap_or_default();
    let secs = |d: Option<u32>| d.map(f64::from);
    let fits = match media.media_type {
        Some(MediaType::Image) => true,
        Some(MediaType::Audio) => {
            ingest.audio_segmentation_type == req.audio_segmentation_type
                && (req.audio_segmentation_type != AudioSegmentation::Fixed
                    || ingest.audio_segment_duration == secs(req.audio_segment_duration))
        }
        _ => {
            ingest.video_segmentation_type == req.video_segmentation_type
                && (req.video_segmentation_type != VideoSegmentation::Fixed
                    || ingest.video_segment_duration == secs(req.video_segment_duration))
        }
    };
    if fits {
        return Ok(None);
    }
    let mut config = ingest;
    config.video_segmentation_type = req.video_segmentation_type;
    config.audio_segmentation_type = req.audio_segmentation_type;
    config.video_segment_duration = secs(req.video_segment_duration).or(config.video_segment_duration);
    config.audio_segment_duration = secs(req.audio_segment_duration).or(config.audio_segment_duration);
    Ok(Some(config))
}

/// Analyse the media's file again and plan a run's segmentation (ingest keeps no frame
/// statistics, so a new segmentation decodes the file once more).
pub(crate) fn plan_own(
    models: &Models,
    media: &Media,
    config: &SegmentationConfig,
    ctx: &JobContext,
) -> Result<(Analysis, Plan)> {
    let path = std::path::Path::new(&media.source_path);
    let shot_model = models.shots_for(&config.shots)?;
    let analysis = crate::pipeline::analyse::analyse(path, &config.shots, shot_model.as_deref(), ctx)?;
    let plan = crate::pipeline::plan::plan(&analysis, config)?;
    Ok((analysis, plan))
}

/// The planned spans of a media item's primary kind as segments (not stored; for estimates).
pub(crate) fn planned_segments(media: &Media, plan: &Plan, config: &SegmentationConfig) -> Vec<Segment> {
    let (kind, spans, method): (SegmentKind, Vec<(i64, i64)>, &str) = match media.primary_kind() {
        SegmentKind::Audio => (
            SegmentKind::Audio,
            plan.audio.iter().map(|s| (s.start_us, s.end_us)).collect(),
            config.audio_segmentation_type.as_str(),
        ),
        _ => (
            SegmentKind::Video,
            plan.video.iter().map(|(s, _)| (s.start_us, s.end_us)).collect(),
            config.video_segmentation_type.as_str(),
        ),
    };
    spans
        .into_iter()
        .enumerate()
        .map(|(i, (start_us, end_us))| Segment {
            segment_id: SegmentId::from(format!("planned_{i}")),
            video_id: media.video_id.clone(),
            run_id: None,
            kind,
            index: i as u32,
            start: us_to_secs(start_us),
            end: us_to_secs(end_us),
            start_us,
            end_us,
            segmentation_type: method.to_string(),
            keyframe_time: None,
            keyframe_frame: None,
            thumbnail_path: None,
        })
        .collect()
}

/// A run's own segments for a media item: made once (analysis, plan, keyframes and thumbnails
/// beside the ingest ones, keyframes embedded when asked), then reused, also after a crash.
fn own_segments(
    stores: &Stores,
    models: &Models,
    run: &PromptRun,
    media: &Media,
    config: &SegmentationConfig,
    ctx: &JobContext,
) -> Result<Vec<Segment>> {
    let kind = media.primary_kind();
    let have = all_run_segments(stores.catalog.as_ref(), &media.video_id, kind, Some(&run.run_id))?;
    if !have.is_empty() {
        return Ok(have);
    }
    ctx.progress(JobStage::Analysing, 0.0);
    let (analysis, plan) = plan_own(models, media, config, ctx)?;
    ctx.progress(JobStage::Extracting, 0.0);
    let path = std::path::Path::new(&media.source_path);
    let (segments, _) = crate::pipeline::extract::extract(
        path,
        stores.blobs.as_ref(),
        &media.video_id,
        &analysis,
        &plan,
        config,
        &crate::pipeline::OutputConfig::default(),
        false,
        ctx,
    )?;
    stores.catalog.add_run_segments(&media.video_id, &run.run_id, &segments)?;
    if run.request.enable_image_embedding && models.visual()?.is_some() {
        let scope = Scope::of(media.index_id.as_ref());
        let todo = stores.catalog.thumbnails_without_vector(Some(&scope), Space::Visual)?;
        crate::pipeline::embed::embed_thumbnails(stores, models, &todo, ctx)?;
    }
    all_run_segments(stores.catalog.as_ref(), &media.video_id, kind, Some(&run.run_id))
}

fn execute(stores: &Stores, models: &Models, run: &PromptRun, ctx: &JobContext) -> Result<()> {
    let videos = stores.prompts.run_videos(&run.run_id)?;
    let mut plan: Vec<(Media, Vec<Segment>)> = Vec::new();
    for v in &videos {
        let media = stores.catalog.media(v)?;
        let segments = match own_segmentation(stores, &media, &run.request)? {
            _ if media.status != Status::Completed => Vec::new(),
            Some(config) => own_segments(stores, models, run, &media, &config, ctx)?,
            None => run_segments(stores, &media, &run.run_id)?,
        };
        plan.push((media, segments));
    }
    let total: usize = plan.iter().map(|(_, s)| s.len()).sum();
    let seconds: f64 = plan.iter().map(|(m, _)| m.duration.unwrap_or(0.0)).sum();
    stores.prompts.set_run_totals(&run.run_id, total as u64, seconds)?;
    let (_, model) = models.language(Some(&run.model))?;
    let mut done = 0usize;
    for (media, segments) in &plan {
        let finished = stores.prompts.done_segments(&run.run_id, &media.video_id)?;
        // `enable_transcription`: media ingested without a transcript is transcribed now (when a
        // speech model is there), so that the model hears what is said.
        if run.request.enable_transcription && media.media_type != Some(MediaType::Image) && !segments.is_empty() {
            let mut warnings = Vec::new();
            let path = std::path::Path::new(&media.source_path);
            crate::pipeline::transcribe(stores, models, media, path, None, ctx, &mut warnings)?;
            if !warnings.is_empty() {
                stores.catalog.add_media_warnings(&media.video_id, &warnings)?;
            }
        }
        let phrases = stores.catalog.phrases(&media.video_id)?;
        let visual = evidence::VisualScores::new(stores, models, media, &run.prompt.json_schema);
        for (i, seg) in segments.iter().enumerate() {
            ctx.check()?;
            if !finished.contains(&seg.segment_id) {
                let ev = evidence::Evidence::gather(media, segments, i, &phrases, visual.as_ref());
                extract_segment(stores, (&model, models.max_reply_tokens), run, media, seg, &ev, ctx)?;
            }
            done += 1;
            ctx.progress(JobStage::ExtractingFields, done as f32 / total.max(1) as f32);
        }
        if let Some(vl) = &run.prompt.video_level {
            let have = stores.prompts.video_result(&run.run_id, &media.video_id)?;
            if have.is_none_or(|r| r.status != "completed") && !segments.is_empty() {
                ctx.check()?;
                synthesise(stores, (&model, models.max_reply_tokens), run, media, vl, ctx)?;
            }
        }
        index_results(stores, models, run, media)?;
    }
    Ok(())
}

/// Ask the model about one segment and store the outcome (a result, or the failure).
fn extract_segment(
    stores: &Stores,
    model: Lm<'_>,
    run: &PromptRun,
    media: &Media,
    seg: &Segment,
    ev: &evidence::Evidence,
    ctx: &JobContext,
) -> Result<()> {
    let messages = segment_messages(&run.prompt, ev);
    let outcome = call(
        stores,
        model,
        run,
        Some(media),
        Some(seg),
        "segment_extraction",
        &messages,
        &run.prompt.json_schema,
        ctx,
    )?;
    let executed_at = crate::store::now();
    let (metadata, error) = match outcome.metadata {
        Ok(v) => (v, None),
        Err(e) => (Value::Object(Default::default()), Some(e)),
    };
    let metadata_text = if error.is_none() {
        schema::metadata_text(&metadata, &run.prompt.semantic_indexing.disabled_segment_fields)
    } else {
        String::new()
    };
    stores.prompts.save_segment_result(&SegmentResult {
        run_id: run.run_id.clone(),
        prompt_id: run.prompt_id.clone(),
        segment_id: seg.segment_id.clone(),
        video_id: media.video_id.clone(),
        video_name: media.title.clone(),
        start_time: seg.start,
        end_time: seg.end,
        metadata,
        metadata_text,
        field_extraction_succeeded: error.is_none(),
        field_extraction_error: error,
        attempts: 1,
        executed_at,
    })
}

/// The chat for one segment: the system rule, then the prompt's instructions, the fields the
/// schema asks for and the evidence.
pub(crate) fn segment_messages(prompt: &Prompt, ev: &evidence::Evidence) -> Vec<Message> {
    let user = format!(
        "Instructions: {}\n\nFields to fill:\n{}\n\nEvidence:\n{}",
        prompt.prompt_text.trim(),
        evidence::describe_fields(&prompt.json_schema),
        ev.render()
    );
    vec![Message::system(SYSTEM_PROMPT), Message::user(user)]
}

/// One model call under a schema, logged; the reply parsed and validated. Model failures become
/// `Err(text)` in the outcome (the segment fails, the run goes on); store failures and
/// cancellation are errors.
#[allow(clippy::too_many_arguments)]
fn call(
    stores: &Stores,
    (model, max_tokens): Lm<'_>,
    run: &PromptRun,
    media: Option<&Media>,
    seg: Option<&Segment>,
    purpose: &str,
    messages: &[Message],
    user_schema: &Value,
    ctx: &JobContext,
) -> Result<CallOutcome> {
    let decoding = schema::decoding_schema(user_schema);
    let invoked_at = crate::store::now();
    let started = Instant::now();
    let mut m = model.lock().unwrap_or_else(|p| p.into_inner());
    let prompt_text = m.render(messages);
    let model_id = m.id().to_string();
    let generated = m.generate(messages, Some(&decoding), max_tokens, &|| ctx.is_stopped());
    drop(m);
    let duration_ms = started.elapsed().as_millis() as u64;
    let (metadata, raw, input_tokens, cached, output_tokens, prefill_ms) = match generated {
        Err(Error::Cancelled) => return Err(Error::Cancelled),
        Err(e) => (Err(e.to_string()), None, 0, 0, 0, 0),
        Ok(g) => {
            let parsed = if g.finish == Finish::Length {
                Err(format!("the reply was cut at {max_tokens} tokens before its JSON was complete"))
            } else {
                parse_and_validate(&g.text, user_schema)
            };
            (
                parsed,
                Some(g.text),
                g.input_tokens as u64,
                g.cached_tokens as u64,
                g.output_tokens as u64,
                g.prefill.as_millis() as u64,
            )
        }
    };
    stores.prompts.log_llm_call(&LlmCall {
        llm_call_id: LlmCallId::generate(),
        run_id: Some(run.run_id.clone()),
        prompt_id: Some(run.prompt_id.clone()),
        video_id: media.map(|m| m.video_id.clone()),
        segment_id: seg.map(|s| s.segment_id.clone()),
        model: model_id,
        purpose: purpose.to_string(),
        status: if metadata.is_ok() { "completed" } else { "failed" }.to_string(),
        input_tokens,
        cached_input_tokens: cached,
        output_tokens,
        prefill_ms,
        duration_ms,
        video_seconds: seg.map_or(media.and_then(|m| m.duration).unwrap_or(0.0), |s| s.end - s.start),
        segment_start_time: seg.map(|s| s.start),
        segment_end_time: seg.map(|s| s.end),
        prompt_text,
        response_text: raw.clone(),
        schema_used: Some(decoding.to_string()),
        error_message: metadata.as_ref().err().cloned(),
        invoked_at,
        completed_at: Some(crate::store::now()),
    })?;
    Ok(CallOutcome { metadata, raw })
}

/// The reply as JSON, checked against the prompt's schema.
pub(crate) fn parse_and_validate(text: &str, schema: &Value) -> std::result::Result<Value, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("the reply is not JSON: {e}"))?;
    let problems = schema::violations(schema, &value).map_err(|e| e.to_string())?;
    match problems.first() {
        None => Ok(value),
        Some(p) => Err(format!("the reply breaks the schema at {:?}: {}", p.path, p.message)),
    }
}

/// Every stored result of one media item in a run, in time order.
fn all_results(stores: &Stores, run_id: &RunId, video_id: &VideoId) -> Result<Vec<SegmentResult>> {
    let mut out = Vec::new();
    let mut page = crate::types::PageRequest::first(crate::types::MAX_PAGE_LIMIT);
    loop {
        let p = stores.prompts.segment_results(run_id, video_id, &page)?;
        out.extend(p.data);
        match p.next_cursor {
            Some(c) => page.cursor = Some(c),
            None => return Ok(out),
        }
    }
}

/// The media-wide synthesis over the segment results of one media item.
fn synthesise(
    stores: &Stores,
    model: Lm<'_>,
    run: &PromptRun,
    media: &Media,
    vl: &crate::types::VideoLevel,
    ctx: &JobContext,
) -> Result<()> {
    let results = all_results(stores, &run.run_id, &media.video_id)?;
    let good: Vec<&SegmentResult> = results.iter().filter(|r| r.field_extraction_succeeded).collect();
    let failed = results.len() - good.len();
    let phrases = stores.catalog.phrases(&media.video_id)?;
    let lines: Vec<String> = good
        .iter()
        .map(|r| {
            let fields = evidence::included_fields(r, vl.included_segment_fields.as_deref(), &phrases);
            format!("- {:.1}s to {:.1}s: {}", r.start_time, r.end_time, fields)
        })
        .collect();
    let user = format!(
        "Instructions: {}\n\nFields to fill:\n{}\n\nMedia: \"{}\"\nSegment results, in order:\n{}",
        vl.instructions_text.trim(),
        evidence::describe_fields(&vl.json_schema),
        media.title,
        evidence::clip_text(&lines.join("\n"), evidence::MAX_SYNTHESIS_CHARS)
    );
    let messages = vec![Message::system(SYSTEM_PROMPT.replace("one segment of", "the whole of")), Message::user(user)];
    let outcome = if good.is_empty() {
        CallOutcome { metadata: Err("no segment of this media item has a result".into()), raw: None }
    } else {
        call(stores, model, run, Some(media), None, "video_level", &messages, &vl.json_schema, ctx)?
    };
    let (status, metadata, error) = match outcome.metadata {
        Ok(v) => ("completed", v, None),
        Err(e) => ("failed", Value::Object(Default::default()), Some(e)),
    };
    let metadata_text = schema::metadata_text(&metadata, &run.prompt.semantic_indexing.disabled_video_level_fields);
    stores.prompts.save_video_result(&VideoResult {
        run_id: run.run_id.clone(),
        prompt_id: run.prompt_id.clone(),
        video_id: media.video_id.clone(),
        video_name: media.title.clone(),
        status: status.to_string(),
        metadata,
        metadata_text,
        raw_llm_response: outcome.raw,
        error_message: error,
        successful_segment_count: good.len() as u64,
        failed_segment_count: failed as u64,
        executed_at: crate::store::now(),
    })
}

/// Embed the `metadata_text` of a media item's good results into the metadata space, so that text
/// search finds what was extracted. Without a sentence encoder this is skipped (search by
/// filter still works); the metadata space holds the latest run's text per segment.
fn index_results(stores: &Stores, models: &Models, run: &PromptRun, media: &Media) -> Result<()> {
    if models.text()?.is_none() {
        return Ok(());
    }
    let texts: Vec<_> = all_results(stores, &run.run_id, &media.video_id)?
        .into_iter()
        .filter(|r| r.field_extraction_succeeded && !r.metadata_text.is_empty())
        .map(|r| (r.segment_id, r.metadata_text))
        .collect();
    crate::pipeline::embed::embed_texts(stores, models, &Scope::of(media.index_id.as_ref()), Space::Metadata, &texts)
}

/// Run one segment of a run again (a retry job).
pub(crate) fn retry(stores: &Stores, models: &Models, retry: &SegmentRetry, ctx: &JobContext) -> Result<()> {
    stores.prompts.set_retry_status(&retry.retry_id, "processing", None)?;
    let outcome = (|| -> Result<()> {
        let run = stores.prompts.run(&retry.run_id)?;
        let media = stores.catalog.media(&retry.video_id)?;
        let segments = run_segments(stores, &media, &run.run_id)?;
        let i = segments
            .iter()
            .position(|s| s.segment_id == retry.segment_id)
            .ok_or_else(|| Error::not_found("segment", retry.segment_id.as_str()))?;
        let phrases = stores.catalog.phrases(&media.video_id)?;
        let visual = evidence::VisualScores::new(stores, models, &media, &run.prompt.json_schema);
        let ev = evidence::Evidence::gather(&media, &segments, i, &phrases, visual.as_ref());
        let (_, model) = models.language(Some(&run.model))?;
        extract_segment(stores, (&model, models.max_reply_tokens), &run, &media, &segments[i], &ev, ctx)?;
        index_results(stores, models, &run, &media)?;
        // A run that finished with failures is completed once none is left.
        let now = stores.prompts.run(&run.run_id)?;
        if now.status == RunStatus::CompletedWithFailures && now.failed_segments == 0 {
            stores.prompts.set_run_status(&run.run_id, RunStatus::Completed, None)?;
        }
        match stores.prompts.segment_result(&run.run_id, &retry.segment_id)? {
            Some(r) if r.field_extraction_succeeded => Ok(()),
            Some(r) => {
                Err(Error::Model { model: run.model.clone(), message: r.field_extraction_error.unwrap_or_default() })
            }
            None => Err(Error::Internal("the retry stored no result".into())),
        }
    })();
    match &outcome {
        Ok(()) => stores.prompts.set_retry_status(&retry.retry_id, "completed", None)?,
        Err(Error::Cancelled) => stores.prompts.set_retry_status(&retry.retry_id, "cancelled", None)?,
        Err(e) => stores.prompts.set_retry_status(&retry.retry_id, "failed", Some(&e.to_string()))?,
    }
    match outcome {
        Err(Error::Model { .. }) => Ok(()),
        other => other,
    }
}

/// The media a target covers, in order, checked: unknown ids are 404, an empty target is 400.
pub(crate) fn target_media(
    stores: &Stores,
    target: &crate::types::RunTarget,
) -> Result<(Option<crate::ids::IndexId>, Vec<VideoId>)> {
    use crate::store::MediaFilter;
    use crate::types::RunTarget;
    let list_scope = |scope: &Scope| -> Result<Vec<VideoId>> {
        let mut out = Vec::new();
        let mut page = crate::types::PageRequest::first(crate::types::MAX_PAGE_LIMIT);
        loop {
            let p = stores.catalog.list_media(MediaFilter::Scope(scope), &page)?;
            out.extend(p.data.into_iter().filter(|m| m.status == Status::Completed).map(|m| m.video_id));
            match p.next_cursor {
                Some(c) => page.cursor = Some(c),
                None => return Ok(out),
            }
        }
    };
    let (index, videos) = match target {
        RunTarget::Index { index_id } => {
            let index = stores.catalog.index(index_id)?;
            let videos = list_scope(&Scope::Index(index.index_id.clone()))?;
            (Some(index.index_id), videos)
        }
        RunTarget::Playground => (None, list_scope(&Scope::Playground)?),
        RunTarget::Videos { video_ids, index_id } => {
            if video_ids.is_empty() {
                return Err(Error::invalid("target.video_ids", "name at least one media item"));
            }
            let index = index_id.as_deref().map(|i| stores.catalog.index(i)).transpose()?;
            let mut out = Vec::new();
            for v in video_ids {
                let m = stores.catalog.media(v)?;
                if let Some(ix) = &index {
                    if m.index_id.as_ref() != Some(&ix.index_id) {
                        return Err(Error::invalid("target.video_ids", format!("{v} is not in index {}", ix.index_id)));
                    }
                }
                if m.status != Status::Completed {
                    return Err(Error::invalid(
                        "target.video_ids",
                        format!("{v} is {} (only media whose ingest completed can be run)", m.status),
                    ));
                }
                if !out.contains(&m.video_id) {
                    out.push(m.video_id);
                }
            }
            (index.map(|i| i.index_id), out)
        }
    };
    if videos.is_empty() {
        return Err(Error::invalid("target", "the target holds no media whose ingest completed"));
    }
    Ok((index, videos))
}
