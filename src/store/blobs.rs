//! Blobs: thumbnails and preview GIFs, kept by key. The embedded default is a folder
//! (`thumbnails/<video_id>/<segment_id>.jpg`, `previews/<video_id>.gif`), written so that a crash
//! never leaves half of a file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::ids::{SegmentId, VideoId};

/// What a blob is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BlobKey<'a> {
    /// The keyframe JPEG of a segment.
    Thumbnail(&'a VideoId, &'a SegmentId),
    /// The preview GIF of a media item.
    Preview(&'a VideoId),
}

/// Where blobs are kept. A locator is what `put` returns and what the catalog records (for the
/// local folder: the file's path).
pub(crate) trait BlobStore: Send + Sync {
    /// Store `bytes` under `key` (replacing), returning its locator.
    fn put(&self, key: &BlobKey<'_>, bytes: &[u8]) -> Result<String>;
    /// The bytes at a locator `put` returned.
    fn get(&self, locator: &str) -> Result<Vec<u8>>;
    /// Remove every blob of a media item (missing ones are fine).
    fn remove_media(&self, video_id: &VideoId) -> Result<()>;
}

/// Blobs in the data folder.
#[derive(Debug, Clone)]
pub(crate) struct LocalBlobs {
    root: PathBuf,
}

impl LocalBlobs {
    /// Create the folders if needed.
    pub fn create(root: &Path) -> Result<Self> {
        for dir in [root.to_path_buf(), root.join("thumbnails"), root.join("previews")] {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        Ok(LocalBlobs { root: root.to_path_buf() })
    }

    fn path(&self, key: &BlobKey<'_>) -> PathBuf {
        match key {
            BlobKey::Thumbnail(v, s) => self.root.join("thumbnails").join(v.as_str()).join(format!("{s}.jpg")),
            BlobKey::Preview(v) => self.root.join("previews").join(format!("{v}.gif")),
        }
    }
}

impl BlobStore for LocalBlobs {
    fn put(&self, key: &BlobKey<'_>, bytes: &[u8]) -> Result<String> {
        let path = self.path(key);
        write_atomic(&path, bytes)?;
        Ok(path.to_string_lossy().into_owned())
    }

    fn get(&self, locator: &str) -> Result<Vec<u8>> {
        std::fs::read(locator).map_err(|e| Error::io(locator, e))
    }

    fn remove_media(&self, video_id: &VideoId) -> Result<()> {
        let dir = self.root.join("thumbnails").join(video_id.as_str());
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(dir, e)),
        }
        let gif = self.path(&BlobKey::Preview(video_id));
        match std::fs::remove_file(&gif) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(gif, e)),
        }
    }
}

/// A temporary name beside `path`, unique per process and call, so that concurrent writers of
/// the same file never share one.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().map_or_else(|| "blob".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

/// Write `bytes` to `path` through a temporary file and a rename: readers see the old file or the
/// new one, never a torn one.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = temp_path(path);
    let write = || -> Result<()> {
        let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_round_trip_and_go_with_their_media() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = LocalBlobs::create(dir.path()).unwrap();
        let (v, s) = (VideoId::from("vid_1"), SegmentId::from("seg_1"));
        let at = blobs.put(&BlobKey::Thumbnail(&v, &s), b"jpeg").unwrap();
        let gif = blobs.put(&BlobKey::Preview(&v), b"gif").unwrap();
        assert_eq!(blobs.get(&at).unwrap(), b"jpeg");
        assert_eq!(temp_path(Path::new(&at)).parent(), Path::new(&at).parent());
        assert_ne!(temp_path(Path::new(&at)), temp_path(Path::new(&at)), "temp names never repeat");
        blobs.remove_media(&v).unwrap();
        assert!(!Path::new(&at).exists() && !Path::new(&gif).exists());
        blobs.remove_media(&v).unwrap();
        assert!(blobs.get(&at).unwrap_err().to_string().contains("seg_1"));
    }
}
