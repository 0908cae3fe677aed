//! The Parquet form of an export: one flat table, for loading results into DuckDB, pandas,
//! Polars or Spark without parsing nested JSON.
//!
//! One row per (segment, run result): a segment with results from several runs has a row per
//! run, and a segment no run reached has one row with a null `run_id`. Each media item's
//! media-wide results follow as `record = 'video'` rows (no segment). The segment's transcript
//! (the phrases it overlaps) rides along, and a result's `metadata` is a JSON column, so
//! `json_extract(metadata, '$.field')` reads an extracted field. The index, the runs (with the
//! prompts and schemas they ran) and the export header are kept as JSON in the file's key-value
//! metadata (`videovector.index`, `videovector.prompt_runs`, `videovector.export`).

use std::collections::HashMap;
use std::sync::Arc;

use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int32Type};
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::jobs::JobContext;
use crate::store::Stores;
use crate::types::{Index, JobStage, Phrase, PromptRun, Segment, SegmentResult};

/// Rows per row group: small enough to bound memory, large enough for good compression.
const ROW_GROUP: usize = 16_384;

/// One row of the table; `None` is a null.
#[derive(Debug, Default, Clone)]
struct Row {
    /// `segment` or `video`.
    record: &'static str,
    index_id: Option<String>,
    video_id: String,
    video_title: String,
    media_type: Option<String>,
    video_duration: Option<f64>,
    segment_id: Option<String>,
    segment_kind: Option<String>,
    segment_index: Option<i32>,
    start_time: Option<f64>,
    end_time: Option<f64>,
    segmentation_type: Option<String>,
    transcript: Option<String>,
    run_id: Option<String>,
    prompt_id: Option<String>,
    prompt_name: Option<String>,
    /// `completed` or `failed` for a segment result; the media-wide result's own status.
    status: Option<String>,
    metadata: Option<String>,
    metadata_text: Option<String>,
    error: Option<String>,
    executed_at: Option<String>,
}

/// A column: its name and how a row gives its value.
enum Column {
    Text { name: &'static str, json: bool, get: fn(&Row) -> Option<&str> },
    Float { name: &'static str, get: fn(&Row) -> Option<f64> },
    Int { name: &'static str, get: fn(&Row) -> Option<i32> },
}

/// The table's columns, in order. `record` and `video_id` are never null.
const COLUMNS: &[Column] = &[
    Column::Text { name: "record", json: false, get: |r| Some(r.record) },
    Column::Text { name: "index_id", json: false, get: |r| r.index_id.as_deref() },
    Column::Text { name: "video_id", json: false, get: |r| Some(&r.video_id) },
    Column::Text { name: "video_title", json: false, get: |r| Some(&r.video_title) },
    Column::Text { name: "media_type", json: false, get: |r| r.media_type.as_deref() },
    Column::Float { name: "video_duration", get: |r| r.video_duration },
    Column::Text { name: "segment_id", json: false, get: |r| r.segment_id.as_deref() },
    Column::Text { name: "segment_kind", json: false, get: |r| r.segment_kind.as_deref() },
    Column::Int { name: "segment_index", get: |r| r.segment_index },
    Column::Float { name: "start_time", get: |r| r.start_time },
    Column::Float { name: "end_time", get: |r| r.end_time },
    Column::Text { name: "segmentation_type", json: false, get: |r| r.segmentation_type.as_deref() },
    Column::Text { name: "transcript", json: false, get: |r| r.transcript.as_deref() },
    Column::Text { name: "run_id", json: false, get: |r| r.run_id.as_deref() },
    Column::Text { name: "prompt_id", json: false, get: |r| r.prompt_id.as_deref() },
    Column::Text { name: "prompt_name", json: false, get: |r| r.prompt_name.as_deref() },
    Column::Text { name: "status", json: false, get: |r| r.status.as_deref() },
    Column::Text { name: "metadata", json: true, get: |r| r.metadata.as_deref() },
    Column::Text { name: "metadata_text", json: false, get: |r| r.metadata_text.as_deref() },
    Column::Text { name: "error", json: false, get: |r| r.error.as_deref() },
    Column::Text { name: "executed_at", json: false, get: |r| r.executed_at.as_deref() },
];

fn required(name: &str) -> bool {
    matches!(name, "record" | "video_id" | "video_title")
}

/// The Parquet schema of [`COLUMNS`].
fn message_type() -> String {
    let fields: Vec<String> = COLUMNS
        .iter()
        .map(|c| {
            let (name, ty, annotation) = match c {
                Column::Text { name, json, .. } => (name, "binary", if *json { " (JSON)" } else { " (UTF8)" }),
                Column::Float { name, .. } => (name, "double", ""),
                Column::Int { name, .. } => (name, "int32", ""),
            };
            let repetition = if required(name) { "required" } else { "optional" };
            format!("  {repetition} {ty} {name}{annotation};")
        })
        .collect();
    format!("message videovector_export {{\n{}\n}}", fields.join("\n"))
}

fn json<T: serde::Serialize + ?Sized>(v: &T) -> Option<String> {
    serde_json::to_string(v).ok()
}

/// Write the table for these media items and runs to `out`.
pub(super) fn write<W: std::io::Write + Send>(
    stores: &Stores,
    header: &Value,
    index: Option<&Index>,
    runs: &[PromptRun],
    videos: &[String],
    out: W,
    ctx: &JobContext,
) -> Result<()> {
    let schema = Arc::new(parse_message_type(&message_type()).map_err(internal)?);
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_created_by(concat!("videovector ", env!("CARGO_PKG_VERSION")).into())
        .set_key_value_metadata(Some(vec![
            KeyValue::new("videovector.export".into(), json(header)),
            KeyValue::new("videovector.index".into(), json(&index)),
            KeyValue::new("videovector.prompt_runs".into(), json(&runs)),
        ]))
        .build();
    let mut writer = SerializedFileWriter::new(out, schema, Arc::new(props)).map_err(internal)?;
    let mut rows = Vec::new();
    let total = videos.len().max(1) as f32;
    for (i, video_id) in videos.iter().enumerate() {
        ctx.check()?;
        ctx.progress(JobStage::Exporting, i as f32 / total);
        media_rows(stores, video_id, runs, &mut rows)?;
        if rows.len() >= ROW_GROUP {
            row_group(&mut writer, &rows)?;
            rows.clear();
        }
    }
    if !rows.is_empty() {
        row_group(&mut writer, &rows)?;
    }
    writer.close().map_err(internal)?;
    Ok(())
}

/// The rows of one media item: its segments (the ingest's and each run's own) joined with
/// the runs' segment results, then its media-wide results.
fn media_rows(stores: &Stores, video_id: &str, runs: &[PromptRun], rows: &mut Vec<Row>) -> Result<()> {
    let media = stores.catalog.media(video_id)?;
    let phrases = stores.catalog.phrases(video_id)?;
    let base = Row {
        index_id: media.index_id.as_ref().map(|i| i.to_string()),
        video_id: video_id.to_string(),
        video_title: media.title.clone(),
        media_type: media.media_type.map(|t| t.to_string()),
        video_duration: media.duration,
        ..Row::default()
    };
    let mut segments = super::exports::both_kinds(stores, video_id, None)?;
    let mut results: HashMap<String, Vec<(&PromptRun, SegmentResult)>> = HashMap::new();
    let mut video_results = Vec::new();
    for found in super::exports::run_results(stores, video_id, runs)? {
        segments.extend(found.run_segments);
        for r in found.segment_results {
            results.entry(r.segment_id.to_string()).or_default().push((found.run, r));
        }
        video_results.extend(found.video_result.map(|v| (found.run, v)));
    }
    for s in &segments {
        let row = || Row {
            record: "segment",
            segment_id: Some(s.segment_id.to_string()),
            segment_kind: Some(s.kind.to_string()),
            segment_index: i32::try_from(s.index).ok(),
            start_time: Some(s.start),
            end_time: Some(s.end),
            segmentation_type: Some(s.segmentation_type.clone()),
            transcript: transcript_of(&phrases, s),
            run_id: s.run_id.clone(),
            ..base.clone()
        };
        match results.remove(&*s.segment_id) {
            None => rows.push(row()),
            Some(found) => {
                rows.extend(found.into_iter().map(|(run, r)| with_result(row(), run, r)));
            }
        }
    }
    // Results whose segment is no longer listed keep their own bounds.
    let mut orphans: Vec<_> = results.into_values().flatten().collect();
    orphans.sort_by(|a, b| a.1.start_time.total_cmp(&b.1.start_time));
    for (run, r) in orphans {
        let row = Row {
            record: "segment",
            segment_id: Some(r.segment_id.to_string()),
            start_time: Some(r.start_time),
            end_time: Some(r.end_time),
            ..base.clone()
        };
        rows.push(with_result(row, run, r));
    }
    for (run, v) in video_results {
        rows.push(Row {
            record: "video",
            start_time: Some(0.0),
            end_time: media.duration,
            transcript: joined(phrases.iter()),
            run_id: Some(v.run_id.to_string()),
            prompt_id: Some(v.prompt_id.to_string()),
            prompt_name: Some(run.prompt_name.clone()),
            status: Some(v.status),
            metadata: Some(v.metadata.to_string()),
            metadata_text: Some(v.metadata_text),
            error: v.error_message,
            executed_at: Some(v.executed_at),
            ..base.clone()
        });
    }
    Ok(())
}

/// A segment's row with one run's result on it.
fn with_result(row: Row, run: &PromptRun, r: SegmentResult) -> Row {
    Row {
        run_id: Some(r.run_id.to_string()),
        prompt_id: Some(r.prompt_id.to_string()),
        prompt_name: Some(run.prompt_name.clone()),
        status: Some(if r.field_extraction_succeeded { "completed" } else { "failed" }.into()),
        metadata: Some(r.metadata.to_string()),
        metadata_text: Some(r.metadata_text),
        error: r.field_extraction_error,
        executed_at: Some(r.executed_at),
        ..row
    }
}

/// The phrases a segment overlaps, joined by spaces; `None` when it overlaps none.
fn transcript_of(phrases: &[Phrase], s: &Segment) -> Option<String> {
    joined(phrases.iter().filter(|p| p.start < s.end && p.end > s.start))
}

fn joined<'a>(phrases: impl Iterator<Item = &'a Phrase>) -> Option<String> {
    let text: Vec<&str> = phrases.map(|p| p.text.trim()).filter(|t| !t.is_empty()).collect();
    (!text.is_empty()).then(|| text.join(" "))
}

/// Write one row group, column by column.
fn row_group<W: std::io::Write + Send>(writer: &mut SerializedFileWriter<W>, rows: &[Row]) -> Result<()> {
    let mut group = writer.next_row_group().map_err(internal)?;
    for column in COLUMNS {
        let mut col = group
            .next_column()
            .map_err(internal)?
            .ok_or_else(|| Error::Internal("export: a column is missing".into()))?;
        let mut defs = Vec::with_capacity(rows.len());
        let name = match column {
            Column::Text { name, get, .. } => {
                let values: Vec<ByteArray> = present(rows, &mut defs, |r| get(r).map(ByteArray::from));
                col.typed::<ByteArrayType>().write_batch(&values, levels(name, &defs), None).map_err(internal)?;
                name
            }
            Column::Float { name, get } => {
                let values = present(rows, &mut defs, get);
                col.typed::<DoubleType>().write_batch(&values, levels(name, &defs), None).map_err(internal)?;
                name
            }
            Column::Int { name, get } => {
                let values = present(rows, &mut defs, get);
                col.typed::<Int32Type>().write_batch(&values, levels(name, &defs), None).map_err(internal)?;
                name
            }
        };
        col.close().map_err(|e| Error::Internal(format!("export: column {name}: {e}")))?;
    }
    group.close().map_err(internal)?;
    Ok(())
}

/// The non-null values of a column, and its definition levels (1 present, 0 null).
fn present<T>(rows: &[Row], defs: &mut Vec<i16>, get: impl Fn(&Row) -> Option<T>) -> Vec<T> {
    let mut values = Vec::with_capacity(rows.len());
    for r in rows {
        match get(r) {
            Some(v) => {
                values.push(v);
                defs.push(1);
            }
            None => defs.push(0),
        }
    }
    values
}

/// Definition levels go with optional columns only.
fn levels<'a>(name: &str, defs: &'a [i16]) -> Option<&'a [i16]> {
    (!required(name)).then_some(defs)
}

fn internal(e: ParquetError) -> Error {
    Error::Internal(format!("export: parquet: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phrase(start: f64, end: f64, text: &str) -> Phrase {
        Phrase { start, end, text: text.into(), language: None }
    }

    #[test]
    fn a_segment_carries_the_phrases_it_overlaps_and_no_others() {
        let phrases =
            [phrase(0.0, 2.0, "one"), phrase(2.0, 4.5, " two "), phrase(4.5, 6.0, "three"), phrase(6.0, 7.0, "")];
        let segment = |start: f64, end: f64| Segment {
            segment_id: "seg_1".into(),
            video_id: "vid_1".into(),
            run_id: None,
            kind: crate::types::SegmentKind::Video,
            index: 0,
            start,
            end,
            start_us: (start * 1e6) as i64,
            end_us: (end * 1e6) as i64,
            segmentation_type: "fixed".into(),
            keyframe_time: None,
            keyframe_frame: None,
            thumbnail_path: None,
        };
        // Touching bounds are not overlap: 2.0..4.5 holds "two" only.
        assert_eq!(transcript_of(&phrases, &segment(2.0, 4.5)).as_deref(), Some("two"));
        assert_eq!(transcript_of(&phrases, &segment(1.0, 5.0)).as_deref(), Some("one two three"));
        assert_eq!(transcript_of(&phrases, &segment(6.0, 7.0)), None, "an empty phrase is no transcript");
        assert_eq!(transcript_of(&phrases, &segment(8.0, 9.0)), None);
    }

    #[test]
    fn the_schema_parses_and_names_every_column_once() {
        let schema = parse_message_type(&message_type()).unwrap();
        let names: Vec<&str> = schema.get_fields().iter().map(|f| f.name()).collect();
        let unique: std::collections::HashSet<&&str> = names.iter().collect();
        assert_eq!((names.len(), unique.len()), (COLUMNS.len(), COLUMNS.len()));
        assert!(schema
            .get_fields()
            .iter()
            .filter(|f| f.get_basic_info().repetition() == parquet::basic::Repetition::REQUIRED)
            .all(|f| required(f.name())));
    }
}
