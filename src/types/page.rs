//! Cursor pagination: `limit` and an opaque `cursor` in, a page with `next_cursor` out.

use serde::{Deserialize, Serialize};

/// Largest `limit` a listing accepts.
pub const MAX_PAGE_LIMIT: u32 = 1000;
/// `limit` when none is given.
pub const DEFAULT_PAGE_LIMIT: u32 = 50;

/// One page of a cursor-paginated listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Pass as `cursor` to get the next page; `None` on the last page. Opaque: each backend
    /// makes its own.
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

impl<T> Page<T> {
    pub(crate) fn new(data: Vec<T>, next_cursor: Option<String>) -> Self {
        Page { has_more: next_cursor.is_some(), data, next_cursor }
    }
}

/// `limit` and `cursor` of a listing request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PageRequest {
    /// Items per page, 1 to [`MAX_PAGE_LIMIT`]. Default [`DEFAULT_PAGE_LIMIT`].
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageRequest {
    /// The first page of `limit` items.
    pub fn first(limit: u32) -> Self {
        PageRequest { limit: Some(limit), cursor: None }
    }

    /// The page after `cursor`.
    pub fn after(limit: Option<u32>, cursor: impl Into<String>) -> Self {
        PageRequest { limit, cursor: Some(cursor.into()) }
    }

    /// The checked limit.
    pub(crate) fn limit(&self) -> crate::Result<u32> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE_LIMIT);
        if limit == 0 || limit > MAX_PAGE_LIMIT {
            return Err(crate::Error::invalid("limit", format!("must be between 1 and {MAX_PAGE_LIMIT}, got {limit}")));
        }
        Ok(limit)
    }
}
