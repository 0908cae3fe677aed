//! `videovector prompt ...` and `videovector run ...`: prompts and prompt runs.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::Value;
use videovector::{
    AudioSegmentation, Engine, NewPrompt, PageRequest, PromptRun, PromptUpdate, RunRequest, RunStatus, RunTarget,
    SemanticIndexing, VideoLevel, VideoSegmentation,
};

#[derive(Subcommand)]
pub enum PromptCommand {
    /// Create a prompt (its schema is checked against the supported subset).
    Create {
        #[arg(long)]
        name: String,
        /// The extraction instructions.
        #[arg(long)]
        text: String,
        /// The segment schema: JSON, or @FILE.
        #[arg(long)]
        schema: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Media-wide synthesis: instructions.
        #[arg(long, requires = "video_schema")]
        video_instructions: Option<String>,
        /// Media-wide synthesis: its schema (JSON or @FILE).
        #[arg(long, requires = "video_instructions")]
        video_schema: Option<String>,
        /// Segment fields left out of semantic indexing (repeatable).
        #[arg(long)]
        disable_field: Vec<String>,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// List prompts (deactivated ones too with --all).
    List {
        #[arg(long)]
        all: bool,
    },
    Get {
        prompt_id: String,
    },
    /// Replace the given fields of a prompt.
    Update {
        prompt_id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        text: Option<String>,
        #[arg(long)]
        schema: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Remove the media-wide synthesis.
        #[arg(long)]
        clear_video_level: bool,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Delete a prompt no run used (--force deactivates one that runs used).
    Delete {
        prompt_id: String,
        #[arg(long)]
        force: bool,
    },
    /// Check sample data (JSON or @FILE) against a schema (JSON or @FILE).
    TestSchema {
        #[arg(long)]
        schema: String,
        #[arg(long)]
        data: String,
    },
    /// The runs that used a prompt, and whether deleting it is safe.
    Usage {
        prompt_id: String,
    },
    /// Draft a prompt from a one-line instruction with the language model.
    Generate {
        instruction: String,
        /// Language model: a GGUF path or id (default: the default model).
        #[arg(long)]
        model: Option<String>,
    },
}

#[derive(Args)]
pub struct RunArgs {
    /// The prompt to run.
    #[arg(long)]
    prompt: String,
    /// Run over this index (id or name).
    #[arg(long, conflicts_with_all = ["videos", "playground"])]
    index: Option<String>,
    /// Run over these media items.
    #[arg(long, num_args = 1.., conflicts_with = "playground")]
    videos: Vec<String>,
    /// Run over the playground.
    #[arg(long)]
    playground: bool,
    #[arg(long, value_enum, default_value = "smart")]
    segmentation: VideoSeg,
    #[arg(long)]
    segment_duration: Option<u32>,
    #[arg(long, value_enum, default_value = "content-aware")]
    audio_segmentation: AudioSeg,
    #[arg(long)]
    audio_segment_duration: Option<u32>,
    /// Language model: a GGUF path, a model id, or a hosted name (runs the default model).
    #[arg(long)]
    model: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum VideoSeg {
    Smart,
    Fixed,
    ContentAware,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum AudioSeg {
    Fixed,
    ContentAware,
}

#[derive(Subcommand)]
pub enum RunCommand {
    /// Start a run and wait for it (--no-wait: return at once; `run wait` picks it up).
    Execute {
        #[command(flatten)]
        args: RunArgs,
        #[arg(long)]
        idempotency_key: Option<String>,
        #[arg(long)]
        no_wait: bool,
    },
    /// What a run would do: media, segments, model calls, tokens and predicted seconds.
    Estimate {
        #[command(flatten)]
        args: RunArgs,
    },
    /// Runs, newest first.
    List {
        #[arg(long, default_value_t = 200)]
        limit: usize,
    },
    Get {
        run_id: String,
    },
    /// Run pending work and wait for a run to finish; exits non-zero unless it completed.
    Wait {
        run_id: String,
        #[arg(long)]
        timeout: Option<f64>,
    },
    /// Stop a run: done segments stay, no new one starts.
    Cancel {
        run_id: String,
    },
    /// One media item's segment results.
    Results {
        run_id: String,
        #[arg(long)]
        video_id: String,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// The media-wide synthesis of one media item.
    VideoResult {
        run_id: String,
        video_id: String,
    },
    /// The failed segments, with the failed operation, error and attempts.
    FailedSegments {
        run_id: String,
    },
    /// Run one segment again and wait for it.
    Retry {
        run_id: String,
        video_id: String,
        segment_id: String,
    },
    /// Every model call of a run: prompt, raw reply, tokens, time.
    LlmCalls {
        run_id: String,
    },
}

/// Whether a command runs jobs in this process.
pub fn needs_workers(cmd: &RunCommand) -> bool {
    matches!(cmd, RunCommand::Execute { no_wait: false, .. } | RunCommand::Wait { .. } | RunCommand::Retry { .. })
}

fn json_arg(text: &str) -> Result<Value> {
    let body = match text.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(PathBuf::from(path)).with_context(|| format!("cannot read {path}"))?,
        None => text.to_string(),
    };
    serde_json::from_str(&body).with_context(|| format!("not JSON: {}", body.chars().take(80).collect::<String>()))
}

fn pretty<T: Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub fn prompt_cmd(engine: &Engine, cmd: PromptCommand) -> Result<ExitCode> {
    let prompts = engine.prompts();
    match cmd {
        PromptCommand::Create {
            name,
            text,
            schema,
            description,
            video_instructions,
            video_schema,
            disable_field,
            idempotency_key,
        } => {
            let mut new = NewPrompt::new(name, text, json_arg(&schema)?).description(description);
            if let (Some(i), Some(s)) = (video_instructions, video_schema) {
                new = new.video_level(VideoLevel::new(i, json_arg(&s)?));
            }
            if !disable_field.is_empty() {
                let mut si = SemanticIndexing::default();
                si.disabled_segment_fields = disable_field;
                new = new.semantic_indexing(si);
            }
            pretty(&prompts.create(&new, idempotency_key.as_deref())?)?;
        }
        PromptCommand::List { all } => pretty(&prompts.list(!all)?)?,
        PromptCommand::Get { prompt_id } => pretty(&prompts.get(&prompt_id)?)?,
        PromptCommand::Update { prompt_id, name, text, schema, description, clear_video_level, idempotency_key } => {
            let mut u = PromptUpdate::default();
            u.name = name;
            u.prompt_text = text;
            u.json_schema = schema.as_deref().map(json_arg).transpose()?;
            u.description = description;
            u.clear_video_level = clear_video_level;
            pretty(&prompts.update(&prompt_id, &u, idempotency_key.as_deref())?)?;
        }
        PromptCommand::Delete { prompt_id, force } => {
            prompts.delete(&prompt_id, force)?;
            eprintln!("deleted {prompt_id}");
        }
        PromptCommand::TestSchema { schema, data } => {
            let check = prompts.test_schema(&json_arg(&schema)?, &json_arg(&data)?)?;
            pretty(&check)?;
            if !check.valid {
                return Ok(ExitCode::FAILURE);
            }
        }
        PromptCommand::Usage { prompt_id } => pretty(&prompts.usage(&prompt_id)?)?,
        PromptCommand::Generate { instruction, model } => pretty(&prompts.generate(&instruction, model.as_deref())?)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn request(args: RunArgs) -> Result<RunRequest> {
    let target = match (args.index, args.videos.is_empty(), args.playground) {
        (Some(index_id), _, _) => RunTarget::Index { index_id },
        (None, false, _) => RunTarget::Videos { video_ids: args.videos, index_id: None },
        (None, true, true) => RunTarget::Playground,
        (None, true, false) => bail!("name a target: --index, --videos or --playground"),
    };
    let mut req = RunRequest::new(args.prompt, target);
    req.video_segmentation_type = match args.segmentation {
        VideoSeg::Smart => VideoSegmentation::Smart,
        VideoSeg::Fixed => VideoSegmentation::Fixed,
        VideoSeg::ContentAware => VideoSegmentation::ContentAware,
    };
    req.audio_segmentation_type = match args.audio_segmentation {
        AudioSeg::Fixed => AudioSegmentation::Fixed,
        AudioSeg::ContentAware => AudioSegmentation::ContentAware,
    };
    req.video_segment_duration = args.segment_duration;
    req.audio_segment_duration = args.audio_segment_duration;
    req.processing_model = args.model;
    Ok(req)
}

/// Wait for a run with a progress bar on a terminal; exit status by the run's outcome.
fn wait(engine: &Engine, run_id: &str, timeout: Option<Duration>, json: bool) -> Result<ExitCode> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = ProgressBar::new(0);
        b.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} segments ({elapsed})")
                .expect("valid template"),
        );
        b
    });
    let run = engine.prompt_runs().wait_with(run_id, timeout, &mut |r: &PromptRun| {
        if let Some(b) = &bar {
            b.set_length(r.total_segments);
            b.set_position(r.completed_segments + r.failed_segments);
            b.set_message(r.status.to_string());
            b.tick();
        }
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    summary(&run, json)?;
    Ok(match run.status {
        RunStatus::Completed => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

fn summary(run: &PromptRun, json: bool) -> Result<()> {
    if json {
        return pretty(run);
    }
    println!(
        "{} {} prompt {} model {}: {} media, {}/{} segments done, {} failed{}",
        run.run_id,
        run.status,
        run.prompt_id,
        run.model,
        run.total_videos,
        run.completed_segments,
        run.total_segments,
        run.failed_segments,
        run.error_message.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
    );
    Ok(())
}

pub fn run_cmd(engine: &Engine, cmd: RunCommand, json: bool) -> Result<ExitCode> {
    let runs = engine.prompt_runs();
    match cmd {
        RunCommand::Execute { args, idempotency_key, no_wait } => {
            let run = runs.execute(&request(args)?, idempotency_key.as_deref())?;
            if no_wait {
                summary(&run, json)?;
            } else {
                return wait(engine, &run.run_id, None, json);
            }
        }
        RunCommand::Estimate { args } => pretty(&runs.estimate(&request(args)?)?)?,
        RunCommand::List { limit } => {
            let list = runs.list(limit)?;
            if json {
                pretty(&list)?;
            } else {
                for r in &list {
                    summary(r, false)?;
                }
            }
        }
        RunCommand::Get { run_id } => summary(&runs.get(&run_id)?, json)?,
        RunCommand::Wait { run_id, timeout } => {
            return wait(engine, &run_id, timeout.map(Duration::from_secs_f64), json);
        }
        RunCommand::Cancel { run_id } => summary(&runs.cancel(&run_id)?, json)?,
        RunCommand::Results { run_id, video_id, limit, cursor } => {
            let mut page = PageRequest::default();
            page.limit = limit;
            page.cursor = cursor;
            pretty(&runs.results(&run_id, &video_id, &page)?)?;
        }
        RunCommand::VideoResult { run_id, video_id } => pretty(&runs.video_result(&run_id, &video_id)?)?,
        RunCommand::FailedSegments { run_id } => pretty(&runs.failed_segments(&run_id)?)?,
        RunCommand::Retry { run_id, video_id, segment_id } => {
            let retry = runs.retry_segment(&run_id, &video_id, &segment_id, None)?;
            loop {
                let r = runs.retry_status(&retry.retry_id)?;
                if matches!(r.status.as_str(), "completed" | "failed" | "cancelled") {
                    pretty(&r)?;
                    return Ok(if r.status == "completed" { ExitCode::SUCCESS } else { ExitCode::FAILURE });
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        RunCommand::LlmCalls { run_id } => pretty(&runs.llm_calls(&run_id)?)?,
    }
    Ok(ExitCode::SUCCESS)
}
