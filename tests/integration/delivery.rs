//! Connectors, imports, exports and webhooks through the library, on a local-folder connector
//! (the SDK tests cover S3 and Azure against emulators).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use videovector::delivery::{ExportFormat, ExportRequest, ImportRequest, NewConnector, NewWebhook, WebhookUpdate};
use videovector::{Engine, EngineOptions, ModelChoice, SegmentKind};

use crate::common::{fixture, segments_of};

fn open(dir: &Path) -> Engine {
    let options =
        EngineOptions::new().shot_model(ModelChoice::Off).visual_model(ModelChoice::Off).asr_model(ModelChoice::Off);
    Engine::open_with(dir, options).expect("engine opens")
}

fn wait_import(engine: &Engine, id: &str) -> videovector::delivery::ImportJob {
    let start = Instant::now();
    loop {
        let job = engine.imports().retrieve(id).expect("import");
        if matches!(job.status.as_str(), "completed" | "failed" | "cancelled") {
            return job;
        }
        assert!(start.elapsed() < Duration::from_secs(180), "import {id} still {} after 180 s", job.status);
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_export(engine: &Engine, id: &str) -> videovector::delivery::Export {
    let start = Instant::now();
    loop {
        let e = engine.exports().retrieve(id).expect("export");
        if e.status == "completed" || e.status == "failed" {
            return e;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "export {id} still {} after 120 s", e.status);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A Parquet export's rows as JSON objects, and its key-value metadata.
fn read_parquet(path: &Path) -> (Vec<serde_json::Map<String, Value>>, HashMap<String, String>) {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).expect("a Parquet file");
    let kv = reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .into_iter()
        .flatten()
        .map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default()))
        .collect();
    let rows = reader
        .get_row_iter(None)
        .unwrap()
        .map(|r| match r.unwrap().to_json_value() {
            Value::Object(m) => m,
            other => panic!("a row is not an object: {other}"),
        })
        .collect();
    (rows, kv)
}

/// One received POST: headers (lower-case names) and body.
#[derive(Clone, Debug)]
struct Received {
    headers: HashMap<String, String>,
    body: String,
}

/// A webhook receiver on loopback: answers 500 to the first request, 200 afterwards.
fn receiver() -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = HashMap::new();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap_or(0);
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.trim_end().split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
            }
            let len: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap_or(());
            let first = {
                let mut log = log.lock().unwrap();
                log.push(Received { headers, body: String::from_utf8_lossy(&body).into_owned() });
                log.len() == 1
            };
            let status = if first { "500 Internal Server Error" } else { "200 OK" };
            let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    (url, seen)
}

#[test]
fn local_folder_import_new_only_export_and_signed_webhooks() {
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("source");
    std::fs::create_dir_all(source.join("incoming/sub")).unwrap();
    std::fs::copy(fixture("bikes.mp4"), source.join("incoming/bikes.mp4")).unwrap();
    std::fs::copy(fixture("rocket.jpg"), source.join("incoming/sub/rocket.jpg")).unwrap();
    std::fs::copy(fixture("notvideo.mp4"), source.join("incoming/notvideo.mp4")).unwrap();
    std::fs::write(source.join("incoming/notes.txt"), "not matched by the pattern").unwrap();
    std::fs::write(source.join("elsewhere.mp4"), "outside the prefix").unwrap();
    let data = tmp.path().join("data");
    let engine = open(&data);
    let index = engine.indexes().create("archive", None).unwrap();

    let connector = engine
        .connectors()
        .create(&NewConnector::local("archive folder", &source).scopes(&["import", "export"]).import_mode("new_only"))
        .unwrap();
    assert!(engine.connectors().test(&connector.connector_id).unwrap().success);
    // Listing: the prefix's own level, then recursive with a brace set.
    let top: Vec<String> = engine
        .connectors()
        .browse(&connector.connector_id, "incoming", "*.{mp4,jpg}", false)
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(top, ["bikes.mp4", "notvideo.mp4"]);
    let all = engine.connectors().browse(&connector.connector_id, "incoming", "*.{mp4,jpg}", true).unwrap();
    assert_eq!(all.len(), 3, "{all:?}");
    let rocket = all.iter().find(|f| f.name == "rocket.jpg").unwrap();
    assert_eq!(rocket.path, "incoming/sub/rocket.jpg");
    assert_eq!(rocket.size_bytes, std::fs::metadata(fixture("rocket.jpg")).unwrap().len());
    assert_eq!(rocket.extension, "jpg");

    let (url, seen) = receiver();
    let (hook, secret) = engine
        .webhooks()
        .create(
            &NewWebhook::new(
                "ops",
                &url,
                &["import_job.completed", "import_job.partial_completed", "export.ready", "media.processing.completed"],
            )
            .index_ids(vec![index.index_id.to_string()])
            .metadata(serde_json::json!({"owner": "ops"})),
        )
        .unwrap();
    assert!(secret.starts_with("whsec_"));

    let request = ImportRequest::new(&connector.connector_id, "archive").prefix("incoming").pattern("*.{mp4,jpg}");
    let job = engine.imports().create(&request).unwrap();
    // The reply is the import as accepted, never a state the workers reached after it.
    assert_eq!(job.status, "pending", "{job:?}");
    let job = wait_import(&engine, &job.job_id);
    assert_eq!(job.status, "completed", "{job:?}");
    assert_eq!((job.progress.total_files, job.progress.imported, job.progress.failed), (3, 2, 1), "{job:?}");
    assert_eq!(job.video_ids.len(), 2);
    let failed = engine.imports().files(&job.job_id, true).unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].file_name, "notvideo.mp4");
    assert!(failed[0].error.as_deref().unwrap_or("").contains("notvideo.mp4"), "{failed:?}");
    for id in &job.video_ids {
        let media = engine.videos().retrieve(id).unwrap();
        assert_eq!(media.index_id.as_ref(), Some(&index.index_id));
        // Downloads are kept under imports/, never as partial files.
        assert!(media.source_path.contains("/imports/"), "{}", media.source_path);
    }
    let leftovers: Vec<_> = walk(&data.join("imports")).into_iter().filter(|p| p.ends_with(".part")).collect();
    assert!(leftovers.is_empty(), "partial downloads left: {leftovers:?}");

    // new_only: the ready files are skipped, the failed one is tried again.
    let again = wait_import(&engine, &engine.imports().create(&request).unwrap().job_id);
    assert_eq!((again.progress.skipped, again.progress.failed, again.progress.imported), (2, 1, 0), "{again:?}");
    let skipped = engine.imports().files(&again.job_id, false).unwrap();
    assert!(skipped.iter().filter(|f| f.status == "skipped").all(|f| f
        .skip_reason
        .as_deref()
        .unwrap()
        .contains(&job.job_id)));

    // An index export to a download: every media item, with its segments.
    let export = engine.exports().create(&ExportRequest::index("archive")).unwrap();
    assert_eq!(export.status, "pending", "{export:?}");
    let export = wait_export(&engine, &export.export_id);
    assert_eq!(export.status, "completed", "{export:?}");
    let path = export.file_path.clone().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(export.file_size_bytes, Some(bytes.len() as u64));
    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(doc["index"]["index_id"], index.index_id.as_str());
    let media = doc["media"].as_array().unwrap();
    assert_eq!(media.len(), 3, "two ready media and the failed one");
    for m in media {
        let id = m["media"]["video_id"].as_str().unwrap();
        let expected =
            segments_of(&engine, id, SegmentKind::Video).len() + segments_of(&engine, id, SegmentKind::Audio).len();
        assert_eq!(m["segments"].as_array().unwrap().len(), expected, "segments of {id}");
    }

    // JSON Lines to the connector, under its export base path and a subpath.
    let jsonl = engine
        .exports()
        .create(
            &ExportRequest::index(index.index_id.as_str())
                .to_connector(&connector.connector_id, Some("team/daily".into()))
                .format(ExportFormat::Jsonl),
        )
        .unwrap();
    let jsonl = wait_export(&engine, &jsonl.export_id);
    assert_eq!(jsonl.status, "completed", "{jsonl:?}");
    let written = source.join("team/daily").join(format!("{}.jsonl", jsonl.export_id));
    let text = std::fs::read_to_string(&written).unwrap();
    let kinds: Vec<String> =
        text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["type"].as_str().unwrap().to_string()).collect();
    assert_eq!(kinds[0], "export");
    assert_eq!(kinds.iter().filter(|k| *k == "media").count(), 3);
    assert!(jsonl.destination_uri.as_deref().unwrap().ends_with(&format!("team/daily/{}.jsonl", jsonl.export_id)));

    // Parquet: one row per segment (no runs yet), the media columns on each.
    let table = engine
        .exports()
        .create(&ExportRequest::index("archive").format(ExportFormat::Parquet))
        .map(|e| wait_export(&engine, &e.export_id))
        .unwrap();
    assert_eq!(table.status, "completed", "{table:?}");
    let (rows, kv) = read_parquet(table.file_path.as_deref().unwrap());
    let header: Value = serde_json::from_str(&kv["videovector.export"]).unwrap();
    assert_eq!(header["export_id"], table.export_id.as_str());
    let listed: Value = serde_json::from_str(&kv["videovector.index"]).unwrap();
    assert_eq!(listed["index_id"], index.index_id.as_str());
    let mut want = HashSet::new();
    let mut segments = HashMap::new();
    for m in media {
        let id = m["media"]["video_id"].as_str().unwrap();
        for s in
            segments_of(&engine, id, SegmentKind::Video).into_iter().chain(segments_of(&engine, id, SegmentKind::Audio))
        {
            want.insert((id.to_string(), s.segment_id.to_string()));
            segments.insert(s.segment_id.to_string(), s);
        }
    }
    let got: HashSet<(String, String)> = rows
        .iter()
        .map(|r| (r["video_id"].as_str().unwrap().to_string(), r["segment_id"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!((got, rows.len()), (want.clone(), want.len()), "one row per segment");
    for r in &rows {
        assert_eq!(r["record"], "segment");
        assert_eq!(r["index_id"], index.index_id.as_str());
        assert!(r["run_id"].is_null() && r["metadata"].is_null(), "{r:?}");
        let s = &segments[r["segment_id"].as_str().unwrap()];
        assert_eq!((r["start_time"].as_f64(), r["end_time"].as_f64()), (Some(s.start), Some(s.end)));
        assert_eq!(r["segment_kind"], s.kind.to_string());
    }

    // Webhooks: every event arrives, signed; the 500 is retried (about 2 s later).
    let want = ["import_job.partial_completed", "export.ready", "media.processing.completed"];
    let start = Instant::now();
    let deliveries = loop {
        let d = engine.webhooks().deliveries(&hook.webhook_id, None, 100).unwrap();
        let types: HashSet<&str> =
            d.iter().filter(|d| d.status == "delivered").map(|d| d.event_type.as_str()).collect();
        if want.iter().all(|w| types.contains(w)) && d.iter().all(|d| d.status == "delivered") {
            break d;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "deliveries: {d:#?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    // 2 media completed, 1 partial import (the first), 1 partial import (the second: a file
    // failed again), 3 exports.
    assert_eq!(deliveries.len(), 7, "{deliveries:#?}");
    assert_eq!(deliveries.iter().filter(|d| d.attempts == 2).count(), 1, "exactly one was answered 500 first");
    let received = seen.lock().unwrap().clone();
    let ids: HashSet<&str> = received.iter().map(|r| r.headers["x-delivery-id"].as_str()).collect();
    assert_eq!(ids.len(), deliveries.len(), "one delivery id per event");
    assert_eq!(received.len(), deliveries.len() + 1, "one retry");
    for r in &received {
        assert_eq!(r.headers["x-webhook-signature"], videovector::delivery::signature(&secret, &r.body));
        assert_eq!(r.headers["x-webhook-id"], hook.webhook_id);
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["event_type"], r.headers["x-event-type"].as_str());
        assert_eq!(body["metadata"]["owner"], "ops");
        assert_eq!(videovector::delivery::canonical_json(&body), r.body, "the body is canonical JSON");
    }
    drop(engine);

    // Across a restart: a delivery whose receiver is down stays pending and goes out once the
    // engine opens again and the receiver is back.
    let engine = open(&data);
    let (url2, seen2) = receiver();
    engine.webhooks().update(&hook.webhook_id, &WebhookUpdate::new().url("http://127.0.0.1:9/closed")).unwrap();
    let e = engine.exports().create(&ExportRequest::index("archive")).unwrap();
    wait_export(&engine, &e.export_id);
    let pending = wait_for(|| {
        let d = engine.webhooks().deliveries(&hook.webhook_id, Some("retrying"), 10).unwrap();
        (!d.is_empty()).then_some(d)
    });
    assert!(pending[0].error_message.as_deref().unwrap().contains("connect"), "{pending:?}");
    drop(engine);
    let engine = open(&data);
    engine.webhooks().update(&hook.webhook_id, &WebhookUpdate::new().url(&url2)).unwrap();
    // The new receiver answers 500 first: the dispatcher retries until it is delivered.
    let done = wait_for(|| {
        let d = engine.webhooks().delivery(&pending[0].delivery_id).unwrap();
        (d.status == "delivered").then_some(d)
    });
    assert!(done.attempts >= 3, "{done:?}");
    let got = seen2.lock().unwrap().clone();
    let ids: HashSet<&str> = got.iter().map(|r| r.headers["x-delivery-id"].as_str()).collect();
    assert_eq!(ids.len(), 1, "one delivery after de-duplication: {got:?}");
    assert_eq!(got.len(), 2, "a 500, then the 200");
}

fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "condition not met in 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

#[test]
fn bad_connectors_and_requests_are_refused_with_the_field_named() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = open(&tmp.path().join("data"));
    let err = |r: videovector::Result<videovector::delivery::Connector>| r.unwrap_err().to_string();
    assert!(err(engine.connectors().create(&NewConnector::local("x", tmp.path().join("missing")))).contains("path"));
    assert!(err(engine.connectors().create(&NewConnector::local("", tmp.path()))).contains("name"));
    assert!(err(engine.connectors().create(&NewConnector::local("x", tmp.path()).scopes(&["read"]))).contains("scopes"));
    assert!(err(engine.connectors().create(&NewConnector::gcs("g", "b", "p", "{}"))).contains("service-account"));
    let s3 = engine.connectors().create(&NewConnector::s3("s", "bucket", "us-east-1", "AKIA", "s3cr3t")).unwrap();
    // Secrets stay in a file only the owner reads, never in the record.
    assert!(!serde_json::to_string(&s3).unwrap().contains("s3cr3t"));
    let secrets = tmp.path().join("data/secrets").join(format!("{}.json", s3.connector_id));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&secrets).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let import_only = engine.connectors().create(&NewConnector::local("in", tmp.path())).unwrap();
    let index = engine.indexes().create("i", None).unwrap();
    let e = engine
        .exports()
        .create(&ExportRequest::index(index.index_id.as_str()).to_connector(&import_only.connector_id, None))
        .unwrap_err();
    assert!(e.to_string().contains("export scope"), "{e}");
    let e = engine.imports().create(&ImportRequest::new(&import_only.connector_id, "nope")).unwrap_err();
    assert_eq!(e.kind(), videovector::ErrorKind::NotFound);
    let e = engine.imports().create(&ImportRequest::new(&import_only.connector_id, "i").pattern("[")).unwrap_err();
    assert!(e.to_string().contains("file_pattern"), "{e}");
    let e = engine.webhooks().create(&NewWebhook::new("w", "http://example.com/h", &["export.ready"])).unwrap_err();
    assert!(e.to_string().contains("https"), "{e}");
    let e = engine.webhooks().create(&NewWebhook::new("w", "https://example.com/h", &["export.done"])).unwrap_err();
    assert!(e.to_string().contains("export.done"), "{e}");
    engine.connectors().delete(&s3.connector_id).unwrap();
    assert!(!secrets.exists(), "deleting a connector removes its secrets");
    assert_eq!(engine.connectors().retrieve(&s3.connector_id).unwrap_err().kind(), videovector::ErrorKind::NotFound);
}

#[test]
fn automations_import_new_files_run_the_preset_and_export_each_completed_run() {
    use videovector::delivery::{ExportAutomation, ImportAutomation};
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("watched");
    std::fs::create_dir_all(&source).unwrap();
    let engine = open(&tmp.path().join("data"));
    let index = engine.indexes().create("auto", None).unwrap();
    let schema = serde_json::json!({
        "type": "object",
        "properties": { "place": { "type": "string", "enum": ["sky", "street"], "description": "where it is" } },
        "required": ["place"]
    });
    let prompt =
        engine.prompts().create(&videovector::NewPrompt::new("where", "Say where it is.", schema), None).unwrap();
    let connector =
        engine.connectors().create(&NewConnector::local("watched", &source).scopes(&["import", "export"])).unwrap();
    engine
        .automations()
        .put_export(ExportAutomation::new("auto", &connector.connector_id, Some("auto-exports".into())))
        .unwrap();
    let saved = engine
        .automations()
        .put_import(
            ImportAutomation::new("auto", &connector.connector_id, "1s")
                .pattern("*.jpg")
                .prompt_preset(serde_json::json!({ "prompt_id": prompt.prompt_id.as_str() })),
        )
        .unwrap();
    assert_eq!(saved.index_id, index.index_id.as_str());
    let bad = ImportAutomation::new("auto", &connector.connector_id, "soon");
    assert!(engine.automations().put_import(bad).unwrap_err().to_string().contains("debounce_interval"));

    // A new file in the watched folder is imported once the folder is quiet for 1 s, and the
    // preset run covers it.
    std::fs::copy(fixture("rocket.jpg"), source.join("rocket.jpg")).unwrap();
    let auto = wait_for(|| engine.automations().import("auto").ok().filter(|a| a.last_run_id.is_some()));
    let first = engine.imports().retrieve(auto.last_import_id.as_deref().unwrap()).unwrap();
    assert_eq!((first.progress.total_files, first.progress.imported), (1, 1), "{first:?}");
    assert_eq!(first.execution_run_id, auto.last_run_id);
    let run_id = auto.last_run_id.clone().unwrap();
    let run = engine.prompt_runs().get(&run_id).unwrap();
    assert_eq!(run.total_videos, 1);

    // The export automation writes the run once it completes.
    let exported = wait_for(|| {
        let a = engine.automations().export("auto").unwrap();
        a.last_export_id.and_then(|id| engine.exports().retrieve(&id).ok()).filter(|e| e.status == "completed")
    });
    let file = source.join("auto-exports").join(format!("{}.json", exported.export_id));
    let doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(doc["prompt_runs"][0]["run_id"], run_id.as_str());
    assert_eq!(doc["media"][0]["media"]["video_id"], first.video_ids[0].as_str());

    // The same run as a Parquet table holds the same results, a row per segment result and
    // one for the media-wide result, with the run (and its prompt) in the file's metadata.
    let table = engine
        .exports()
        .create(&ExportRequest::prompt_run(run_id.as_str()).format(ExportFormat::Parquet))
        .map(|e| wait_export(&engine, &e.export_id))
        .unwrap();
    assert_eq!(table.status, "completed", "{table:?}");
    let (rows, kv) = read_parquet(table.file_path.as_deref().unwrap());
    let runs: Value = serde_json::from_str(&kv["videovector.prompt_runs"]).unwrap();
    assert_eq!(runs[0]["run_id"], run_id.as_str());
    assert_eq!(runs[0]["prompt"]["prompt_id"], prompt.prompt_id.as_str());
    let results = &doc["media"][0]["results"][run_id.as_str()];
    let expected: HashSet<(String, String)> = results["segment_results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["segment_id"].as_str().unwrap().to_string(), r["metadata"].to_string()))
        .collect();
    assert!(!expected.is_empty(), "the run has segment results: {results}");
    let metadata = |r: &serde_json::Map<String, Value>| -> String {
        serde_json::from_str::<Value>(r["metadata"].as_str().unwrap()).unwrap().to_string()
    };
    let segment_rows: HashSet<(String, String)> = rows
        .iter()
        .filter(|r| r["record"] == "segment" && r["run_id"] == run_id.as_str())
        .map(|r| (r["segment_id"].as_str().unwrap().to_string(), metadata(r)))
        .collect();
    assert_eq!(segment_rows, expected);
    let video_rows: Vec<_> = rows.iter().filter(|r| r["record"] == "video").collect();
    if results["video_result"].is_null() {
        assert!(video_rows.is_empty(), "{video_rows:?}");
    } else {
        assert_eq!(video_rows.len(), 1, "{video_rows:?}");
        assert_eq!(metadata(video_rows[0]), results["video_result"]["metadata"].to_string());
        assert_eq!(video_rows[0]["status"], results["video_result"]["status"]);
    }
    assert!(rows.iter().all(|r| r["video_id"] == first.video_ids[0].as_str() && r["prompt_name"] == "where"));

    // Paused: new files wait; resumed: only the new file is imported (the old one is skipped).
    engine.automations().set_paused("auto", "import", true).unwrap();
    std::fs::copy(fixture("flower.jpg"), source.join("flower.jpg")).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(engine.automations().import("auto").unwrap().last_import_id, auto.last_import_id, "paused");
    engine.automations().set_paused("auto", "import", false).unwrap();
    let second = wait_for(|| {
        let a = engine.automations().import("auto").unwrap();
        let id = a.last_import_id.filter(|id| Some(id) != auto.last_import_id.as_ref())?;
        Some(engine.imports().retrieve(&id).unwrap()).filter(|j| j.status == "completed")
    });
    assert_eq!(
        (second.progress.total_files, second.progress.skipped, second.progress.imported),
        (2, 1, 1),
        "{second:?}"
    );
    let _ =
        engine.prompt_runs().cancel(engine.automations().import("auto").unwrap().last_run_id.as_deref().unwrap_or(""));
}

#[test]
fn collections_hold_processed_media_across_indexes_and_scope_search() {
    // With an image-text model (the tests' tiny CLIP checkpoint): keyframes have vectors, so
    // the scoped search returns real hits.
    let tmp = tempfile::tempdir().unwrap();
    let clip = tmp.path().join("clip");
    std::fs::create_dir(&clip).unwrap();
    crate::clip_golden::write_tiny_clip(&clip);
    let options = EngineOptions::new()
        .shot_model(ModelChoice::Off)
        .visual_model(ModelChoice::Use(clip.display().to_string()))
        .text_model(ModelChoice::Off)
        .asr_model(ModelChoice::Off);
    let engine = Engine::open_with(tmp.path().join("data"), options).unwrap();
    engine.indexes().create("a", None).unwrap();
    engine.indexes().create("b", None).unwrap();
    let ingest = |path: &str, index: &str| {
        let opts = videovector::IngestOptions::new().index(index);
        engine.videos().ingest(fixture(path), &opts).unwrap().video_id.unwrap().to_string()
    };
    let bikes = ingest("bikes.mp4", "a");
    let rocket = ingest("rocket.jpg", "b");
    let flower = ingest("flower.jpg", "b");
    let c = engine.collections().create("picks", Some("best of")).unwrap();
    assert_eq!(engine.collections().create(" picks ", None).unwrap_err().kind(), videovector::ErrorKind::Conflict);
    engine.collections().add_video(&c.collection_id, &bikes).unwrap();
    let c2 = engine.collections().add_video(&c.collection_id, &rocket).unwrap();
    assert_eq!(c2.video_count, 2);
    assert_eq!(c2.thumbnails.len(), 2);
    assert!(c2.thumbnails.iter().all(|t| std::path::Path::new(&t.path).exists()));
    let again = engine.collections().add_video(&c.collection_id, &bikes).unwrap_err();
    assert_eq!(again.kind(), videovector::ErrorKind::Conflict);
    assert_eq!(
        engine.collections().add_video(&c.collection_id, "vid_0000000000000000").unwrap_err().kind(),
        videovector::ErrorKind::NotFound
    );
    assert!(engine.collections().update(&c.collection_id, None, None).unwrap_err().to_string().contains("name"));
    let renamed = engine.collections().update(&c.collection_id, Some("favourites"), None).unwrap();
    assert_eq!((renamed.name.as_str(), renamed.description.as_deref()), ("favourites", Some("best of")));

    let page = engine.collections().list_videos(&c.collection_id, 1, 1, "title", "asc").unwrap();
    assert_eq!((page.total, page.data.len()), (2, 1));
    assert_eq!(page.data[0].title, "bikes.mp4");
    let page2 = engine.collections().list_videos(&c.collection_id, 2, 1, "title", "asc").unwrap();
    assert_eq!(page2.data[0].title, "rocket.jpg");
    assert!(engine.collections().list_videos(&c.collection_id, 0, 1, "title", "asc").is_err());

    // Search covers both indexes the collection draws from, and nothing outside it (flower.jpg
    // is in index b, not in the collection); with top_k above the collection's 7 keyframes,
    // every one of them comes back.
    let found =
        engine.collections().search(&c.collection_id, &videovector::TextSearch::new("a rocket").top_k(50)).unwrap();
    let ids: HashSet<&str> = found.results.iter().map(|h| h.video_id.as_str()).collect();
    assert_eq!(ids, HashSet::from([bikes.as_str(), rocket.as_str()]), "{found:?}");
    assert!(!ids.contains(flower.as_str()));
    let keyframes = segments_of(&engine, &bikes, SegmentKind::Video).len() + 1;
    assert_eq!(found.results.len(), keyframes, "{found:?}");
    assert!(found.results.windows(2).all(|w| w[0].score >= w[1].score));

    // Deleting media drops it from the collection; deleting the collection keeps media.
    engine.videos().delete(&rocket).unwrap();
    assert_eq!(engine.collections().retrieve(&c.collection_id).unwrap().video_count, 1);
    engine.collections().delete(&c.collection_id).unwrap();
    assert!(engine.videos().retrieve(&bikes).is_ok());
    assert_eq!(engine.collections().list(1, 10).unwrap().total, 0);
}

#[test]
fn markers_pin_one_note_per_target_and_field() {
    use videovector::delivery::MarkerUpsert;
    let (_tmp, engine) = crate::common::temp_engine();
    let media = engine.videos().ingest(fixture("rocket.jpg"), &videovector::IngestOptions::default()).unwrap();
    let video = media.video_id.unwrap().to_string();
    let segment = media.segments[0].segment_id.to_string();
    let m = engine.markers().upsert(&MarkerUpsert::new("video", &video).color("red").note("check rights")).unwrap();
    assert!(m.marker_id.starts_with("mrk_"));
    // The same target again replaces color and note, keeping the marker.
    let again = engine.markers().upsert(&MarkerUpsert::new("video", &video).color("green")).unwrap();
    assert_eq!(again.marker_id, m.marker_id);
    assert_eq!((again.color.as_deref(), again.note.as_deref()), (Some("green"), None));
    engine.markers().upsert(&MarkerUpsert::new("segment", &segment).note("best frame")).unwrap();
    assert_eq!(engine.markers().list(Some("video"), None).unwrap().len(), 1);
    assert_eq!(engine.markers().list(None, None).unwrap().len(), 2);

    let refused = |u: MarkerUpsert| engine.markers().upsert(&u).unwrap_err();
    assert_eq!(
        refused(MarkerUpsert::new("video", "vid_0000000000000000").color("red")).kind(),
        videovector::ErrorKind::NotFound
    );
    assert!(refused(MarkerUpsert::new("clip", &video).color("red")).to_string().contains("target_type"));
    assert!(refused(MarkerUpsert::new("video", &video)).to_string().contains("color"));
    assert!(refused(MarkerUpsert::new("video", &video).field("place").color("red")).to_string().contains("field_path"));
    assert!(refused(MarkerUpsert::new("segment_result", "run_x").color("red")).to_string().contains("target_id"));

    engine.markers().delete(&m.marker_id).unwrap();
    assert_eq!(engine.markers().delete(&m.marker_id).unwrap_err().kind(), videovector::ErrorKind::NotFound);
    assert_eq!(engine.markers().list(None, None).unwrap().len(), 1);
}
