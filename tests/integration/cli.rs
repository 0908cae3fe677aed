//! The CLI contract: JSON field names as in the API, errors on stderr naming the input, exit codes.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::fixture;
use serde_json::Value;

fn vv(data: &Path, args: &[&str]) -> Output {
    // Models off: these tests are about the CLI contract, and stay fast.
    Command::new(env!("CARGO_BIN_EXE_videovector"))
        .arg("--data-dir")
        .arg(data)
        .args(["--visual-model", "off", "--asr-model", "off", "--shot-model", "off"])
        .args(args)
        .output()
        .unwrap()
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn ingest_segments_and_media_list_print_the_api_fields() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = vv(&data, &["index", "create", "archive", "--json"]);
    assert!(out.status.success());
    let index = &json_lines(&out)[0];
    assert!(index["index_id"].as_str().unwrap().starts_with("idx_"));
    assert_eq!(index["name"], "archive");

    let bikes = fixture("bikes.mp4");
    let speech = fixture("speech.wav");
    let out = vv(
        &data,
        &[
            "ingest",
            bikes.to_str().unwrap(),
            speech.to_str().unwrap(),
            "--index",
            "archive",
            "--segmentation",
            "content_aware",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let items = json_lines(&out);
    assert_eq!(items.len(), 2);
    let video = &items[0];
    assert!(video["video_id"].as_str().unwrap().starts_with("vid_"));
    assert_eq!(video["status"], "completed");
    assert_eq!(video["media_type"], "video");
    assert_eq!(video["duration"], 10.0);
    let segs = video["segments"].as_array().unwrap();
    assert_eq!(segs.len(), 6, "bikes.mp4 has six shots");
    for s in segs {
        for field in ["segment_id", "start", "end", "keyframe_time", "thumbnail_path"] {
            assert!(!s[field].is_null(), "segment lacks {field}: {s}");
        }
        assert!(s["segment_id"].as_str().unwrap().starts_with("seg_"));
    }
    assert_eq!(items[1]["media_type"], "audio");

    let id = video["video_id"].as_str().unwrap();
    let out = vv(&data, &["segments", id, "--json"]);
    assert!(out.status.success());
    let listed = json_lines(&out);
    assert_eq!(listed.len(), 6);
    assert_eq!(
        listed.iter().map(|s| s["segment_id"].clone()).collect::<Vec<_>>(),
        segs.iter().map(|s| s["segment_id"].clone()).collect::<Vec<_>>()
    );

    let out = vv(&data, &["media", "list", "--json"]);
    let page = &json_lines(&out)[0];
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    assert_eq!(page["has_more"], false);
    let out = vv(&data, &["media", "list", "--limit", "1", "--json"]);
    let page = &json_lines(&out)[0];
    assert_eq!(page["has_more"], true);
    let cursor = page["next_cursor"].as_str().unwrap();
    let out = vv(&data, &["media", "list", "--limit", "1", "--cursor", cursor, "--json"]);
    assert_eq!(json_lines(&out)[0]["data"][0]["media_type"], "audio");
}

#[test]
fn errors_go_to_stderr_name_the_input_and_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let empty = fixture("empty.mp4");
    let out = vv(&data, &["ingest", empty.to_str().unwrap(), "--json"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("empty.mp4") && stderr.contains("empty"), "{stderr}");
    assert_eq!(json_lines(&out)[0]["status"], "failed", "the failure is also reported on stdout");

    let bikes = fixture("bikes.mp4");
    let out = vv(&data, &["ingest", bikes.to_str().unwrap(), "--index", "missing"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("index not found: missing") && stderr.contains("videovector index create missing"),
        "{stderr}"
    );

    let out = vv(&data, &["ingest", bikes.to_str().unwrap(), "--segmentation", "fixed"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("video_segment_duration"));

    let out = vv(&data, &["ingest", bikes.to_str().unwrap(), "--segmentation", "sometimes"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("smart, fixed, content_aware"));

    let out = vv(&data, &["segments", "vid_nothere", "--json"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("video not found: vid_nothere"));
    assert!(out.stdout.is_empty());
}

#[test]
fn filter_and_sql_commands_read_run_results() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let options = videovector::EngineOptions::new()
            .shot_model(videovector::ModelChoice::Off)
            .visual_model(videovector::ModelChoice::Off)
            .asr_model(videovector::ModelChoice::Off)
            .workers(0);
        let engine = videovector::Engine::open_with(&data, options).unwrap();
        crate::filter::seeded(&engine, &videovector::internals::unit_vectors(6, 384, 1), &crate::filter::docs());
    }
    let out = vv(&data, &["search", "filter", "--condition", "scene.people[].emotion equals happy:string", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let page = &json_lines(&out)[0];
    assert_eq!(page["results"].as_array().unwrap().len(), 2);
    assert_eq!(page["results"][0]["matched_field_instances"][0]["field_instance_key"], "scene.people[0]");

    let out = vv(&data, &["sql", "execute", "SELECT count(*) AS n FROM results WHERE succeeded", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let result = &json_lines(&out)[0];
    assert_eq!((result["columns"][0].as_str(), result["rows"][0][0].as_i64()), (Some("n"), Some(6)));

    let out = vv(&data, &["sql", "execute", "DELETE FROM main.media"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DELETE from \"media\" is not allowed"), "{err}");
    let out = vv(&data, &["search", "filter", "--condition", "nope is_empty :string"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("conditions[0] (nope)"));
}
