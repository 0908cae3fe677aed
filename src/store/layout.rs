//! Where things live inside a data folder, and writing files so that a crash never leaves half of one.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The data folder: `catalog.sqlite`, `thumbnails/<video_id>/<segment_id>.jpg`,
/// `previews/<video_id>.gif`, `ann/<scope>/<space>.usearch`.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// Create the folder and its subfolders if needed.
    pub fn create(root: &Path) -> Result<Self> {
        for dir in [root.to_path_buf(), root.join("thumbnails"), root.join("previews")] {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        Ok(Layout { root: root.to_path_buf() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn catalog(&self) -> PathBuf {
        self.root.join("catalog.sqlite")
    }

    pub fn thumbnails_dir(&self, video_id: &str) -> PathBuf {
        self.root.join("thumbnails").join(video_id)
    }

    pub fn thumbnail(&self, video_id: &str, segment_id: &str) -> PathBuf {
        self.thumbnails_dir(video_id).join(format!("{segment_id}.jpg"))
    }

    /// The ANN file of a scope's embedding space (`ann/<index_id or _playground>/<space>.usearch`).
    pub fn ann_file(&self, scope: &str, space: &str) -> PathBuf {
        let dir = if scope.is_empty() { "_playground" } else { scope };
        self.root.join("ann").join(dir).join(format!("{space}.usearch"))
    }

    pub fn preview_gif(&self, video_id: &str) -> PathBuf {
        self.root.join("previews").join(format!("{video_id}.gif"))
    }

    /// Remove every file that belongs to a media item (missing files are fine).
    pub fn remove_media_files(&self, video_id: &str) -> Result<()> {
        let dir = self.thumbnails_dir(video_id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(dir, e)),
        }
        let gif = self.preview_gif(video_id);
        match std::fs::remove_file(&gif) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(gif, e)),
        }
    }
}

/// Write `bytes` to `path` through a temporary file and a rename: readers see the old file or the
/// new one, never a torn one.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}
