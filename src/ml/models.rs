//! Which model plays which role, loaded once per engine on first use and shared.
//!
//! CLIP and the sentence encoder take `&self` and are shared by every thread. Whisper keeps
//! decoder state (`&mut self`), so speech is served from a pool of clones that share one set of
//! weights: two transcriptions run side by side and none holds a lock anyone else waits on.
//! A failed load is remembered for [`RETRY_AFTER`], then tried again, so a long-lived engine
//! recovers once a model folder is fixed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::llm::{self, LanguageModel};
use super::transnet::{self, TransNet};
use super::{
    clip::CLIP_FILES, source, text::TEXT_MODEL_FILES, ClipEncoder, ModelFiles, Precision, TextEncoder, WhisperModel,
};
use crate::error::{Error, Result};

/// How long a failed or absent model is not looked for again.
pub const RETRY_AFTER: Duration = Duration::from_secs(30);

/// Which model to use for a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ModelChoice {
    /// The default model if its files can be found; without them the role is off, and
    /// ingest says so in its warnings.
    Default,
    /// This folder or id; missing files are an error.
    Use(String),
    /// No model for this role.
    Off,
}

/// A role a model plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Keyframes and text queries in the visual space (CLIP).
    Visual,
    /// Transcripts, metadata and text queries in the text spaces (sentence encoder).
    Text,
    /// Speech to text (Whisper).
    Speech,
}

impl Role {
    fn default_id(self) -> &'static str {
        match self {
            Role::Visual => super::DEFAULT_VISUAL_MODEL,
            Role::Text => super::DEFAULT_TEXT_MODEL,
            Role::Speech => super::DEFAULT_ASR_MODEL,
        }
    }

    fn required(self) -> &'static [&'static str] {
        match self {
            Role::Visual => CLIP_FILES,
            Role::Text => TEXT_MODEL_FILES,
            // The weights file differs by layout (model.safetensors or CTranslate2's model.bin).
            Role::Speech => &["config.json", "tokenizer.json"],
        }
    }
}

/// The state of one role.
enum Slot<T> {
    NotLoaded,
    Ready(Arc<T>),
    Off,
    /// The default model was not found; `looked` says where.
    Absent {
        looked: String,
        at: Instant,
    },
    /// A model that was asked for could not be loaded.
    Failed {
        message: String,
        at: Instant,
    },
}

impl<T> Slot<T> {
    /// The answer a remembered state gives without loading; `None`: (re)load.
    fn remembered(&self) -> Option<Result<Option<Arc<T>>>> {
        match self {
            Slot::Ready(_) | Slot::Off => Some(self.answer()),
            Slot::Absent { at, .. } | Slot::Failed { at, .. } if at.elapsed() < RETRY_AFTER => Some(self.answer()),
            _ => None,
        }
    }

    /// The model, nothing (off or absent), or the error of a failed load.
    fn answer(&self) -> Result<Option<Arc<T>>> {
        match self {
            Slot::Ready(m) => Ok(Some(m.clone())),
            Slot::Failed { message, .. } => Err(Error::ModelUnavailable(message.clone())),
            _ => Ok(None),
        }
    }
}

/// The models of one engine.
pub(crate) struct Models {
    choices: [ModelChoice; 3],
    data_dir: PathBuf,
    device: candle_core::Device,
    visual: Mutex<Slot<ClipEncoder>>,
    text: Mutex<Slot<TextEncoder>>,
    speech: Mutex<Slot<WhisperModel>>,
    /// TransNetV2, the shot-boundary detector; absent weights leave shot detection to the rules.
    shots: Mutex<Slot<TransNet>>,
    shot_choice: ModelChoice,
    /// Idle Whisper decoders (clones of the loaded one).
    speech_pool: Mutex<Vec<WhisperModel>>,
    /// Language models by GGUF path, loaded when a prompt run first asks for one. Generation
    /// takes the model's own lock (its attention cache): runs on one model take turns.
    language: Mutex<HashMap<PathBuf, Arc<Mutex<LanguageModel>>>>,
    /// Longest reply of an extraction call, in tokens.
    pub max_reply_tokens: usize,
    /// Weights of the image tower's and of Whisper's decoder's linear layers.
    pub precision: Precision,
}

/// A Whisper decoder on loan from the pool; goes back when dropped.
pub(crate) struct SpeechModel<'a> {
    model: Option<WhisperModel>,
    pool: &'a Mutex<Vec<WhisperModel>>,
}

impl std::ops::Deref for SpeechModel<'_> {
    type Target = WhisperModel;
    fn deref(&self) -> &WhisperModel {
        self.model.as_ref().expect("present until dropped")
    }
}

impl std::ops::DerefMut for SpeechModel<'_> {
    fn deref_mut(&mut self) -> &mut WhisperModel {
        self.model.as_mut().expect("present until dropped")
    }
}

impl Drop for SpeechModel<'_> {
    fn drop(&mut self) {
        if let Some(m) = self.model.take() {
            self.pool.lock().unwrap_or_else(|p| p.into_inner()).push(m);
        }
    }
}

impl Models {
    pub fn new(visual: ModelChoice, text: ModelChoice, speech: ModelChoice, data_dir: PathBuf) -> Self {
        Models {
            choices: [visual, text, speech],
            data_dir,
            device: super::device(),
            visual: Mutex::new(Slot::NotLoaded),
            text: Mutex::new(Slot::NotLoaded),
            speech: Mutex::new(Slot::NotLoaded),
            shots: Mutex::new(Slot::NotLoaded),
            shot_choice: ModelChoice::Default,
            speech_pool: Mutex::default(),
            language: Mutex::default(),
            max_reply_tokens: 512,
            precision: Precision::F32,
        }
    }

    fn choice(&self, role: Role) -> &ModelChoice {
        &self.choices[role as usize]
    }

    /// Load (or reuse) the model of a role. Concurrent first users wait for one load.
    fn get<T>(
        &self,
        role: Role,
        slot: &Mutex<Slot<T>>,
        load: impl FnOnce(&ModelFiles, &candle_core::Device) -> Result<T>,
    ) -> Result<Option<Arc<T>>> {
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(answer) = slot.remembered() {
            return answer;
        }
        let choice = self.choice(role);
        let spec = match choice {
            ModelChoice::Off => {
                *slot = Slot::Off;
                return Ok(None);
            }
            ModelChoice::Default => role.default_id(),
            ModelChoice::Use(s) => s.as_str(),
        };
        let found = source::resolve(spec, role.required(), &source::search_dirs(Some(&self.data_dir)));
        *slot = match found {
            Ok(files) => match load(&files, &self.device) {
                Ok(m) => Slot::Ready(Arc::new(m)),
                Err(e) => Slot::Failed { message: e.to_string(), at: Instant::now() },
            },
            // The default is optional: remember where we looked, for warnings and errors.
            Err(Error::ModelMissing { hint, .. }) if *choice == ModelChoice::Default => {
                Slot::Absent { looked: hint, at: Instant::now() }
            }
            Err(e) => Slot::Failed { message: e.to_string(), at: Instant::now() },
        };
        slot.answer()
    }

    /// The visual model; `Ok(None)` when turned off or, for the default, not found.
    pub fn visual(&self) -> Result<Option<Arc<ClipEncoder>>> {
        self.get(Role::Visual, &self.visual, |files, device| ClipEncoder::load_with(files, device, self.precision))
    }

    /// The sentence encoder; `Ok(None)` when turned off or, for the default, not found.
    pub fn text(&self) -> Result<Option<Arc<TextEncoder>>> {
        self.get(Role::Text, &self.text, TextEncoder::load)
    }

    /// A Whisper decoder of its own; `Ok(None)` when turned off or, for the default, not found.
    pub fn speech(&self) -> Result<Option<SpeechModel<'_>>> {
        let load =
            |files: &ModelFiles, device: &candle_core::Device| WhisperModel::load_with(files, device, self.precision);
        let Some(base) = self.get(Role::Speech, &self.speech, load)? else {
            return Ok(None);
        };
        let idle = self.speech_pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let model = idle.unwrap_or_else(|| (*base).clone());
        Ok(Some(SpeechModel { model: Some(model), pool: &self.speech_pool }))
    }

    /// TransNetV2 for an analysis with `shots`: `Ok(None)` when they turn it off (nothing is
    /// loaded) or its weights are not there (shot detection then uses the rules alone).
    pub fn shots_for(&self, shots: &crate::ShotConfig) -> Result<Option<Arc<TransNet>>> {
        if shots.neural {
            self.shots()
        } else {
            Ok(None)
        }
    }

    /// TransNetV2 from the model folders; `Ok(None)` when its weights are not there (shot
    /// detection then uses the rules alone).
    /// Which TransNetV2 [`Models::shots`] loads.
    pub fn set_shot_model(&mut self, choice: ModelChoice) {
        self.shot_choice = choice;
    }

    pub fn shots(&self) -> Result<Option<Arc<TransNet>>> {
        if self.shot_choice == ModelChoice::Off {
            return Ok(None);
        }
        let mut slot = self.shots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(answer) = slot.remembered() {
            return answer;
        }
        let dirs = source::search_dirs(Some(&self.data_dir));
        *slot = match transnet::weights_for(&self.shot_choice, &dirs) {
            Err(e) => Slot::Failed { message: e.to_string(), at: Instant::now() },
            Ok(None) => Slot::Absent {
                looked: dirs
                    .iter()
                    .map(|d| d.join(transnet::TRANSNET_MODEL).display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                at: Instant::now(),
            },
            Ok(Some(weights)) => match TransNet::load(&weights, &self.device) {
                Ok(m) => Slot::Ready(Arc::new(m)),
                Err(e) => Slot::Failed { message: e.to_string(), at: Instant::now() },
            },
        };
        slot.answer()
    }

    /// The language model `spec` names (a GGUF path, a model id, a hosted name; `None`: the
    /// default), loaded on first use. Returns the resolved file's path too.
    pub fn language(&self, spec: Option<&str>) -> Result<(PathBuf, Arc<Mutex<LanguageModel>>)> {
        let spec = spec.unwrap_or(llm::DEFAULT_LANGUAGE_MODEL);
        let path = llm::resolve(spec, &source::search_dirs(Some(&self.data_dir)))?;
        let mut loaded = self.language.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = loaded.get(&path) {
            return Ok((path, m.clone()));
        }
        let id = if llm::HOSTED_MODEL_NAMES.contains(&spec) { llm::DEFAULT_LANGUAGE_MODEL } else { spec };
        let model = Arc::new(Mutex::new(LanguageModel::load(&path, id, &self.device)?));
        loaded.insert(path.clone(), model.clone());
        Ok((path, model))
    }

    /// Why a role has no model, when its default was asked for and not found.
    pub fn off_reason(&self, role: Role) -> Option<String> {
        fn looked<T>(s: &Slot<T>) -> Option<String> {
            match s {
                Slot::Absent { looked, .. } => Some(looked.clone()),
                _ => None,
            }
        }
        match role {
            Role::Visual => looked(&self.visual.lock().unwrap_or_else(|p| p.into_inner())),
            Role::Text => looked(&self.text.lock().unwrap_or_else(|p| p.into_inner())),
            Role::Speech => looked(&self.speech.lock().unwrap_or_else(|p| p.into_inner())),
        }
    }

    /// The error for a role that has no model but needs one.
    pub fn missing(&self, role: Role) -> Error {
        let files: Vec<String> = match role {
            Role::Speech => {
                vec!["model.bin or model.safetensors".into(), "config.json".into(), "tokenizer.json".into()]
            }
            _ => role.required().iter().map(|s| s.to_string()).collect(),
        };
        let model = match self.choice(role) {
            ModelChoice::Use(s) => s.clone(),
            _ => role.default_id().to_string(),
        };
        Error::ModelMissing {
            model,
            missing: files,
            hint: self.off_reason(role).unwrap_or_else(|| "that model is turned off for this engine".into()),
        }
    }
}
