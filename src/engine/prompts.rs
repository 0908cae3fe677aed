//! `engine.prompts()` and `engine.prompt_runs()`: structured extraction with a local language
//! model, shaped like the SDK's `client.prompts` and `client.prompt_runs`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::Engine;
use crate::error::{Error, Result};
use crate::extraction::{self, schema, RetryJob, RunJob};
use crate::ids::RetryId;
use crate::ml::llm::{Message, DEFAULT_LANGUAGE_MODEL};
use crate::store::NewRun;
use crate::types::{
    AudioSegmentation, FailedSegment, JobKind, JobRequest, LlmCall, NewPrompt, Page, PageRequest, Prompt, PromptRun,
    PromptUpdate, PromptUsage, RunEstimate, RunRequest, SchemaCheck, SegmentResult, SegmentRetry, VideoLevel,
    VideoResult, VideoSegmentation,
};

/// How often waiting callers read a run's state.
const WAIT_POLL: Duration = Duration::from_millis(100);

fn request_hash(value: &impl serde::Serialize) -> String {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    format!("{:x}", Sha256::digest(bytes))
}

fn check_len(field: &str, value: &str, min: usize, max: usize) -> Result<()> {
    let n = value.trim().chars().count();
    if n < min || n > max {
        return Err(Error::invalid(field, format!("must be {min} to {max} characters (is {n})")));
    }
    Ok(())
}

fn check_video_level(vl: &VideoLevel) -> Result<()> {
    check_len("video_level.instructions_text", &vl.instructions_text, 1, 5000)?;
    schema::check(&vl.json_schema, "/video_level/json_schema")
}

/// Whole sentences of `text`, each once: a small model that loops writes the same sentence again,
/// and a length limit can cut the last one short.
fn tidy_sentences(text: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for sentence in text.split_inclusive(['.', '!', '?']) {
        let complete = sentence.trim_end().ends_with(['.', '!', '?']);
        if complete && !kept.iter().any(|k| k.trim() == sentence.trim()) {
            kept.push(sentence);
        }
    }
    let out = kept.concat().trim().to_string();
    if out.is_empty() {
        text.trim().to_string()
    } else {
        out
    }
}

/// Prompts: a JSON Schema to extract per segment, with instructions and an optional media-wide
/// synthesis.
pub struct Prompts<'a> {
    engine: &'a Engine,
}

impl<'a> Prompts<'a> {
    pub(super) fn new(engine: &'a Engine) -> Self {
        Prompts { engine }
    }

    /// Create a prompt. The schema is checked against the supported subset (a 422
    /// [`Error::InvalidSchema`] names the JSON pointer of what is refused); name 3-100
    /// characters, prompt text 10-5000, description up to 500. The same idempotency key with the
    /// same request gives back the first prompt.
    pub fn create(&self, new: &NewPrompt, idempotency_key: Option<&str>) -> Result<Prompt> {
        check_len("name", &new.name, 3, 100)?;
        check_len("prompt_text", &new.prompt_text, 10, 5000)?;
        check_len("description", &new.description, 0, 500)?;
        schema::check(&new.json_schema, "/json_schema")?;
        if let Some(vl) = &new.video_level {
            check_video_level(vl)?;
        }
        let hash = request_hash(new);
        self.engine.stores().prompts.create_prompt(new, idempotency_key.map(|k| (k, hash.as_str())))
    }

    pub fn get(&self, prompt_id: &str) -> Result<Prompt> {
        self.engine.stores().prompts.prompt(prompt_id)
    }

    /// Prompts in creation order (deactivated ones only with `active_only = false`).
    pub fn list(&self, active_only: bool) -> Result<Vec<Prompt>> {
        self.engine.stores().prompts.list_prompts(active_only)
    }

    /// Replace the given fields; `clear_video_level` removes the synthesis. Runs already made
    /// keep the prompt as it was. The same idempotency key with the same request applies once;
    /// with another request it is [`Error::IdempotencyConflict`].
    pub fn update(&self, prompt_id: &str, update: &PromptUpdate, idempotency_key: Option<&str>) -> Result<Prompt> {
        if let Some(n) = &update.name {
            check_len("name", n, 3, 100)?;
        }
        if let Some(t) = &update.prompt_text {
            check_len("prompt_text", t, 10, 5000)?;
        }
        if let Some(d) = &update.description {
            check_len("description", d, 0, 500)?;
        }
        if let Some(s) = &update.json_schema {
            schema::check(s, "/json_schema")?;
        }
        if let Some(vl) = &update.video_level {
            check_video_level(vl)?;
        }
        let hash = request_hash(update);
        self.engine.stores().prompts.update_prompt(prompt_id, update, idempotency_key.map(|k| (k, hash.as_str())))
    }

    /// Delete a prompt no run used. One that runs used is refused (409) unless `force`, which
    /// deactivates it (its runs keep their copy).
    pub fn delete(&self, prompt_id: &str, force: bool) -> Result<()> {
        self.engine.stores().prompts.delete_prompt(prompt_id, force)
    }

    /// Whether runs used the prompt, and so whether deleting it is safe.
    pub fn usage(&self, prompt_id: &str) -> Result<PromptUsage> {
        self.engine.stores().prompts.prompt_usage(prompt_id)
    }

    /// Check `sample_data` against `json_schema`: every violation with its path. A schema
    /// outside the supported subset is an error (422 with its pointer), not a failed check.
    pub fn test_schema(&self, json_schema: &Value, sample_data: &Value) -> Result<SchemaCheck> {
        schema::check(json_schema, "/json_schema")?;
        let errors = schema::violations(json_schema, sample_data)?;
        let valid = errors.is_empty();
        Ok(SchemaCheck {
            valid,
            validated_data: valid.then(|| sample_data.clone()),
            error: errors.first().map(|e| format!("{}: {}", if e.path.is_empty() { "/" } else { &e.path }, e.message)),
            message: if valid {
                "sample_data is valid for the schema".into()
            } else {
                format!("sample_data breaks the schema in {} place(s)", errors.len())
            },
            errors,
        })
    }

    /// Draft a prompt (name, prompt text, schema) from a one-line instruction, written by the
    /// language model under a schema of its own; the draft is checked like any prompt, so it
    /// can be created as it is. `model`: a GGUF path or id (default: the default model).
    pub fn generate(&self, instruction: &str, model: Option<&str>) -> Result<NewPrompt> {
        check_len("instruction", instruction, 3, 2000)?;
        let (_, lm) = self.engine.core().models.language(model)?;
        // Bounded lengths keep a small model from writing on and on inside one string.
        let field = json!({"type": "object", "properties": {
            "name": {"type": "string", "maxLength": 40, "description": "field name in snake_case"},
            "type": {"type": "string", "enum": ["string", "number", "integer", "boolean"]},
            "description": {"type": "string", "maxLength": 120}}, "required": ["name", "type", "description"]});
        let draft_schema = json!({"type": "object", "properties": {
            "name": {"type": "string", "maxLength": 60},
            "prompt_text": {"type": "string", "maxLength": 400},
            "fields": {"type": "array", "items": field, "minItems": 1, "maxItems": 6}},
            "required": ["name", "prompt_text", "fields"]});
        let messages = [
            Message::system(
                "You design extraction prompts for video segments. Given what the user wants to know, write a short \
                 name, instructions for an extractor, and 1 to 6 fields (snake_case names, simple types).",
            ),
            Message::user(instruction.to_string()),
        ];
        let generated = {
            let mut m = lm.lock().unwrap_or_else(|p| p.into_inner());
            m.generate(&messages, Some(&draft_schema), 1200, &|| false)?
        };
        let model_name = model.unwrap_or(DEFAULT_LANGUAGE_MODEL).to_string();
        if generated.finish == crate::ml::llm::Finish::Length {
            return Err(Error::Model {
                model: model_name,
                message: "the draft was cut before its JSON was complete".into(),
            });
        }
        let text = generated.text;
        let draft: Value = serde_json::from_str(&text).map_err(|e| Error::Model {
            model: model.unwrap_or(DEFAULT_LANGUAGE_MODEL).into(),
            message: format!("the draft is not JSON: {e}"),
        })?;
        let mut properties = serde_json::Map::new();
        for f in draft["fields"].as_array().into_iter().flatten() {
            let name: String = f["name"]
                .as_str()
                .unwrap_or_default()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
                .collect();
            let name = name.trim_matches('_').to_string();
            if name.is_empty() || properties.contains_key(&name) {
                continue;
            }
            properties.insert(name, json!({"type": f["type"], "description": f["description"]}));
        }
        if properties.is_empty() {
            properties
                .insert("summary".into(), json!({"type": "string", "description": "what happens in the segment"}));
        }
        let mut name = draft["name"].as_str().unwrap_or_default().trim().chars().take(100).collect::<String>();
        if name.chars().count() < 3 {
            name = format!("Draft: {}", instruction.chars().take(90).collect::<String>());
        }
        let mut prompt_text = tidy_sentences(draft["prompt_text"].as_str().unwrap_or_default());
        if prompt_text.chars().count() < 10 {
            prompt_text = format!("Extract from the segment: {instruction}");
        }
        let new = NewPrompt::new(name, prompt_text, json!({"type": "object", "properties": properties}));
        schema::check(&new.json_schema, "/json_schema")?;
        Ok(new)
    }
}

/// Prompt runs: a prompt executed over an index, a list of media or the playground, as a job.
pub struct PromptRuns<'a> {
    engine: &'a Engine,
}

impl<'a> PromptRuns<'a> {
    pub(super) fn new(engine: &'a Engine) -> Self {
        PromptRuns { engine }
    }

    fn validate(
        &self,
        req: &RunRequest,
    ) -> Result<(Prompt, Option<crate::ids::IndexId>, Vec<crate::ids::VideoId>, String)> {
        if req.video_segmentation_type == VideoSegmentation::Fixed && req.video_segment_duration.is_none() {
            return Err(Error::invalid("video_segment_duration", "required when video_segmentation_type is fixed"));
        }
        if req.audio_segmentation_type == AudioSegmentation::Fixed && req.audio_segment_duration.is_none() {
            return Err(Error::invalid("audio_segment_duration", "required when audio_segmentation_type is fixed"));
        }
        for (field, d) in [
            ("video_segment_duration", req.video_segment_duration),
            ("audio_segment_duration", req.audio_segment_duration),
        ] {
            if d.is_some_and(|d| !(1..=300).contains(&d)) {
                return Err(Error::invalid(field, "must be 1 to 300 seconds"));
            }
        }
        let stores = self.engine.stores();
        let prompt = stores.prompts.prompt(&req.prompt_id)?;
        if !prompt.is_active {
            return Err(Error::invalid("prompt_id", format!("prompt {} is deactivated", prompt.prompt_id)));
        }
        let (index, videos) = extraction::target_media(stores, &req.target)?;
        let model = req.processing_model.clone().unwrap_or_else(|| DEFAULT_LANGUAGE_MODEL.to_string());
        let model = if crate::ml::llm::HOSTED_MODEL_NAMES.contains(&model.as_str()) {
            DEFAULT_LANGUAGE_MODEL.to_string()
        } else {
            model
        };
        Ok((prompt, index, videos, model))
    }

    /// Start a run: it returns at once (`pending`); the engine's workers run it. The same
    /// idempotency key with the same request gives back the first run.
    pub fn execute(&self, req: &RunRequest, idempotency_key: Option<&str>) -> Result<PromptRun> {
        let (prompt, index_id, videos, model) = self.validate(req)?;
        let run =
            PromptRun::pending(req.clone(), prompt, index_id.clone(), model, videos.len() as u64, crate::store::now());
        let run_id = run.run_id.clone();
        let job = JobRequest {
            kind: JobKind::PromptRun,
            video_id: None,
            index_id,
            request_json: serde_json::to_string(&RunJob { run_id }).map_err(|e| Error::Internal(e.to_string()))?,
        };
        let hash = request_hash(req);
        let (run, created) = self.engine.stores().prompts.create_run(
            &NewRun { run: &run, videos: &videos, idempotency: idempotency_key.map(|k| (k, hash.as_str())) },
            &job,
        )?;
        if created {
            self.engine.pool().notify();
        }
        Ok(run)
    }

    /// What `execute` would do with the same request, computed without running it: media,
    /// segments and model calls; input tokens exactly (the prompts are rendered and tokenized as
    /// the run will); output tokens and seconds from this machine's measured speed for the model
    /// (its logged calls, or a short calibration when it has none).
    pub fn estimate(&self, req: &RunRequest) -> Result<RunEstimate> {
        let (prompt, _, videos, model_id) = self.validate(req)?;
        let stores = self.engine.stores();
        let models = &self.engine.core().models;
        let (_, lm) = models.language(Some(&model_id))?;
        let mut segments = 0u64;
        let mut calls = 0u64;
        let mut input_tokens = 0u64;
        let mut to_read = 0u64;
        let mut previous: Vec<u32> = Vec::new();
        let mut m = lm.lock().unwrap_or_else(|p| p.into_inner());
        for v in &videos {
            let media = stores.catalog.media(v)?;
            let segs = match extraction::own_segmentation(stores, &media, req)? {
                // A segmentation of the run's own: planned as the run will (its file analysed again), not stored.
                Some(config) => {
                    let (_, plan) =
                        extraction::plan_own(models, &media, &config, &crate::jobs::JobContext::detached())?;
                    extraction::planned_segments(&media, &plan, &config)
                }
                None => crate::store::all_segments(stores.catalog.as_ref(), v, media.primary_kind())?,
            };
            let phrases = stores.catalog.phrases(v)?;
            let visual = extraction::evidence::VisualScores::new(stores, models, &media, &prompt.json_schema);
            for i in 0..segs.len() {
                let ev = extraction::evidence::Evidence::gather(&media, &segs, i, &phrases, visual.as_ref());
                let messages = extraction::segment_messages(&prompt, &ev);
                let tokens = m.tokenize(&m.render(&messages))?;
                // What the run will read: the part not shared with the call before (when the
                // model reuses prefixes; at least one token).
                let shared = if m.reuses_prefixes() {
                    previous.iter().zip(&tokens).take_while(|(a, b)| a == b).count().min(tokens.len().saturating_sub(1))
                } else {
                    0
                };
                input_tokens += tokens.len() as u64;
                to_read += (tokens.len() - shared) as u64;
                previous = tokens;
            }
            segments += segs.len() as u64;
            calls += segs.len() as u64 + u64::from(prompt.video_level.is_some() && !segs.is_empty());
        }
        let (source, prefill, decode, mean_out) = match stores.prompts.throughput(m.id())? {
            Some(t) => (
                format!("measured from {} earlier calls", t.calls),
                t.prefill_tokens_per_second,
                t.decode_tokens_per_second,
                t.mean_output_tokens,
            ),
            None => {
                let probe = [Message::system(extraction::SYSTEM_PROMPT), Message::user(prompt.prompt_text.clone())];
                let g = m.generate(&probe, Some(&schema::decoding_schema(&prompt.json_schema)), 24, &|| false)?;
                let pre = g.input_tokens as f64 / g.prefill.as_secs_f64().max(1e-6);
                let dec = g.output_tokens as f64 / g.decode.as_secs_f64().max(1e-6);
                (
                    "calibrated now (one short call)".into(),
                    pre,
                    dec,
                    12.0 * schema::properties_count(&prompt.json_schema).max(1) as f64,
                )
            }
        };
        let output_tokens = (mean_out * calls as f64).round() as u64;
        let seconds = to_read as f64 / prefill.max(1e-6) + output_tokens as f64 / decode.max(1e-6);
        Ok(RunEstimate {
            videos: videos.len() as u64,
            segments,
            model_calls: calls,
            input_tokens,
            tokens_to_read: to_read,
            output_tokens,
            seconds,
            throughput_source: source,
            prefill_tokens_per_second: prefill,
            decode_tokens_per_second: decode,
            model: m.id().to_string(),
        })
    }

    pub fn get(&self, run_id: &str) -> Result<PromptRun> {
        self.engine.stores().prompts.run(run_id)
    }

    /// Runs, newest first.
    pub fn list(&self, limit: usize) -> Result<Vec<PromptRun>> {
        self.engine.stores().prompts.list_runs(limit.clamp(1, 1000))
    }

    /// Ask a run to stop: segments already done stay, no new segment starts. A pending run
    /// ends `cancelled` at once.
    pub fn cancel(&self, run_id: &str) -> Result<PromptRun> {
        let run = self.engine.stores().prompts.request_run_cancel(run_id)?;
        if let Some(job) = &run.job_id {
            self.engine.pool().cancel_local(job);
        }
        Ok(run)
    }

    /// Wait until the run is finished (or `timeout` passes: then the run as it is now).
    pub fn wait(&self, run_id: &str, timeout: Option<Duration>) -> Result<PromptRun> {
        self.wait_with(run_id, timeout, &mut |_| {})
    }

    /// [`PromptRuns::wait`], calling `on_progress` with the run while it goes.
    pub fn wait_with(
        &self,
        run_id: &str,
        timeout: Option<Duration>,
        on_progress: &mut dyn FnMut(&PromptRun),
    ) -> Result<PromptRun> {
        let started = Instant::now();
        loop {
            let run = self.get(run_id)?;
            if run.status.is_final() || timeout.is_some_and(|t| started.elapsed() >= t) {
                return Ok(run);
            }
            on_progress(&run);
            std::thread::sleep(WAIT_POLL);
        }
    }

    /// One media item's segment results, in time order, a page at a time.
    pub fn results(&self, run_id: &str, video_id: &str, page: &PageRequest) -> Result<Page<SegmentResult>> {
        let videos = self.engine.stores().prompts.run_videos(run_id)?;
        if !videos.iter().any(|v| v.as_str() == video_id) {
            self.engine.stores().prompts.run(run_id)?;
            return Err(Error::NotFound {
                kind: "video in run",
                id: video_id.to_string(),
                hint: Some(format!("run {run_id} does not cover it")),
            });
        }
        self.engine.stores().prompts.segment_results(run_id, video_id, page)
    }

    /// The media-wide synthesis for one media item (404 while there is none).
    pub fn video_result(&self, run_id: &str, video_id: &str) -> Result<VideoResult> {
        let run = self.engine.stores().prompts.run(run_id)?;
        if run.prompt.video_level.is_none() {
            return Err(Error::NotFound {
                kind: "video result",
                id: video_id.to_string(),
                hint: Some(format!("prompt {} has no video_level", run.prompt_id)),
            });
        }
        self.engine
            .stores()
            .prompts
            .video_result(run_id, video_id)?
            .ok_or_else(|| Error::not_found("video result", video_id))
    }

    /// Every failed segment, with the operation that failed, its error, attempts and whether a retry can help.
    pub fn failed_segments(&self, run_id: &str) -> Result<Vec<FailedSegment>> {
        self.engine.stores().prompts.failed_segments(run_id)
    }

    /// Run one segment of a run again (a job); returns the retry to poll with [`PromptRuns::retry_status`].
    pub fn retry_segment(
        &self,
        run_id: &str,
        video_id: &str,
        segment_id: &str,
        idempotency_key: Option<&str>,
    ) -> Result<SegmentRetry> {
        let stores = self.engine.stores();
        let run = stores.prompts.run(run_id)?;
        if !stores.prompts.run_videos(run_id)?.iter().any(|v| v.as_str() == video_id) {
            return Err(Error::NotFound {
                kind: "video in run",
                id: video_id.to_string(),
                hint: Some(format!("run {run_id} does not cover it")),
            });
        }
        let seg = stores.catalog.segment(segment_id)?;
        if seg.video_id.as_str() != video_id {
            return Err(Error::invalid(
                "segment_id",
                format!("{segment_id} belongs to {}, not {video_id}", seg.video_id),
            ));
        }
        if !run.status.is_final() {
            return Err(Error::Conflict(format!("run {run_id} is still {}; retry once it is finished", run.status)));
        }
        let retry = SegmentRetry {
            retry_id: RetryId::generate(),
            run_id: run.run_id.clone(),
            video_id: seg.video_id.clone(),
            segment_id: seg.segment_id.clone(),
            status: "pending".into(),
            error: None,
            idempotency_key: idempotency_key.map(str::to_string),
            created_at: crate::store::now(),
            started_at: None,
            completed_at: None,
        };
        let job = JobRequest {
            kind: JobKind::SegmentRetry,
            video_id: Some(seg.video_id.clone()),
            index_id: run.index_id.clone(),
            request_json: serde_json::to_string(&RetryJob { retry_id: retry.retry_id.to_string() })
                .map_err(|e| Error::Internal(e.to_string()))?,
        };
        let (retry, created) = stores.prompts.create_retry(&retry, &job)?;
        if created {
            self.engine.pool().notify();
        }
        Ok(retry)
    }

    pub fn retry_status(&self, retry_id: &str) -> Result<SegmentRetry> {
        self.engine.stores().prompts.retry(retry_id)
    }

    /// Every model call of the run: prompt, raw reply, tokens, time, model, error.
    pub fn llm_calls(&self, run_id: &str) -> Result<Vec<LlmCall>> {
        self.engine.stores().prompts.llm_calls(run_id)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn drafts_keep_each_whole_sentence_once() {
        let looped = "Say the weather. Count the people. Count the people. Count the people. Count the";
        assert_eq!(super::tidy_sentences(looped), "Say the weather. Count the people.");
        assert_eq!(super::tidy_sentences("no full stop"), "no full stop");
    }
}
