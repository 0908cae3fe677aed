//! The engine's records in the SDK's response models (SDK-CONTRACT.md section 7): field names,
//! required fields, and no `null` where a model has a non-null default.

use serde_json::{json, Map, Value};

use crate::search::{FilterHit, FilterResponse, Modality, SearchHit};
use crate::{
    FailedSegment, Index, Job, JobStatus, LlmCall, Media, MediaType, Prompt, PromptRun, RunStatus, RunTarget, Segment,
    SegmentResult, Status, VideoResult,
};

/// Every record is owned by the one local user.
pub const USER: &str = "local";

/// Where links in replies point: `http://HOST/api/v2`, from the request's `Host`.
#[derive(Debug, Clone)]
pub struct Base(pub String);

impl Base {
    pub fn thumbnail(&self, segment_id: &str) -> String {
        format!("{}/videos/segments/{segment_id}/thumbnail", self.0)
    }
    pub fn gif(&self, video_id: &str) -> String {
        format!("{}/videos/{video_id}/gif", self.0)
    }
}

/// The local media reference that stands where the platform puts a `gs://` URI; `POST
/// /videos/signed-url` turns it into a fetchable URL.
pub fn media_uri(video_id: &str) -> String {
    format!("videovector://videos/{video_id}")
}

/// The media's source as a `file://` URI (the path the engine read it from).
pub fn file_uri(path: &str) -> String {
    format!("file://{path}")
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

pub fn index(i: &Index) -> Value {
    json!({
        "index_id": i.index_id, "name": i.name, "user_id": USER, "created_at": i.created_at,
        "description": null, "is_default": false, "video_count": i.video_count,
    })
}

/// The API's video status: `processing` until the engine has finished, then `processed` or `failed`.
pub fn video_status(s: Status) -> &'static str {
    match s {
        Status::Pending | Status::Processing => "processing",
        Status::Completed => "processed",
        Status::Failed => "failed",
    }
}

fn media_type(m: &Media) -> &'static str {
    match m.media_type {
        Some(MediaType::Audio) => "audio",
        Some(MediaType::Image) => "image",
        _ => "video",
    }
}

pub fn video(m: &Media, base: &Base) -> Value {
    json!({
        "video_id": m.video_id, "title": m.title, "video_uri": file_uri(&m.source_path),
        "status": video_status(m.status), "created_at": m.created_at, "updated_at": m.updated_at,
        "media_type": media_type(m), "index_id": m.index_id, "duration": m.duration,
        "size_bytes": m.size_bytes, "content_hash": m.content_hash, "error_message": m.error,
        "gif_uri": m.gif_path.as_ref().map(|_| base.gif(&m.video_id)),
        "warnings": m.warnings, "metadata": m.metadata,
    })
}

pub fn segment(s: &Segment, base: &Base) -> Value {
    let thumb = s.thumbnail_path.as_ref().map(|_| base.thumbnail(&s.segment_id));
    json!({
        "segment_id": s.segment_id, "video_id": s.video_id, "start_time": s.start, "end_time": s.end,
        "gcs_uri": format!("{}#t={:.3},{:.3}", media_uri(&s.video_id), s.start, s.end),
        "thumbnail_uri": thumb, "thumbnail_available": thumb.is_some(),
        "processed": true, "segment_status": "processed", "from_run_id": s.run_id,
        "kind": s.kind, "index": s.index, "segmentation_type": s.segmentation_type, "keyframe_time": s.keyframe_time,
    })
}

pub fn prompt(p: &Prompt) -> Value {
    serde_json::to_value(p).unwrap_or_default()
}

pub fn run(r: &PromptRun) -> Value {
    let req = &r.request;
    let mut context = obj(serde_json::to_value(&req.target).unwrap_or_default());
    context.insert("target".into(), serde_json::to_value(&req.target).unwrap_or_default());
    context.insert("model".into(), json!(r.model));
    context.insert("job_id".into(), json!(r.job_id));
    let stop = json!({
        "requested_at": r.cancel_requested_at, "requested_by": r.cancel_requested_at.as_ref().map(|_| USER),
        "mode": r.cancel_requested_at.as_ref().map(|_| "cooperative"),
        "completed_at": if r.status == RunStatus::Cancelled { r.completed_at.clone() } else { None },
    });
    let done = r.completed_segments.saturating_sub(r.failed_segments);
    let mut v = json!({
        "run_id": r.run_id, "prompt_id": r.prompt_id, "prompt_name": r.prompt_name, "prompt_type": "custom",
        "executed_at": r.created_at, "executed_by": USER, "status": r.status, "run_context": context,
        "index_id": r.index_id,
        "total_videos": r.total_videos, "completed_videos": r.completed_videos, "failed_videos": r.failed_videos,
        "total_segments": r.total_segments, "completed_segments": r.completed_segments,
        "successful_segments": done, "failed_segments": r.failed_segments,
        "field_extraction_failures": r.failed_segments,
        "field_extraction_succeeded": if r.status.is_final() { Some(r.failed_segments == 0) } else { None },
        "error_message": r.error_message,
        "video_segmentation_type": req.video_segmentation_type.as_str(),
        "audio_segmentation_type": req.audio_segmentation_type.as_str(),
        "video_segment_duration": req.video_segment_duration, "audio_segment_duration": req.audio_segment_duration,
        "processing_model": req.processing_model.clone().unwrap_or_else(|| r.model.clone()),
        "total_video_seconds": r.total_video_seconds,
        "enable_transcription": req.enable_transcription, "enable_image_embedding": req.enable_image_embedding,
        "video_level_enabled": r.prompt.video_level.is_some(),
        "video_level_total_items": r.video_level_total_items,
        "video_level_completed_items": r.video_level_completed_items,
        "video_level_failed_items": r.video_level_failed_items,
        "stop_state": stop, "started_at": r.started_at, "completed_at": r.completed_at, "updated_at": r.updated_at,
    });
    if let RunTarget::Videos { video_ids, .. } = &req.target {
        v["run_context"]["video_ids"] = json!(video_ids);
    }
    v
}

pub fn result(r: &SegmentResult) -> Value {
    let mut v = obj(serde_json::to_value(r).unwrap_or_default());
    v.insert("result_type".into(), json!("segment"));
    v.insert("result_id".into(), json!(format!("{}:{}", r.segment_id, r.run_id)));
    v.insert("prompt_run_id".into(), json!(r.run_id));
    v.insert("gcs_uri".into(), json!(format!("{}#t={:.3},{:.3}", media_uri(&r.video_id), r.start_time, r.end_time)));
    Value::Object(v)
}

pub fn video_result(r: &VideoResult) -> Value {
    let mut v = obj(serde_json::to_value(r).unwrap_or_default());
    v.insert("result_type".into(), json!("video"));
    v.insert("result_id".into(), json!(format!("{}:{}", r.video_id, r.run_id)));
    v.insert("prompt_run_id".into(), json!(r.run_id));
    Value::Object(v)
}

/// The failed-segment manifest, grouped by media item.
pub fn failed_manifest(run: &PromptRun, failed: &[FailedSegment]) -> Value {
    let counts = |items: &[&FailedSegment]| {
        let mut c = json!({"field_extraction": 0, "transcription": 0, "image_embedding": 0, "processing": 0});
        for f in items {
            let key = if c.get(&f.failed_operation).is_some() { f.failed_operation.as_str() } else { "processing" };
            c[key] = json!(c[key].as_u64().unwrap_or(0) + 1);
        }
        c
    };
    let mut videos: Vec<(String, Vec<&FailedSegment>)> = Vec::new();
    for f in failed {
        match videos.iter_mut().find(|(v, _)| *v == f.video_id.as_str()) {
            Some((_, list)) => list.push(f),
            None => videos.push((f.video_id.to_string(), vec![f])),
        }
    }
    let all: Vec<&FailedSegment> = failed.iter().collect();
    json!({
        "run_id": run.run_id, "status": run.status, "videos_with_failures": videos.len(),
        "failed_segments": failed.len(), "operation_counts": counts(&all),
        "videos": videos.iter().map(|(video_id, list)| json!({
            "video_id": video_id, "failed_segments": list.len(), "operation_counts": counts(list),
            "segments": list.iter().map(|f| json!({
                "segment_id": f.segment_id, "video_id": f.video_id, "start_time": f.start_time,
                "end_time": f.end_time, "failed_operations": [f.failed_operation], "error": f.error,
                "error_message": f.error, "attempts": f.attempts, "retryable": f.retryable,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

pub fn llm_call(c: &LlmCall) -> Value {
    let mut v = obj(serde_json::to_value(c).unwrap_or_default());
    v.insert("user_id".into(), json!(USER));
    v.insert("total_tokens".into(), json!(c.input_tokens + c.output_tokens));
    Value::Object(v)
}

/// A search hit as the SDK's `SearchResult` (and, with `fused`, `MultimodalSearchResult`).
pub fn hit(h: &SearchHit, media: Option<&Media>, base: &Base, fused: bool) -> Value {
    let score_of = |m: &[Modality]| h.matches.iter().find(|x| m.contains(&x.modality));
    let text =
        score_of(&[Modality::Text, Modality::Visual, Modality::Transcript, Modality::Metadata, Modality::Keyword]);
    let image = score_of(&[Modality::Image]);
    let mut v = json!({
        "result_type": "segment",
        "result_id": match &h.run_id { Some(r) => format!("{}:{r}", h.segment_id), None => h.segment_id.to_string() },
        "segment_id": h.segment_id, "video_id": h.video_id,
        "video_name": media.map(|m| m.title.clone()), "video_uri": media.map(|m| file_uri(&m.source_path)),
        "media_type": media.map(media_type),
        "start_time": h.start, "end_time": h.end,
        "text_content": h.snippet.clone().unwrap_or_default(),
        "content_preview": h.snippet.as_deref().map(|s| s.chars().take(200).collect::<String>()).unwrap_or_default(),
        "similarity_score": h.score,
        "gcs_uri": format!("{}#t={:.3},{:.3}", media_uri(&h.video_id), h.start, h.end),
        "thumbnail_uri": h.thumbnail_path.as_ref().map(|_| base.thumbnail(&h.segment_id)),
        "thumbnail_available": h.thumbnail_path.is_some(),
        "run_id": h.run_id, "source_run_id": h.run_id, "prompt_run_id": h.run_id,
        "source_index_id": media.and_then(|m| m.index_id.clone()),
        "modality": h.modality.as_str(),
        "matches": h.matches,
    });
    if fused {
        v["fused_score"] = json!(h.score);
        v["match_type"] = json!(match (text.is_some() || h.matches.is_empty(), image.is_some()) {
            (true, true) => "both",
            (_, true) => "image_only",
            _ => "text_only",
        });
        v["text_score"] = json!(text.map(|m| m.score));
        v["text_rank"] = json!(text.map(|m| m.rank));
        v["image_score"] = json!(image.map(|m| m.score));
        v["image_rank"] = json!(image.map(|m| m.rank));
    }
    v
}

fn filter_hit(h: &FilterHit, base: &Base) -> Value {
    let scores: Map<String, Value> = h.matched_field_paths.iter().map(|p| (p.clone(), json!(1.0))).collect();
    json!({
        "result_type": "segment", "result_id": format!("{}:{}", h.segment_id, h.run_id),
        "segment_id": h.segment_id, "video_id": h.video_id, "video_name": h.video_name,
        "start_time": h.start, "end_time": h.end,
        "text_content": h.metadata_text, "content_preview": h.metadata_text.chars().take(200).collect::<String>(),
        "metadata_text": h.metadata_text, "metadata": h.metadata, "extracted_metadata": h.metadata,
        "run_id": h.run_id, "prompt_run_id": h.run_id, "source_run_id": h.run_id, "prompt_id": h.prompt_id,
        "similarity_score": 1.0, "field_scores": scores,
        "matched_field_paths": h.matched_field_paths, "matched_field_instances": h.matched_field_instances,
        "gcs_uri": format!("{}#t={:.3},{:.3}", media_uri(&h.video_id), h.start, h.end),
        "thumbnail_uri": h.thumbnail_path.as_ref().map(|_| base.thumbnail(&h.segment_id)),
        "thumbnail_available": h.thumbnail_path.is_some(),
    })
}

/// Both halves of the filter page (`results` + `next_page_token` and `data` + `pagination`).
pub fn filter_page(r: &FilterResponse, page_size: u32, base: &Base) -> Value {
    let hits: Vec<Value> = r.results.iter().map(|h| filter_hit(h, base)).collect();
    json!({
        "results": hits, "data": hits, "next_page_token": r.next_cursor, "total_shown": hits.len(),
        "pagination": { "limit": page_size, "has_more": r.has_more, "next_cursor": r.next_cursor },
    })
}

/// The API's import-job status of an ingest job.
pub fn import_status(job: Option<&Job>, error: bool) -> &'static str {
    match job.map(|j| j.status) {
        // A cancelled ingest marks its media failed; the import was still cancelled.
        Some(JobStatus::Cancelled) => "cancelled",
        _ if error => "failed",
        None | Some(JobStatus::Completed) => "completed",
        Some(JobStatus::Pending) => "pending",
        Some(JobStatus::Processing) => "importing",
        Some(JobStatus::Failed) => "failed",
    }
}

/// `data` + `pagination` page.
pub fn page(data: Vec<Value>, limit: u32, next_cursor: Option<String>) -> Value {
    json!({ "data": data, "pagination": { "limit": limit, "has_more": next_cursor.is_some(), "next_cursor": next_cursor } })
}
