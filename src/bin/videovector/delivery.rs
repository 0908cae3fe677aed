//! `videovector connector|import|export|webhook ...`: moving media in and results out.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use serde::Serialize;
use videovector::delivery::{
    ExportFormat, ExportRequest, ImportRequest, NewConnector, NewWebhook, WebhookUpdate, EVENT_NAMES,
};
use videovector::Engine;

#[derive(Subcommand)]
pub enum ConnectorCommand {
    /// A folder on this machine.
    CreateLocal {
        #[arg(long)]
        name: String,
        path: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// An S3 bucket (or an S3-compatible server with --endpoint).
    CreateS3 {
        #[arg(long)]
        name: String,
        #[arg(long)]
        bucket: String,
        #[arg(long)]
        region: String,
        #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
        access_key_id: String,
        #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
        secret_access_key: String,
        #[arg(long)]
        endpoint: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// An Azure Blob container, with a service principal or an account key.
    CreateAzure {
        #[arg(long)]
        name: String,
        #[arg(long)]
        storage_account: String,
        #[arg(long)]
        container: String,
        #[arg(long)]
        tenant_id: Option<String>,
        #[arg(long)]
        client_id: Option<String>,
        #[arg(long, env = "AZURE_CLIENT_SECRET", hide_env_values = true)]
        client_secret: Option<String>,
        #[arg(long, env = "AZURE_STORAGE_ACCOUNT_KEY", hide_env_values = true)]
        access_key: Option<String>,
        #[arg(long)]
        endpoint: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// A GCS bucket, with a service-account key file.
    CreateGcs {
        #[arg(long)]
        name: String,
        #[arg(long)]
        bucket: String,
        #[arg(long)]
        project: String,
        #[arg(long)]
        credentials_file: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    List,
    Get {
        connector_id: String,
    },
    Delete {
        connector_id: String,
    },
    /// Check that the storage answers with the stored credentials.
    Test {
        connector_id: String,
    },
    /// Files under a prefix matching a glob (`*.{mp4,mov}`).
    Browse {
        connector_id: String,
        #[arg(long, default_value = "")]
        prefix: String,
        #[arg(long, default_value = "*")]
        pattern: String,
        /// Only the prefix's own level.
        #[arg(long)]
        flat: bool,
    },
}

#[derive(clap::Args)]
pub struct Common {
    /// import, export (repeatable; default import).
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// all or new_only.
    #[arg(long)]
    import_mode: Option<String>,
    #[arg(long)]
    export_base_path: Option<String>,
}

impl Common {
    fn apply(self, mut c: NewConnector) -> NewConnector {
        if !self.scopes.is_empty() {
            c.scopes = Some(self.scopes);
        }
        c.import_mode = self.import_mode;
        c.export_base_path = self.export_base_path;
        c
    }
}

#[derive(Subcommand)]
pub enum ImportCommand {
    /// Import a connector's files into an index; waits until their media is processed unless --no-wait.
    Create {
        connector_id: String,
        /// Index id or name.
        #[arg(long)]
        index: String,
        #[arg(long, default_value = "")]
        prefix: String,
        #[arg(long, default_value = "*")]
        pattern: String,
        #[arg(long)]
        flat: bool,
        #[arg(long)]
        no_wait: bool,
    },
    Get {
        import_id: String,
    },
    List {
        #[arg(long)]
        status: Option<String>,
    },
    /// The listed files and what became of each.
    Files {
        import_id: String,
        #[arg(long)]
        failed_only: bool,
    },
    /// The media items the import made.
    Outputs {
        import_id: String,
    },
    Cancel {
        import_id: String,
    },
    /// Import the failed files again (all, or those named).
    Retry {
        import_id: String,
        #[arg(long = "file")]
        files: Vec<String>,
    },
    Wait {
        import_id: String,
    },
}

#[derive(Subcommand)]
pub enum ExportCommand {
    /// Export an index (optionally only some runs' results).
    Index {
        index: String,
        #[arg(long = "run")]
        runs: Vec<String>,
        #[command(flatten)]
        to: ExportTo,
    },
    /// Export one prompt run.
    Run {
        run_id: String,
        #[command(flatten)]
        to: ExportTo,
    },
    Get {
        export_id: String,
    },
    List {
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

#[derive(clap::Args)]
pub struct ExportTo {
    /// Write to this connector (export scope) instead of `exports/` in the data folder.
    #[arg(long)]
    connector: Option<String>,
    #[arg(long, requires = "connector")]
    subpath: Option<String>,
    /// json (one document), jsonl (a record per line) or parquet (one flat table).
    #[arg(long, default_value = "json")]
    format: String,
    #[arg(long)]
    no_wait: bool,
}

#[derive(Subcommand)]
pub enum WebhookCommand {
    /// Create a webhook; prints its signing secret once.
    Create {
        #[arg(long)]
        name: String,
        url: String,
        /// Event names (repeatable; `videovector webhook events` lists them).
        #[arg(long = "event", required = true)]
        events: Vec<String>,
        /// Only events of these indexes (repeatable).
        #[arg(long = "index")]
        index_ids: Vec<String>,
    },
    List,
    Get {
        webhook_id: String,
    },
    Update {
        webhook_id: String,
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// active or paused.
        #[arg(long)]
        status: Option<String>,
    },
    Delete {
        webhook_id: String,
    },
    RotateSecret {
        webhook_id: String,
    },
    /// Send a signed test event now.
    Test {
        webhook_id: String,
    },
    Deliveries {
        webhook_id: String,
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    RetryDelivery {
        delivery_id: String,
    },
    /// The event names a webhook can subscribe to.
    Events,
}

/// Whether the command needs the engine's workers (and its webhook dispatcher).
pub fn needs_workers(import: Option<&ImportCommand>, export: Option<&ExportCommand>) -> bool {
    matches!(
        import,
        Some(ImportCommand::Create { no_wait: false, .. } | ImportCommand::Wait { .. } | ImportCommand::Retry { .. })
    ) || matches!(
        export,
        Some(
            ExportCommand::Index { to: ExportTo { no_wait: false, .. }, .. }
                | ExportCommand::Run { to: ExportTo { no_wait: false, .. }, .. }
        )
    )
}

fn out<T: Serialize>(json: bool, value: &T, text: impl FnOnce() -> String) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string(value)?);
    } else {
        println!("{}", text());
    }
    Ok(ExitCode::SUCCESS)
}

fn connector_line(c: &videovector::delivery::Connector) -> String {
    format!(
        "{}  {}  {}  scopes={}  import_mode={}  status={}",
        c.connector_id,
        c.provider,
        c.name,
        c.scopes.join(","),
        c.import_mode,
        c.status
    )
}

pub fn connector_cmd(engine: &Engine, cmd: ConnectorCommand, json: bool) -> Result<ExitCode> {
    let c = engine.connectors();
    let created = match cmd {
        ConnectorCommand::CreateLocal { name, path, common } => common.apply(NewConnector::local(name, path)),
        ConnectorCommand::CreateS3 { name, bucket, region, access_key_id, secret_access_key, endpoint, common } => {
            let mut n = common.apply(NewConnector::s3(name, bucket, region, access_key_id, secret_access_key));
            n.endpoint = endpoint;
            n
        }
        ConnectorCommand::CreateAzure {
            name,
            storage_account,
            container,
            tenant_id,
            client_id,
            client_secret,
            access_key,
            endpoint,
            common,
        } => {
            let mut n = common.apply(NewConnector::azure(name, storage_account, container));
            (n.tenant_id, n.client_id, n.client_secret, n.access_key, n.endpoint) =
                (tenant_id, client_id, client_secret, access_key, endpoint);
            n
        }
        ConnectorCommand::CreateGcs { name, bucket, project, credentials_file, common } => {
            let creds = std::fs::read_to_string(&credentials_file)
                .with_context(|| format!("cannot read {}", credentials_file.display()))?;
            common.apply(NewConnector::gcs(name, bucket, project, creds))
        }
        ConnectorCommand::List => {
            let list = c.list()?;
            return out(json, &list, || list.iter().map(connector_line).collect::<Vec<_>>().join("\n"));
        }
        ConnectorCommand::Get { connector_id } => {
            let x = c.retrieve(&connector_id)?;
            return out(json, &x, || connector_line(&x));
        }
        ConnectorCommand::Delete { connector_id } => {
            c.delete(&connector_id)?;
            return out(json, &serde_json::json!({ "deleted": connector_id }), || format!("deleted {connector_id}"));
        }
        ConnectorCommand::Test { connector_id } => {
            let t = c.test(&connector_id)?;
            out(json, &t, || match &t.error_message {
                None => format!("{connector_id}: ok"),
                Some(e) => format!("{connector_id}: failed: {e}"),
            })?;
            return Ok(if t.success { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
        ConnectorCommand::Browse { connector_id, prefix, pattern, flat } => {
            let files = c.browse(&connector_id, &prefix, &pattern, !flat)?;
            return out(json, &files, || {
                files
                    .iter()
                    .map(|f| format!("{}  {} bytes  {}", f.path, f.size_bytes, f.last_modified))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    };
    let x = c.create(&created)?;
    out(json, &x, || connector_line(&x))
}

fn import_line(j: &videovector::delivery::ImportJob) -> String {
    let p = &j.progress;
    format!(
        "{}  {}  files={} imported={} failed={} skipped={} bytes={}{}",
        j.job_id,
        j.status,
        p.total_files,
        p.imported,
        p.failed,
        p.skipped,
        p.bytes_transferred,
        j.error_message.as_deref().map(|e| format!("  error: {e}")).unwrap_or_default()
    )
}

fn wait_import(engine: &Engine, id: &str) -> Result<videovector::delivery::ImportJob> {
    let mut last = String::new();
    loop {
        let j = engine.imports().retrieve(id)?;
        let line = import_line(&j);
        if line != last {
            eprintln!("{line}");
            last = line;
        }
        if matches!(j.status.as_str(), "completed" | "failed" | "cancelled") {
            return Ok(j);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub fn import_cmd(engine: &Engine, cmd: ImportCommand, json: bool) -> Result<ExitCode> {
    let i = engine.imports();
    let job = match cmd {
        ImportCommand::Create { connector_id, index, prefix, pattern, flat, no_wait } => {
            let j =
                i.create(&ImportRequest::new(connector_id, index).prefix(prefix).pattern(pattern).recursive(!flat))?;
            if no_wait {
                j
            } else {
                wait_import(engine, &j.job_id)?
            }
        }
        ImportCommand::Get { import_id } => i.retrieve(&import_id)?,
        ImportCommand::List { status } => {
            let list = i.list(status.as_deref())?;
            return out(json, &list, || list.iter().map(import_line).collect::<Vec<_>>().join("\n"));
        }
        ImportCommand::Files { import_id, failed_only } => {
            let files = i.files(&import_id, failed_only)?;
            return out(json, &files, || {
                files
                    .iter()
                    .map(|f| {
                        let why = f.error.as_deref().or(f.skip_reason.as_deref()).unwrap_or("");
                        format!("{}  {}  {}  {why}", f.source_ordinal, f.status, f.path)
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        ImportCommand::Outputs { import_id } => {
            let o = i.outputs(&import_id)?;
            return out(json, &o, || {
                o.iter()
                    .map(|o| format!("{}  {}  {}", o.video_id, o.status, o.file_name))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        ImportCommand::Cancel { import_id } => i.cancel(&import_id)?,
        ImportCommand::Retry { import_id, files } => {
            let j = i.retry(&import_id, (!files.is_empty()).then_some(files.as_slice()))?;
            wait_import(engine, &j.job_id)?
        }
        ImportCommand::Wait { import_id } => wait_import(engine, &import_id)?,
    };
    out(json, &job, || import_line(&job))?;
    Ok(if job.status == "failed" { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn export_line(e: &videovector::delivery::Export) -> String {
    let place =
        e.file_path.as_ref().map(|p| p.display().to_string()).or_else(|| e.destination_uri.clone()).unwrap_or_default();
    format!(
        "{}  {} {}  {}  {}{}{}",
        e.export_id,
        e.export_type,
        e.target_id,
        e.status,
        e.file_size_bytes.map(|n| format!("{n} bytes  ")).unwrap_or_default(),
        place,
        e.error_message.as_deref().map(|x| format!("  error: {x}")).unwrap_or_default()
    )
}

pub fn export_cmd(engine: &Engine, cmd: ExportCommand, json: bool) -> Result<ExitCode> {
    let x = engine.exports();
    let (req, to) = match cmd {
        ExportCommand::Index { index, runs, to } => {
            let mut r = ExportRequest::index(index);
            if !runs.is_empty() {
                r = r.runs(runs);
            }
            (r, to)
        }
        ExportCommand::Run { run_id, to } => (ExportRequest::prompt_run(run_id), to),
        ExportCommand::Get { export_id } => {
            let e = x.retrieve(&export_id)?;
            return out(json, &e, || export_line(&e));
        }
        ExportCommand::List { limit } => {
            let list = x.list(limit)?;
            return out(json, &list, || list.iter().map(export_line).collect::<Vec<_>>().join("\n"));
        }
    };
    let format: ExportFormat = to.format.parse()?;
    let mut req = req.format(format);
    if let Some(c) = to.connector {
        req = req.to_connector(c, to.subpath);
    }
    let mut e = x.create(&req)?;
    let start = Instant::now();
    while !to.no_wait && (e.status == "pending" || e.status == "processing") {
        std::thread::sleep(Duration::from_millis(100));
        e = x.retrieve(&e.export_id)?;
    }
    if !to.no_wait {
        eprintln!("export {} in {:.2} s", e.status, start.elapsed().as_secs_f64());
    }
    out(json, &e, || export_line(&e))?;
    Ok(if e.status == "failed" { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn webhook_line(w: &videovector::delivery::Webhook) -> String {
    format!("{}  {}  {}  {}  events={}", w.webhook_id, w.status, w.name, w.url, w.events.join(","))
}

pub fn webhook_cmd(engine: &Engine, cmd: WebhookCommand, json: bool) -> Result<ExitCode> {
    let w = engine.webhooks();
    match cmd {
        WebhookCommand::Create { name, url, events, index_ids } => {
            let mut new = NewWebhook::new(name, url, &events.iter().map(String::as_str).collect::<Vec<_>>());
            if !index_ids.is_empty() {
                new = new.index_ids(index_ids);
            }
            let (hook, secret) = w.create(&new)?;
            out(json, &serde_json::json!({ "webhook": hook, "secret": secret }), || {
                format!("{}\nsecret (shown once): {secret}", webhook_line(&hook))
            })
        }
        WebhookCommand::List => {
            let list = w.list()?;
            out(json, &list, || list.iter().map(webhook_line).collect::<Vec<_>>().join("\n"))
        }
        WebhookCommand::Get { webhook_id } => {
            let h = w.retrieve(&webhook_id)?;
            out(json, &h, || webhook_line(&h))
        }
        WebhookCommand::Update { webhook_id, url, name, status } => {
            let mut u = WebhookUpdate::new();
            u.url = url;
            u.name = name;
            u.status = status;
            let h = w.update(&webhook_id, &u)?;
            out(json, &h, || webhook_line(&h))
        }
        WebhookCommand::Delete { webhook_id } => {
            w.delete(&webhook_id)?;
            out(json, &serde_json::json!({ "deleted": webhook_id }), || format!("deleted {webhook_id}"))
        }
        WebhookCommand::RotateSecret { webhook_id } => {
            let secret = w.rotate_secret(&webhook_id)?;
            out(json, &serde_json::json!({ "webhook_id": webhook_id, "new_secret": secret }), || {
                format!("new secret (shown once): {secret}")
            })
        }
        WebhookCommand::Test { webhook_id } => {
            let t = w.test(&webhook_id)?;
            out(json, &t, || match (&t.status_code, &t.error) {
                (Some(s), None) => format!("delivered: the receiver answered {s}"),
                (_, Some(e)) => format!("failed: {e}"),
                _ => "failed".into(),
            })?;
            Ok(if t.success { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        WebhookCommand::Deliveries { webhook_id, status, limit } => {
            let list = w.deliveries(&webhook_id, status.as_deref(), limit)?;
            out(json, &list, || {
                list.iter()
                    .map(|d| {
                        format!(
                            "{}  {}  {}  attempts={}{}",
                            d.delivery_id,
                            d.event_type,
                            d.status,
                            d.attempts,
                            d.error_message.as_deref().map(|e| format!("  {e}")).unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        WebhookCommand::RetryDelivery { delivery_id } => {
            let d = w.retry_delivery(&delivery_id)?;
            if d.status == "failed" {
                bail!("delivery {delivery_id} failed again: {}", d.error_message.unwrap_or_default());
            }
            out(json, &d, || format!("{}  {}  attempts={}", d.delivery_id, d.status, d.attempts))
        }
        WebhookCommand::Events => out(json, &EVENT_NAMES, || EVENT_NAMES.join("\n")),
    }
}

#[derive(Subcommand)]
pub enum CollectionCommand {
    Create {
        name: String,
        #[arg(long)]
        description: Option<String>,
    },
    List {
        #[arg(long, default_value_t = 1)]
        page: u32,
        #[arg(long, default_value_t = 10)]
        page_size: u32,
    },
    Get {
        collection_id: String,
    },
    Update {
        collection_id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a collection (its media stay).
    Delete {
        collection_id: String,
    },
    /// Add a fully processed media item.
    Add {
        collection_id: String,
        video_id: String,
    },
    Remove {
        collection_id: String,
        video_id: String,
    },
    Videos {
        collection_id: String,
        #[arg(long, default_value_t = 1)]
        page: u32,
        #[arg(long, default_value_t = 10)]
        page_size: u32,
        /// created_at, added_at or title.
        #[arg(long, default_value = "created_at")]
        sort_by: String,
        #[arg(long, default_value = "desc")]
        sort_order: String,
    },
    /// Text search over the collection's media only.
    Search {
        collection_id: String,
        query: String,
        #[arg(long, default_value_t = 5)]
        top_k: usize,
    },
}

fn collection_line(c: &videovector::delivery::Collection) -> String {
    format!("{}  {}  {} media  {}", c.collection_id, c.name, c.video_count, c.description.as_deref().unwrap_or(""))
}

pub fn collection_cmd(engine: &Engine, cmd: CollectionCommand, json: bool) -> Result<ExitCode> {
    let c = engine.collections();
    let one = match cmd {
        CollectionCommand::Create { name, description } => c.create(&name, description.as_deref())?,
        CollectionCommand::List { page, page_size } => {
            let p = c.list(page, page_size)?;
            return out(json, &p, || {
                let mut lines: Vec<String> = p.data.iter().map(collection_line).collect();
                lines.push(format!("page {} of {} collections", p.page, p.total));
                lines.join("\n")
            });
        }
        CollectionCommand::Get { collection_id } => c.retrieve(&collection_id)?,
        CollectionCommand::Update { collection_id, name, description } => {
            c.update(&collection_id, name.as_deref(), description.as_deref())?
        }
        CollectionCommand::Delete { collection_id } => {
            c.delete(&collection_id)?;
            return out(json, &serde_json::json!({ "deleted": collection_id }), || format!("deleted {collection_id}"));
        }
        CollectionCommand::Add { collection_id, video_id } => c.add_video(&collection_id, &video_id)?,
        CollectionCommand::Remove { collection_id, video_id } => c.remove_video(&collection_id, &video_id)?,
        CollectionCommand::Videos { collection_id, page, page_size, sort_by, sort_order } => {
            let p = c.list_videos(&collection_id, page, page_size, &sort_by, &sort_order)?;
            return out(json, &p, || {
                p.data
                    .iter()
                    .map(|m| format!("{}  {}  {}", m.video_id, m.status, m.title))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        CollectionCommand::Search { collection_id, query, top_k } => {
            let found = c.search(&collection_id, &videovector::TextSearch::new(query).top_k(top_k))?;
            return out(json, &found, || {
                found
                    .results
                    .iter()
                    .map(|h| format!("{:.4}  {}  {:.2}-{:.2}s  {}", h.score, h.video_id, h.start, h.end, h.segment_id))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    };
    out(json, &one, || collection_line(&one))
}

#[derive(Subcommand)]
pub enum MarkerCommand {
    /// Pin (or replace) a colour and a note on a target: video, segment, prompt, prompt_run,
    /// segment_result (RUN/SEGMENT) or video_result (RUN/VIDEO).
    Set {
        target_type: String,
        target_id: String,
        /// An extracted field of a prompt, run or result.
        #[arg(long)]
        field: Option<String>,
        #[arg(long)]
        color: Option<String>,
        #[arg(long)]
        note: Option<String>,
    },
    List {
        #[arg(long)]
        target_type: Option<String>,
        #[arg(long)]
        target_id: Option<String>,
    },
    Delete {
        marker_id: String,
    },
}

fn marker_line(m: &videovector::delivery::Marker) -> String {
    format!(
        "{}  {} {}{}  {}  {}",
        m.marker_id,
        m.target_type,
        m.target_id,
        m.field_path.as_deref().map(|f| format!(" [{f}]")).unwrap_or_default(),
        m.color.as_deref().unwrap_or("-"),
        m.note.as_deref().unwrap_or("")
    )
}

pub fn marker_cmd(engine: &Engine, cmd: MarkerCommand, json: bool) -> Result<ExitCode> {
    match cmd {
        MarkerCommand::Set { target_type, target_id, field, color, note } => {
            let mut u = videovector::delivery::MarkerUpsert::new(target_type, target_id);
            (u.field_path, u.color, u.note) = (field, color, note);
            let m = engine.markers().upsert(&u)?;
            out(json, &m, || marker_line(&m))
        }
        MarkerCommand::List { target_type, target_id } => {
            let list = engine.markers().list(target_type.as_deref(), target_id.as_deref())?;
            out(json, &list, || list.iter().map(marker_line).collect::<Vec<_>>().join("\n"))
        }
        MarkerCommand::Delete { marker_id } => {
            engine.markers().delete(&marker_id)?;
            out(json, &serde_json::json!({ "deleted": marker_id }), || format!("deleted {marker_id}"))
        }
    }
}

#[derive(Subcommand)]
pub enum AutomationCommand {
    /// Import a connector's new files into the index once the source is quiet for the debounce
    /// interval (runs while an engine with workers is open: `videovector serve`).
    SetImport {
        index: String,
        #[arg(long)]
        connector: String,
        #[arg(long, default_value = "")]
        prefix: String,
        #[arg(long, default_value = "*")]
        pattern: String,
        #[arg(long)]
        flat: bool,
        /// 5m, 10m, 1h or 1d.
        #[arg(long, default_value = "10m")]
        debounce: String,
        /// Run this prompt over each import's media.
        #[arg(long)]
        prompt: Option<String>,
    },
    /// Export each completed run of the index to a connector.
    SetExport {
        index: String,
        #[arg(long)]
        connector: String,
        #[arg(long)]
        subpath: Option<String>,
    },
    /// Both automations of an index.
    Get {
        index: String,
    },
    /// Pause an automation (`import` or `export`); the configuration stays.
    Pause {
        index: String,
        kind: String,
    },
    Resume {
        index: String,
        kind: String,
    },
}

pub fn automation_cmd(engine: &Engine, cmd: AutomationCommand, json: bool) -> Result<ExitCode> {
    let a = engine.automations();
    let index = match cmd {
        AutomationCommand::SetImport { index, connector, prefix, pattern, flat, debounce, prompt } => {
            let mut auto = videovector::delivery::ImportAutomation::new(&index, connector, debounce)
                .prefix(prefix)
                .pattern(pattern);
            auto.recursive = !flat;
            auto.prompt_preset = prompt.map(|p| serde_json::json!({ "prompt_id": p }));
            a.put_import(auto)?;
            index
        }
        AutomationCommand::SetExport { index, connector, subpath } => {
            a.put_export(videovector::delivery::ExportAutomation::new(&index, connector, subpath))?;
            index
        }
        AutomationCommand::Get { index } => index,
        AutomationCommand::Pause { index, kind } | AutomationCommand::Resume { index, kind }
            if kind != "import" && kind != "export" =>
        {
            bail!("{kind:?}: pause or resume `import` or `export` (index {index})")
        }
        AutomationCommand::Pause { index, kind } => {
            a.set_paused(&index, &kind, true)?;
            index
        }
        AutomationCommand::Resume { index, kind } => {
            a.set_paused(&index, &kind, false)?;
            index
        }
    };
    let import = a.import(&index).ok();
    let export = a.export(&index).ok();
    out(json, &serde_json::json!({ "import": import, "export": export }), || {
        let mut lines = Vec::new();
        match &import {
            Some(i) => lines.push(format!(
                "import: {} from {} {}/{} every {}{}{}",
                if i.paused {
                    "paused"
                } else if i.enabled {
                    "enabled"
                } else {
                    "disabled"
                },
                i.connector_id,
                i.source_prefix,
                i.file_pattern,
                i.debounce_interval,
                i.last_import_id.as_deref().map(|x| format!("  last import {x}")).unwrap_or_default(),
                i.last_error.as_deref().map(|e| format!("  error: {e}")).unwrap_or_default()
            )),
            None => lines.push("import: none".into()),
        }
        match &export {
            Some(e) => lines.push(format!(
                "export: {} to {} {}{}",
                if e.paused {
                    "paused"
                } else if e.enabled {
                    "enabled"
                } else {
                    "disabled"
                },
                e.destination_connector_id,
                e.destination_subpath.as_deref().unwrap_or(""),
                e.last_export_id.as_deref().map(|x| format!("  last export {x}")).unwrap_or_default()
            )),
            None => lines.push("export: none".into()),
        }
        lines.join("\n")
    })
}
