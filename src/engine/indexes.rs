//! `engine.indexes()`: create, list, retrieve, delete.

use super::Engine;
use crate::error::Result;
use crate::store::MediaFilter;
use crate::types::{Index, Media, Page, PageRequest, Scope, Space};

/// `client.indexes`.
pub struct Indexes<'a> {
    engine: &'a Engine,
}

impl<'a> Indexes<'a> {
    pub(super) fn new(engine: &'a Engine) -> Self {
        Indexes { engine }
    }

    /// Create an index; a name in use is a conflict (409) unless `idempotency_key` created it.
    pub fn create(&self, name: &str, idempotency_key: Option<&str>) -> Result<Index> {
        self.engine.stores().catalog.create_index(name, idempotency_key)
    }

    pub fn list(&self) -> Result<Vec<Index>> {
        self.engine.stores().catalog.indexes()
    }

    /// By id (`idx_...`) or name.
    pub fn retrieve(&self, id_or_name: &str) -> Result<Index> {
        self.engine.stores().catalog.index(id_or_name)
    }

    /// Delete the index, its media, their segments, vectors and files.
    pub fn delete(&self, id_or_name: &str) -> Result<()> {
        let stores = self.engine.stores();
        let index = self.retrieve(id_or_name)?;
        let scope = Scope::Index(index.index_id.clone());
        for space in Space::ALL {
            stores.vectors.drop_space(&scope, *space)?;
        }
        for video_id in stores.catalog.delete_index(&index.index_id)? {
            stores.blobs.remove_media(&video_id)?;
        }
        Ok(())
    }

    /// Media of an index, paginated.
    pub fn list_videos(&self, id_or_name: &str, page: &PageRequest) -> Result<Page<Media>> {
        let index = self.retrieve(id_or_name)?;
        self.engine.stores().catalog.list_media(MediaFilter::Scope(&Scope::Index(index.index_id)), page)
    }
}
