//! Find a model's files: an explicit folder, a known id in the model folders
//! (`VIDEOVECTOR_MODELS`, the data folder's `models/`, the repository's `models/`), or, with the
//! `hf-hub` feature, the hub cache and download.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A model folder in the HF layout, with the identity recorded beside every vector it makes.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFiles {
    pub dir: PathBuf,
    /// The hub id (`openai/clip-vit-base-patch32`) or the folder path it was loaded from.
    pub id: String,
    /// A content revision: the hub commit, or a hash of the folder's weights and config.
    pub revision: String,
}

/// Where to look for models named by id, in order.
pub fn search_dirs(data_dir: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(env) = std::env::var_os("VIDEOVECTOR_MODELS") {
        dirs.extend(std::env::split_paths(&env));
    }
    if let Some(d) = data_dir {
        dirs.push(d.join("models"));
    }
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("models"));
    dirs
}

/// Resolve `spec` (a folder path or a model id) to a folder holding every file in `required`.
pub fn resolve(spec: &str, required: &[&str], dirs: &[PathBuf]) -> Result<ModelFiles> {
    let as_path = Path::new(spec);
    if as_path.is_dir() {
        check_files(spec, as_path, required)?;
        return Ok(ModelFiles {
            dir: as_path.to_path_buf(),
            id: spec.to_string(),
            revision: folder_revision(as_path)?,
        });
    }
    let basename = spec.rsplit('/').next().unwrap_or(spec);
    let candidates: Vec<PathBuf> =
        dirs.iter().flat_map(|d| [d.join(spec.replace('/', "--")), d.join(basename), d.join(spec)]).collect();
    for dir in &candidates {
        if dir.is_dir() && required.iter().all(|f| dir.join(f).is_file()) {
            return Ok(ModelFiles { dir: dir.clone(), id: spec.to_string(), revision: folder_revision(dir)? });
        }
    }
    #[cfg(feature = "hf-hub")]
    if spec.contains('/') && !spec.starts_with('.') && !spec.starts_with('/') {
        return from_hub(spec, required);
    }
    let looked: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
    Err(Error::ModelMissing {
        model: spec.to_string(),
        missing: required.iter().map(|s| s.to_string()).collect(),
        hint: format!(
            "looked in {}. Run `bash scripts/fetch_models.sh` for the models that ship in packages, put the HF folder in one of those places, pass its path{}",
            looked.join(", "),
            if cfg!(feature = "hf-hub") { "" } else { ", or build with `--features hf-hub` to download from the hub" }
        ),
    })
}

fn check_files(spec: &str, dir: &Path, required: &[&str]) -> Result<()> {
    let missing: Vec<String> = required.iter().filter(|f| !dir.join(f).is_file()).map(|f| f.to_string()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::ModelMissing {
        model: spec.to_string(),
        missing,
        hint: format!("{} is not a complete model folder in the HF layout", dir.display()),
    })
}

/// A revision for a local folder: SHA-256 over `config.json` and the weights, cached beside the
/// weights and keyed by their size and modification time so that it is computed once.
fn folder_revision(dir: &Path) -> Result<String> {
    let weights = ["model.safetensors", "model.bin"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
        .unwrap_or_else(|| dir.join("model.safetensors"));
    let meta = std::fs::metadata(&weights).map_err(|e| Error::io(&weights, e))?;
    let mtime =
        meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    let key = format!("{}:{}", meta.len(), mtime);
    let cache = dir.join(".videovector-revision");
    if let Ok(text) = std::fs::read_to_string(&cache) {
        if let Some((k, rev)) = text.trim().split_once(' ') {
            if k == key {
                return Ok(rev.to_string());
            }
        }
    }
    let mut h = Sha256::new();
    for p in [dir.join("config.json"), weights.clone()] {
        let mut file = std::fs::File::open(&p).map_err(|e| Error::io(&p, e))?;
        std::io::copy(&mut file, &mut h).map_err(|e| Error::io(&p, e))?;
    }
    let rev = format!("sha256:{}", h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect::<String>());
    // A read-only model folder just means the hash is computed again next time.
    let _ = std::fs::write(&cache, format!("{key} {rev}\n"));
    Ok(rev)
}

#[cfg(feature = "hf-hub")]
fn from_hub(spec: &str, required: &[&str]) -> Result<ModelFiles> {
    let (repo, revision) = spec.split_once('@').map_or((spec, "main"), |(r, v)| (r, v));
    let api = hf_hub::api::sync::Api::new().map_err(|e| super::model_err(spec, e))?;
    let repo = api.repo(hf_hub::Repo::with_revision(repo.to_string(), hf_hub::RepoType::Model, revision.to_string()));
    let mut dir = None;
    for f in required {
        let path = repo.get(f).map_err(|e| super::model_err(spec, format!("{f}: {e}")))?;
        dir = path.parent().map(Path::to_path_buf);
    }
    let dir = dir.ok_or_else(|| super::model_err(spec, "no files requested"))?;
    Ok(ModelFiles { revision: folder_revision(&dir)?, dir, id: spec.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_model_names_the_files_and_the_places_looked() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve("acme/none", &["config.json", "model.safetensors"], &[dir.path().to_path_buf()]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("acme/none") && msg.contains("model.safetensors") && msg.contains("fetch_models.sh"),
            "{msg}"
        );
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        let err = resolve(dir.path().to_str().unwrap(), &["config.json", "model.safetensors"], &[]).unwrap_err();
        assert!(err.to_string().contains("model.safetensors") && !err.to_string().contains("config.json,"), "{err}");
    }
}
