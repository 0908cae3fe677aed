//! One behaviour suite for every store backend, written against the traits only. The embedded
//! backend runs it here; a server backend runs the same functions with its own `open`.
//!
//! `open` gives a fresh handle on the same storage each call, which stands for another process.

use std::collections::HashSet;

use super::{Candidates, Completed, MediaFilter, NewMedia, NewPhrase, NewSegment, NewVector, Stores};
use crate::error::{Error, ErrorKind};
use crate::ids::{SegmentId, VideoId};
use crate::types::{
    EventType, JobKind, JobProgress, JobRequest, JobStage, JobStatus, MediaInfo, MediaType, ModelRef, NewEvent,
    PageRequest, Scope, SegmentKind, Space, Status,
};

fn info() -> MediaInfo {
    MediaInfo { media_type: MediaType::Video, container: "test".into(), duration: Some(3.0), video: None, audio: None }
}

fn new_media(stores: &Stores, scope: &Scope, hash: &str) -> VideoId {
    stores
        .catalog
        .insert_media(&NewMedia {
            scope,
            title: "t",
            source_path: "/media/t.mp4",
            content_hash: hash,
            size_bytes: 1,
            idempotency_key: None,
            request_json: "{\"options\":1}",
        })
        .unwrap()
        .video_id
}

/// A completed media item with `n` one-second video segments (thumbnails named after them).
fn completed_media(stores: &Stores, scope: &Scope, hash: &str, n: i64) -> (VideoId, Vec<SegmentId>) {
    let id = new_media(stores, scope, hash);
    stores.catalog.start_media(&id, "/media/t.mp4").unwrap();
    let segments: Vec<NewSegment> = (0..n)
        .map(|i| NewSegment {
            segment_id: SegmentId::generate(),
            kind: SegmentKind::Video,
            start_us: i * 1_000_000,
            end_us: (i + 1) * 1_000_000,
            segmentation_type: "fixed".into(),
            keyframe_us: Some(i * 1_000_000),
            keyframe_frame: Some(i as u64),
            thumbnail_path: Some(format!("thumb-{i}.jpg")),
        })
        .collect();
    let done = Completed {
        info: &info(),
        duration_us: n * 1_000_000,
        segmentation_json: "{}",
        gif_path: None,
        warnings: &[],
        segments: &segments,
    };
    stores.catalog.complete_media(&id, &done).unwrap();
    (id, segments.into_iter().map(|s| s.segment_id).collect())
}

fn unit(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

/// Direction `i` of 4 dimensions, slightly tilted so that neighbours differ.
fn basis(i: usize) -> Vec<f32> {
    let mut v = vec![0.05f32; 4];
    v[i % 4] = 1.0;
    unit(&v)
}

fn model() -> ModelRef {
    ModelRef::new("test/model", "r1", 4)
}

pub(crate) fn indexes_and_media(open: &dyn Fn() -> Stores) {
    let stores = open();
    let c = &stores.catalog;
    let a = c.create_index("news", Some("k1")).unwrap();
    assert_eq!(c.create_index("news", Some("k1")).unwrap().index_id, a.index_id, "same key, same index");
    assert_eq!(c.create_index("news", None).unwrap_err().kind(), ErrorKind::Conflict);
    assert!(matches!(c.create_index("sport", Some("k1")), Err(Error::IdempotencyConflict { .. })));
    assert_eq!(c.index("news").unwrap().index_id, a.index_id, "by name");
    assert_eq!(c.index(&a.index_id).unwrap().name, "news", "by id");
    assert_eq!(c.index("idx_missing").unwrap_err().kind(), ErrorKind::NotFound);

    let scope = Scope::Index(a.index_id.clone());
    let id = new_media(&stores, &scope, "h1");
    let m = c.media(&id).unwrap();
    assert_eq!((m.status, m.index_id.as_ref()), (Status::Pending, Some(&a.index_id)));
    assert_eq!(c.media_request(&id).unwrap().as_deref(), Some("{\"options\":1}"), "the request is kept");
    assert_eq!(c.media_by_content(&scope, "h1").unwrap().unwrap().video_id, id);
    assert!(c.media_by_content(&Scope::Playground, "h1").unwrap().is_none(), "content is per scope");
    assert_eq!(c.unfinished_media().unwrap().len(), 1);
    c.fail_media(&id, "broken file").unwrap();
    assert_eq!(c.media(&id).unwrap().error.as_deref(), Some("broken file"));
    c.start_media(&id, "/media/moved.mp4").unwrap();
    assert_eq!(c.media(&id).unwrap().source_path, "/media/moved.mp4");
    c.reset_media(&id).unwrap();
    assert_eq!(c.media(&id).unwrap().status, Status::Pending);
    assert_eq!(c.media("vid_missing").unwrap_err().kind(), ErrorKind::NotFound);

    // Listing pages through every row once, whatever the page size.
    for i in 0..6 {
        new_media(&stores, &Scope::Playground, &format!("p{i}"));
    }
    let mut seen = Vec::new();
    let mut page = PageRequest::first(4);
    loop {
        let p = c.list_media(MediaFilter::Scope(&Scope::Playground), &page).unwrap();
        assert!(p.data.len() <= 4 && p.has_more == p.next_cursor.is_some());
        seen.extend(p.data.into_iter().map(|m| m.video_id));
        match p.next_cursor {
            Some(cur) => page.cursor = Some(cur),
            None => break,
        }
    }
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 6);
    assert_eq!(seen.len(), 6);
    assert_eq!(c.list_media(MediaFilter::All, &PageRequest::first(100)).unwrap().data.len(), 7);
    let bad = c.list_media(MediaFilter::All, &PageRequest::first(0)).unwrap_err();
    assert!(bad.to_string().contains("limit"), "{bad}");
    let bad = c.list_media(MediaFilter::All, &PageRequest::after(None, "zz")).unwrap_err();
    assert!(bad.to_string().contains("cursor"), "{bad}");

    let removed = c.delete_index(&a.index_id).unwrap();
    assert_eq!(removed, vec![id.clone()]);
    assert_eq!(c.media(&id).unwrap_err().kind(), ErrorKind::NotFound);
}

pub(crate) fn segments_and_transcripts(open: &dyn Fn() -> Stores) {
    let stores = open();
    let c = &stores.catalog;
    let (id, segs) = completed_media(&stores, &Scope::Playground, "s1", 5);
    let m = c.media(&id).unwrap();
    assert_eq!((m.status, m.duration), (Status::Completed, Some(5.0)));
    let page = c.segments(&id, SegmentKind::Video, None, &PageRequest::first(2)).unwrap();
    assert_eq!(page.data.iter().map(|s| s.index).collect::<Vec<_>>(), vec![0, 1]);
    let rest =
        c.segments(&id, SegmentKind::Video, None, &PageRequest::after(Some(10), page.next_cursor.unwrap())).unwrap();
    assert_eq!(rest.data.iter().map(|s| s.index).collect::<Vec<_>>(), vec![2, 3, 4]);
    assert!(c.segments(&id, SegmentKind::Audio, None, &PageRequest::default()).unwrap().data.is_empty());
    assert_eq!(c.segment(&segs[3]).unwrap().start_us, 3_000_000);

    let phrase = |s: i64, text: &str| NewPhrase {
        window_segment_id: None,
        start_us: s,
        end_us: s + 500_000,
        text: text.into(),
        language: Some("en".into()),
    };
    c.set_phrases(&id, &model(), &[phrase(0, "a cold hearted man"), phrase(2_000_000, "NEAR the \"river\" OR not")])
        .unwrap();
    assert_eq!(c.phrases(&id).unwrap().len(), 2);
    let hits = c.keyword_phrases(&Scope::Playground, "cold hearted", 10).unwrap();
    assert_eq!(hits.len(), 1);
    assert!(hits[0].text.contains("cold"));
    // User text is words, never query syntax: none of these is an error.
    for q in ["NEAR(river)", "\"river", "river OR", "-river", "river*", "( )"] {
        let hits = c.keyword_phrases(&Scope::Playground, q, 10).unwrap();
        assert!(hits.iter().all(|h| h.text.contains("river")), "{q}");
    }
    assert!(c.keyword_phrases(&Scope::Index("idx_other".into()), "cold", 10).unwrap().is_empty(), "per scope");

    let todo = c.thumbnails_without_vector(Some(&Scope::Playground), Space::Visual).unwrap();
    assert_eq!(todo.len(), 5);
    stores
        .vectors
        .upsert(
            &Scope::Playground,
            Space::Visual,
            &model(),
            &[NewVector { segment_id: &segs[0], vector: &basis(0), source_text: None }],
        )
        .unwrap();
    assert_eq!(c.thumbnails_without_vector(None, Space::Visual).unwrap().len(), 4);
    c.add_media_warnings(&id, &["one keyframe was unreadable".into()]).unwrap();
    assert_eq!(c.media(&id).unwrap().warnings, vec!["one keyframe was unreadable".to_string()]);
    c.delete_media(&id).unwrap();
    assert!(c.phrases(&id).unwrap().is_empty(), "the transcript goes with its media");
    assert_eq!(c.segment(&segs[0]).unwrap_err().kind(), ErrorKind::NotFound);
    c.check().unwrap();
}

pub(crate) fn vectors(open: &dyn Fn() -> Stores) {
    let stores = open();
    let v = &stores.vectors;
    let scope = Scope::Playground;
    let (a, sa) = completed_media(&stores, &scope, "v1", 4);
    let (b, sb) = completed_media(&stores, &scope, "v2", 4);
    let rows = |segs: &[SegmentId], offset: usize| -> Vec<(SegmentId, Vec<f32>)> {
        segs.iter().enumerate().map(|(i, s)| (s.clone(), basis(i + offset))).collect()
    };
    let (ra, rb) = (rows(&sa, 0), rows(&sb, 2));
    let as_new = |r: &[(SegmentId, Vec<f32>)]| -> Vec<(SegmentId, Vec<f32>)> { r.to_vec() };
    for r in [as_new(&ra), as_new(&rb)] {
        let new: Vec<NewVector<'_>> =
            r.iter().map(|(s, x)| NewVector { segment_id: s, vector: x, source_text: None }).collect();
        v.upsert(&scope, Space::Visual, &model(), &new).unwrap();
    }
    assert_eq!(v.space_model(&scope, Space::Visual).unwrap(), Some(model()));
    assert_eq!(v.space_model(&scope, Space::Transcript).unwrap(), None);
    let hits = v.search(&scope, Space::Visual, &basis(1), 3, Candidates::All).unwrap();
    assert_eq!(hits[0].vector, basis(1));
    assert!(hits.iter().any(|h| h.segment_id == sa[1]) && hits.iter().any(|h| h.segment_id == sb[3]));

    // Another model cannot add to the space; a wrong size is refused too.
    let other = ModelRef::new("test/other", "r1", 4);
    let one = [NewVector { segment_id: &sa[0], vector: &basis(0), source_text: None }];
    assert!(matches!(v.upsert(&scope, Space::Visual, &other, &one), Err(Error::ModelMismatch(_))));
    let short = [NewVector { segment_id: &sa[0], vector: &[1.0, 0.0], source_text: None }];
    assert!(matches!(v.upsert(&scope, Space::Visual, &model(), &short), Err(Error::ModelMismatch(_))));

    // A candidate filter returns only allowed segments, still k of them when there are k.
    let only_b: HashSet<SegmentId> = sb.iter().cloned().collect();
    let hits = v.search(&scope, Space::Visual, &basis(0), 3, Candidates::Segments(&only_b)).unwrap();
    assert_eq!(hits.len(), 3);
    assert!(hits.iter().all(|h| h.video_id == b));
    let chosen: HashSet<SegmentId> = [sa[2].clone()].into();
    let hits = v.search(&scope, Space::Visual, &basis(0), 3, Candidates::Segments(&chosen)).unwrap();
    assert_eq!(hits.iter().map(|h| &h.segment_id).collect::<Vec<_>>(), vec![&sa[2]]);

    // Another handle (another process) sees this one's writes, and this one sees its deletes.
    let other_process = open();
    assert_eq!(other_process.vectors.search(&scope, Space::Visual, &basis(0), 8, Candidates::All).unwrap().len(), 8);
    v.remove_media(&a).unwrap();
    stores.catalog.delete_media(&a).unwrap();
    let after = other_process.vectors.search(&scope, Space::Visual, &basis(0), 8, Candidates::All).unwrap();
    assert_eq!(after.len(), 4, "a deleted media item's vectors are gone for everyone");
    assert!(after.iter().all(|h| h.video_id == b));
    let (c_id, sc) = completed_media(&other_process, &scope, "v3", 1);
    // b's four segments hold all four basis vectors, so the new vector and the moved one
    // are mixtures that tie with none of them.
    let (fresh, moved_to) = (unit(&[0.7, 0.7, 0.1, 0.1]), unit(&[0.1, 0.1, 0.7, 0.7]));
    let newest = [NewVector { segment_id: &sc[0], vector: &fresh, source_text: Some("new") }];
    other_process.vectors.upsert(&scope, Space::Visual, &model(), &newest).unwrap();
    let hits = v.search(&scope, Space::Visual, &fresh, 1, Candidates::All).unwrap();
    assert_eq!(hits[0].video_id, c_id, "a vector added by another process is found by the next search");
    assert_eq!(hits[0].source_text.as_deref(), Some("new"));

    // Replacing a segment's vector moves it.
    let moved = [NewVector { segment_id: &sc[0], vector: &moved_to, source_text: None }];
    v.upsert(&scope, Space::Visual, &model(), &moved).unwrap();
    let hits = v.search(&scope, Space::Visual, &moved_to, 1, Candidates::All).unwrap();
    assert_eq!(hits[0].segment_id, sc[0]);
    assert_eq!(v.media_vectors(&c_id).unwrap().len(), 1);
    v.flush().unwrap();
    assert_eq!(
        open().vectors.search(&scope, Space::Visual, &moved_to, 1, Candidates::All).unwrap()[0].segment_id,
        sc[0]
    );

    assert_eq!(v.scopes_with_vectors(Space::Visual).unwrap(), vec![Scope::Playground]);
    v.drop_space(&scope, Space::Visual).unwrap();
    assert_eq!(v.space_model(&scope, Space::Visual).unwrap(), None);
    assert!(other_process.vectors.search(&scope, Space::Visual, &basis(0), 5, Candidates::All).unwrap().is_empty());
    // After a drop, another model may fill the space.
    let again = [NewVector { segment_id: &sb[0], vector: &basis(0), source_text: None }];
    v.upsert(&scope, Space::Visual, &other, &again).unwrap();
    assert_eq!(other_process.vectors.search(&scope, Space::Visual, &basis(0), 5, Candidates::All).unwrap().len(), 1);
}

pub(crate) fn jobs_and_events(open: &dyn Fn() -> Stores) {
    let stores = open();
    let j = &stores.jobs;
    let request = |n: u32| JobRequest {
        kind: JobKind::Ingest,
        video_id: None,
        index_id: None,
        request_json: format!("{{\"n\":{n}}}"),
    };
    let first = j.create_job(&request(1)).unwrap();
    let second = j.create_job(&request(2)).unwrap();
    assert_eq!((first.status, first.attempts), (JobStatus::Pending, 0));
    assert_eq!(first.request, serde_json::json!({ "n": 1 }));

    let claimed = j.claim_job("host/1/w_a", 60_000).unwrap().unwrap();
    assert_eq!(
        (claimed.job_id.clone(), claimed.status, claimed.attempts),
        (first.job_id.clone(), JobStatus::Processing, 1)
    );
    let progress = JobProgress::new(JobStage::Analysing, 0.5);
    assert!(!j.heartbeat(&first.job_id, "host/1/w_a", &progress, 60_000).unwrap());
    assert_eq!(j.job(&first.job_id).unwrap().progress, progress);

    // Cancel: a running job is flagged (its heartbeat says so), a pending one ends at once.
    assert!(j.cancel_job(&first.job_id).unwrap().cancel_requested);
    assert!(j.heartbeat(&first.job_id, "host/1/w_a", &progress, 60_000).unwrap());
    assert_eq!(j.cancel_job(&second.job_id).unwrap().status, JobStatus::Cancelled);
    j.finish_job(&first.job_id, "host/1/w_a", JobStatus::Cancelled, None).unwrap();
    assert_eq!(j.job(&first.job_id).unwrap().status, JobStatus::Cancelled);
    assert!(j.claim_job("host/1/w_a", 60_000).unwrap().is_none(), "nothing pending");

    // A dead owner's job goes back to pending and runs again, counting the attempt.
    let third = j.create_job(&request(3)).unwrap();
    j.claim_job("host/99/w_dead", 60_000).unwrap().unwrap();
    assert!(j.requeue_orphans(&|_| false).unwrap().is_empty(), "alive, lease valid");
    assert_eq!(j.requeue_orphans(&|o| o.contains("dead")).unwrap(), vec![third.job_id.clone()]);
    let again = j.claim_job("host/1/w_b", 60_000).unwrap().unwrap();
    assert_eq!((again.job_id.clone(), again.attempts), (third.job_id.clone(), 2));
    // The old owner's late outcome does not overwrite the new owner's job.
    j.finish_job(&third.job_id, "host/99/w_dead", JobStatus::Failed, Some("late")).unwrap();
    assert_eq!(j.job(&third.job_id).unwrap().status, JobStatus::Processing);
    // A lease that ran out frees the job as well; a shutdown gives it back.
    j.heartbeat(&third.job_id, "host/1/w_b", &progress, -1).unwrap();
    assert_eq!(j.requeue_orphans(&|_| false).unwrap(), vec![third.job_id.clone()]);
    j.claim_job("host/1/w_c", 60_000).unwrap().unwrap();
    j.release_job(&third.job_id, "host/1/w_c").unwrap();
    assert_eq!(j.job(&third.job_id).unwrap().status, JobStatus::Pending);
    j.claim_job("host/1/w_c", 60_000).unwrap().unwrap();
    j.finish_job(&third.job_id, "host/1/w_c", JobStatus::Completed, None).unwrap();
    let done = j.job(&third.job_id).unwrap();
    assert_eq!((done.status, done.attempts), (JobStatus::Completed, 4), "claimed by dead, b, c, and c again");
    assert!(done.finished_at.is_some());
    assert_eq!(j.list_jobs(Some(JobStatus::Cancelled), &PageRequest::default()).unwrap().data.len(), 2);
    assert_eq!(j.job("job_missing").unwrap_err().kind(), ErrorKind::NotFound);

    // Events: in order, readable from any id on, including from another handle.
    let e = &stores.events;
    let all = open().events.events_since(0, 1000).unwrap();
    assert!(all.windows(2).all(|w| w[0].event_id < w[1].event_id));
    let types: Vec<EventType> =
        all.iter().filter(|e| e.job_id.as_ref() == Some(&third.job_id)).map(|e| e.event_type).collect();
    assert_eq!(
        types,
        vec![
            EventType::JobCreated,
            EventType::JobStarted,
            EventType::JobRequeued,
            EventType::JobStarted,
            EventType::JobRequeued,
            EventType::JobStarted,
            EventType::JobRequeued,
            EventType::JobStarted,
            EventType::JobCompleted
        ]
    );
    let last = all.last().unwrap().event_id;
    let id = e.append(&NewEvent::new(EventType::MediaDeleted).payload(serde_json::json!({ "why": "test" }))).unwrap();
    assert!(id > last);
    let tail = e.events_since(last, 10).unwrap();
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].payload["why"], "test");
}

pub(crate) fn media_events(open: &dyn Fn() -> Stores) {
    let stores = open();
    let (id, _) = completed_media(&stores, &Scope::Playground, "e1", 2);
    stores.catalog.delete_media(&id).unwrap();
    let types: Vec<EventType> = stores
        .events
        .events_since(0, 100)
        .unwrap()
        .into_iter()
        .filter(|e| e.video_id.as_ref() == Some(&id))
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        types,
        vec![
            EventType::MediaCreated,
            EventType::MediaProcessingStarted,
            EventType::MediaProcessingCompleted,
            EventType::MediaDeleted
        ]
    );
}

mod sqlite {
    use super::*;
    use crate::store::AnnConfig;

    fn backend() -> (tempfile::TempDir, impl Fn() -> Stores) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        (dir, move || Stores::embedded(&root, AnnConfig::default()).unwrap())
    }

    #[test]
    fn indexes_and_media() {
        let (_dir, open) = backend();
        super::indexes_and_media(&open);
    }

    #[test]
    fn segments_and_transcripts() {
        let (_dir, open) = backend();
        super::segments_and_transcripts(&open);
    }

    #[test]
    fn vectors() {
        let (_dir, open) = backend();
        super::vectors(&open);
    }

    #[test]
    fn jobs_and_events() {
        let (_dir, open) = backend();
        super::jobs_and_events(&open);
    }

    #[test]
    fn media_events() {
        let (_dir, open) = backend();
        super::media_events(&open);
    }
}
