//! The MILAN authors' released decoders (`milan-<name>.pth`) read without Python and mapped onto
//! our captioner, language model and vocabulary.
//!
//! The file is `torch.save` of `Decoder.serialize()` (their `src/utils/serialize.py`): a dict
//! `{'properties', 'children', 'state_dict'}`. `properties` holds the constructor's arguments,
//! nested serialized objects included: `indexer` (its `vocab.properties.tokens` are the words in
//! id order; the spaCy tokenizer blob beside them is skipped), `lm` (the language model's sizes;
//! its weights are the state dict's `lm.*`), `encoder` (`config`, e.g. `resnet101`; its weights,
//! `encoder.*`, are torchvision's and are not read here), and the decoding defaults (`length`,
//! `strategy`, `temperature`, `beam_size`). Token ids: the words are 0..V, then `<start>` V,
//! `<stop>` V+1, `<pad>` V+2, `<unk>` V+3; ours put the specials first, so the rows of both
//! embeddings and both output layers are reordered when read.

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use burn::tensor::Device;

use milan_model::model::{
    Captioner, CaptionerConfig, LanguageModel, LanguageModelConfig, torch_layout,
};
use milan_model::train::{InitFrom, MilanConfig};
use milan_model::vocab::{PAD, START, STOP, UNK, Vocabulary};
use milan_networks::formats::pickle::Value;
use milan_networks::formats::torch_zip::TorchZip;
use milan_networks::formats::weights::StateDict;

/// The decoding defaults a checkpoint carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    /// Tokens decoded at most (`length`).
    pub length: usize,
    /// `rerank` (beam search, then PMI), `beam`, `greedy` or `sample`.
    pub strategy: String,
    /// The weight of log p(d) in PMI (`temperature`).
    pub temperature: f32,
    pub beam: usize,
}

/// The encoder a checkpoint was trained with.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderSpec {
    /// `PyramidConvEncoder` or `SpatialConvEncoder`.
    pub kind: String,
    /// The torchvision network, e.g. `resnet101`.
    pub config: String,
}

impl EncoderSpec {
    /// Our featurizer's name for this encoder, and the feature size it makes, when we have it.
    pub fn featurizer(&self) -> Result<(&str, usize)> {
        ensure!(
            self.kind == "PyramidConvEncoder",
            "the checkpoint's encoder is a {}; only PyramidConvEncoder is supported (pass \
             --features computed elsewhere)",
            self.kind
        );
        Ok(match self.config.as_str() {
            "resnet18" => ("resnet18", 1024),
            "resnet50" => ("resnet50", 3904),
            "resnet101" => ("resnet101", 3904),
            other => bail!(
                "the checkpoint's encoder is {other}, which we cannot run (resnet18/50/101 \
                 pyramids only); pass --features computed elsewhere"
            ),
        })
    }
}

/// A released MILAN decoder, ready to decode.
#[derive(Debug)]
pub struct Pretrained {
    pub captioner: Captioner,
    pub lm: LanguageModel,
    /// Our ids: the four specials, then the authors' words in their order.
    pub vocab: Vocabulary,
    pub feature_dim: usize,
    pub defaults: Defaults,
    pub encoder: EncoderSpec,
    pub captioner_config: CaptionerConfig,
    pub lm_config: LanguageModelConfig,
}

/// Our id order as indices into the authors' rows: `<pad>`, `<start>`, `<stop>`, `<unk>`,
/// then the words.
pub fn our_order(words: usize) -> Vec<usize> {
    [words + 2, words, words + 1, words + 3]
        .into_iter()
        .chain(0..words)
        .collect()
}

fn field<'a>(v: &'a Value, path: &[&str]) -> Result<&'a Value> {
    let mut at = v;
    for (i, key) in path.iter().enumerate() {
        at = at
            .get(key)
            .with_context(|| format!("no {} in the checkpoint", path[..=i].join(".")))?;
    }
    Ok(at)
}

fn int(v: &Value, path: &[&str]) -> Result<usize> {
    let f = field(v, path)?;
    match f.as_int() {
        Some(n) if n >= 0 => Ok(n as usize),
        _ => bail!("{} is {f:?}, not a size", path.join(".")),
    }
}

fn float(v: &Value, path: &[&str]) -> Result<f64> {
    let f = field(v, path)?;
    f.as_float()
        .with_context(|| format!("{} is {f:?}, not a number", path.join(".")))
}

fn words_of(indexer: &Value, what: &str) -> Result<Vec<String>> {
    let tokens = field(indexer, &["properties", "vocab", "properties", "tokens"])
        .with_context(|| format!("{what}: no vocabulary"))?;
    tokens
        .as_seq()
        .with_context(|| format!("{what}.vocab.tokens is not a sequence"))?
        .iter()
        .map(|t| {
            t.as_str()
                .map(str::to_owned)
                .with_context(|| format!("{what}.vocab.tokens holds {t:?}, not a string"))
        })
        .collect()
}

impl Pretrained {
    /// Saves the checkpoint's models into `dir` for runs to start from (`fit --init-from`);
    /// `base` gives the training numbers, the checkpoint its models' sizes.
    pub fn into_init(self, name: &str, base: &MilanConfig, dir: &Path) -> Result<InitFrom> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let (c, l) = (&self.captioner_config, &self.lm_config);
        let config = MilanConfig {
            embedding: c.embedding,
            hidden: c.hidden,
            attention: c.attention,
            dropout: c.dropout,
            max_tokens: c.max_tokens,
            lm_embedding: l.embedding,
            lm_hidden: l.hidden,
            lm_layers: l.layers,
            lm_dropout: l.dropout,
            ..base.clone()
        };
        milan_model::train::save_module(self.captioner, &dir.join("captioner.bpk"))?;
        milan_model::train::save_module(self.lm, &dir.join("lm.bpk"))?;
        Ok(InitFrom {
            name: name.to_owned(),
            dir: dir.to_owned(),
            vocab: self.vocab,
            feature_dim: self.feature_dim,
            config,
        })
    }

    /// Reads `path` (the authors' format) onto `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Pretrained> {
        let mut file = TorchZip::open(path)?;
        let root = std::mem::replace(&mut file.root, Value::None);
        Pretrained::from_root(&mut file, &root, device)
            .with_context(|| format!("{}: not a MILAN decoder checkpoint", path.display()))
    }

    fn from_root(file: &mut TorchZip, root: &Value, device: &Device) -> Result<Pretrained> {
        let props = field(root, &["properties"])?;
        let words = words_of(field(props, &["indexer"])?, "properties.indexer")?;
        let lm = field(props, &["lm"])?;
        ensure!(
            !matches!(lm, Value::None),
            "the checkpoint has no language model (properties.lm is None): PMI decoding needs \
             one"
        );
        let lm_words = words_of(
            field(lm, &["properties", "indexer"])?,
            "properties.lm.indexer",
        )?;
        ensure!(
            lm_words == words,
            "the language model's vocabulary differs from the decoder's"
        );
        let encoder = EncoderSpec {
            kind: field(root, &["children", "encoder"])?
                .as_str()
                .context("children.encoder is not a string")?
                .to_owned(),
            config: field(props, &["encoder", "properties", "config"])?
                .as_str()
                .context("properties.encoder.properties.config is not a string")?
                .to_owned(),
        };
        let strategy = field(props, &["strategy"])?
            .as_str()
            .unwrap_or("rerank")
            .to_owned();
        let defaults = Defaults {
            length: int(props, &["length"])?,
            strategy,
            temperature: float(props, &["temperature"])? as f32,
            beam: int(props, &["beam_size"])?,
        };

        let state = field(root, &["state_dict"])?;
        let mut tensors = std::collections::HashMap::new();
        for (name, v) in state.items() {
            // The encoder's weights are torchvision's; they are read from torchvision's own
            // file when an encoder runs, so its 263 MB are not decoded here.
            if name.starts_with("encoder.") {
                continue;
            }
            let t = file.tensor(name, v)?;
            tensors.insert(name.to_owned(), (t.values, t.shape));
        }
        let mut sd = StateDict::from_tensors(tensors, file.path());

        let v = words.len() + 4;
        let (hidden, feature_dim) = match sd.shape("init_h.0.weight") {
            Some([h, d]) => (*h, *d),
            Some(other) => {
                bail!("init_h.0.weight has shape {other:?}, expected [hidden, features]")
            }
            None => bail!("{}: missing weight init_h.0.weight", file.path().display()),
        };
        let embedding = int(props, &["embedding_size"])?;
        ensure!(
            int(props, &["hidden_size"])? == hidden,
            "properties.hidden_size differs from init_h.0.weight's"
        );
        let attention = match field(props, &["attention_hidden_size"])? {
            Value::None => None,
            other => Some(
                other
                    .as_int()
                    .context("properties.attention_hidden_size is not a size")?
                    as usize,
            ),
        };
        let captioner_config = CaptionerConfig {
            feature_dim,
            vocab: v,
            embedding,
            hidden,
            // Their attention's default hidden size is min(query, key) = min(hidden, features).
            attention: Some(attention.unwrap_or(hidden.min(feature_dim))),
            dropout: float(props, &["dropout"])?,
            max_tokens: defaults.length,
        };
        let lm_config = LanguageModelConfig {
            vocab: v,
            embedding: int(lm, &["properties", "embedding_size"])?,
            hidden: int(lm, &["properties", "hidden_size"])?,
            layers: int(lm, &["properties", "layers"])?,
            dropout: float(lm, &["properties", "dropout"])?,
        };

        let order = our_order(words.len());
        for key in [
            "embedding.weight",
            "output.1.weight",
            "output.1.bias",
            "lm.embedding.weight",
            "lm.output.0.weight",
            "lm.output.0.bias",
        ] {
            sd.permute_rows(key, &order)?;
        }
        let captioner = torch_layout::captioner(&captioner_config, &mut sd, device)?;
        let lm = torch_layout::language_model(&lm_config, &mut sd, "lm", device)?;
        sd.finish()?;

        let vocab = Vocabulary::from_tokens(
            [PAD, START, STOP, UNK]
                .into_iter()
                .map(str::to_owned)
                .chain(words)
                .collect(),
        );
        Ok(Pretrained {
            captioner,
            lm,
            vocab,
            feature_dim,
            defaults,
            encoder,
            captioner_config,
            lm_config,
        })
    }
}

/// The authors' released decoders, each trained on the group of keys it is named after.
pub const NAMES: [&str; 8] = milan_shared::split::GROUP_NAMES;

/// The checkpoint `name_or_path` stands for: a file, or a released name downloaded once (from
/// `<url_base>/models/milan-<name>.pth`, SHA-256 recorded) into `<assets>/milan/`.
pub fn resolve(name_or_path: &str, url_base: &str) -> Result<std::path::PathBuf> {
    let path = Path::new(name_or_path);
    if path.is_file() {
        return Ok(path.to_owned());
    }
    let name = name_or_path.strip_prefix("milan-").unwrap_or(name_or_path);
    ensure!(
        NAMES.contains(&name),
        "{name_or_path}: neither a checkpoint file nor a released MILAN ({})",
        NAMES.join(", ")
    );
    let dir = crate::assets::assets_dir().join("milan");
    let mut manifest = crate::assets::download::Manifest::load(&dir.join("milan-sha256.json"))?;
    let file = format!("milan-{name}.pth");
    let url = format!("{}/models/{file}", url_base.trim_end_matches('/'));
    if !dir.join(&file).is_file() {
        eprintln!("{file}: downloading from {url}");
    }
    let (path, sha) = crate::assets::download::fetch(&url, &dir, &file, &manifest)?;
    // Recorded once it opens as a checkpoint; a file that does not is deleted, to be fetched
    // again.
    if let Err(e) = TorchZip::open(&path) {
        let _ = std::fs::remove_file(&path);
        return Err(e.context(format!("{url}: not a PyTorch checkpoint")));
    }
    manifest.record(&file, &sha)?;
    Ok(path)
}
