//! `engine.collections()`: named sets of processed media across indexes, with search scoped to
//! one.

use std::collections::BTreeMap;

use super::Engine;
use crate::delivery::collections::{self as store, check_page, Row0};
use crate::delivery::{Collection, CollectionThumbnail, NumberedPage};
use crate::error::{Error, Result};
use crate::search::{SearchResponse, TextSearch};
use crate::types::{Media, Status};

/// `client.collections`.
pub struct Collections<'a> {
    engine: &'a Engine,
}

impl<'a> Collections<'a> {
    pub(crate) fn new(engine: &'a Engine) -> Self {
        Collections { engine }
    }

    fn db(&self) -> &crate::delivery::db::Db {
        &self.engine.core().delivery
    }

    /// A collection named `name` (409 when one has that name).
    pub fn create(&self, name: &str, description: Option<&str>) -> Result<Collection> {
        let row = store::create(self.db(), name, description)?;
        self.assemble(row)
    }

    /// Newest first, `page` from 1, at most [`crate::delivery::MAX_PAGE_SIZE`] a page.
    pub fn list(&self, page: u32, page_size: u32) -> Result<NumberedPage<Collection>> {
        let (rows, total) = store::list(self.db(), page, page_size)?;
        let data = rows.into_iter().map(|r| self.assemble(r)).collect::<Result<_>>()?;
        Ok(NumberedPage { data, page, page_size, total })
    }

    pub fn retrieve(&self, collection_id: &str) -> Result<Collection> {
        self.assemble(store::get(self.db(), collection_id)?)
    }

    /// Change the name, the description or both (neither is a 400).
    pub fn update(&self, collection_id: &str, name: Option<&str>, description: Option<&str>) -> Result<Collection> {
        self.assemble(store::update(self.db(), collection_id, name, description)?)
    }

    /// Delete the collection; its media stay.
    pub fn delete(&self, collection_id: &str) -> Result<()> {
        store::delete(self.db(), collection_id)
    }

    /// Add a fully processed media item (400 if it is not, 409 if it is there already).
    pub fn add_video(&self, collection_id: &str, video_id: &str) -> Result<Collection> {
        store::get(self.db(), collection_id)?;
        let media = self.engine.videos().retrieve(video_id)?;
        let busy = self.engine.stores().jobs.active_job_for_media(video_id)?.is_some();
        if media.status != Status::Completed || busy {
            return Err(Error::invalid(
                "video_id",
                format!(
                    "media {video_id} is {} and not fully processed; add it once its processing has ended",
                    media.status
                ),
            ));
        }
        store::add(self.db(), collection_id, video_id)?;
        self.retrieve(collection_id)
    }

    pub fn remove_video(&self, collection_id: &str, video_id: &str) -> Result<Collection> {
        store::remove(self.db(), collection_id, video_id)?;
        self.retrieve(collection_id)
    }

    /// The collection's media, a page at a time, by `created_at` (of the media), `added_at` or
    /// `title`, `asc` or `desc`.
    pub fn list_videos(
        &self,
        collection_id: &str,
        page: u32,
        page_size: u32,
        sort_by: &str,
        sort_order: &str,
    ) -> Result<NumberedPage<Media>> {
        check_page(page, page_size)?;
        store::get(self.db(), collection_id)?;
        let mut media: Vec<(Media, String)> = self.members(collection_id)?;
        match sort_by {
            "created_at" => media.sort_by(|a, b| a.0.created_at.cmp(&b.0.created_at)),
            "added_at" => media.sort_by(|a, b| a.1.cmp(&b.1)),
            "title" => media.sort_by(|a, b| a.0.title.cmp(&b.0.title)),
            other => return Err(Error::invalid("sort_by", format!("{other:?}: use created_at, added_at or title"))),
        }
        match sort_order {
            "asc" => {}
            "desc" => media.reverse(),
            other => return Err(Error::invalid("sort_order", format!("{other:?}: use asc or desc"))),
        }
        let total = media.len() as u64;
        let start = ((page - 1) * page_size) as usize;
        let data = media.into_iter().skip(start).take(page_size as usize).map(|(m, _)| m).collect();
        Ok(NumberedPage { data, page, page_size, total })
    }

    /// Text search over the collection's media: each index (and the playground) it draws from is
    /// searched with its members only, and the hits are merged by score.
    pub fn search(&self, collection_id: &str, req: &TextSearch) -> Result<SearchResponse> {
        store::get(self.db(), collection_id)?;
        let k = crate::search::top_k(req.top_k)?;
        let mut by_scope: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
        for (m, _) in self.members(collection_id)? {
            by_scope.entry(m.index_id.map(|i| i.to_string())).or_default().push(m.video_id.to_string());
        }
        let mut out = SearchResponse { results: Vec::new(), score_kind: crate::search::ScoreKind::Cosine };
        for (index, ids) in by_scope {
            let found = self.engine.search().text(index.as_deref(), &req.clone().video_ids(ids))?;
            out.score_kind = found.score_kind;
            out.results.extend(found.results);
        }
        out.results.sort_by(|a, b| b.score.total_cmp(&a.score));
        out.results.truncate(k);
        Ok(out)
    }

    /// Members whose media still exists (others are forgotten), with when they were added.
    fn members(&self, collection_id: &str) -> Result<Vec<(Media, String)>> {
        let mut out = Vec::new();
        for (video_id, added_at) in store::members(self.db(), collection_id)? {
            match self.engine.videos().retrieve(&video_id) {
                Ok(m) => out.push((m, added_at)),
                Err(Error::NotFound { .. }) => store::forget(self.db(), &video_id)?,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn assemble(&self, row: Row0) -> Result<Collection> {
        let members = self.members(&row.collection_id)?;
        let mut thumbnails = Vec::new();
        for (m, _) in members.iter().take(4) {
            let first = self
                .engine
                .videos()
                .list_segments(&m.video_id, &crate::engine::SegmentQuery::new().kind(m.primary_kind()))?;
            if let Some(s) = first.data.into_iter().find(|s| s.thumbnail_path.is_some()) {
                thumbnails.push(CollectionThumbnail {
                    video_id: m.video_id.to_string(),
                    segment_id: s.segment_id.to_string(),
                    path: s.thumbnail_path.unwrap_or_default(),
                });
            }
        }
        Ok(Collection {
            collection_id: row.collection_id,
            name: row.name,
            description: row.description,
            created_at: row.created_at,
            updated_at: row.updated_at,
            video_count: members.len() as u64,
            thumbnails,
        })
    }
}
