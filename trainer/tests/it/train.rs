//! The training loop on a toy corpus whose descriptions follow from the features: it learns,
//! early-stops, writes its checkpoint, reproduces itself from the seed, and resumes exactly.

use std::path::Path;

use burn::tensor::Device;
use milan_model::decoding::{DecodeConfig, greedy, milan_pmi};
use milan_model::train::{MilanConfig, RunOptions, load, train};
use milan_shared::{ModelKey, NeuronId};
use milan_trainer::corpus::{Corpus, Neuron};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

const COLOURS: [&str; 3] = ["red", "green", "blue"];
const SHAPES: [&str; 3] = ["circles", "squares", "stars"];
const K: usize = 4;
const DIMS: usize = 8;

/// The backend's random stream (weight init, dropout) is shared by the process: runs that must
/// reproduce each other do not overlap with other tests' runs.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// 45 neurons: colour and shape one-hot in the features (with noise), described as
/// "bright <colour> <shape> everywhere" by all three annotators.
fn toy_corpus() -> Corpus {
    toy_corpus_with(false)
}

/// With `mislabel_validation`, the validation neurons (every fifth) are described with the next
/// colour: nothing learnable predicts them, so the validation loss rises as training goes on.
fn toy_corpus_with(mislabel_validation: bool) -> Corpus {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut noise = move || (rng.next_u32() as f32 / u32::MAX as f32 - 0.5) * 0.2;
    let key: ModelKey = "alexnet/imagenet".parse().expect("key");
    let mut neurons = Vec::new();
    for unit in 0..45u32 {
        let (c, s) = ((unit % 3) as usize, ((unit / 3) % 3) as usize);
        let mut features = Vec::with_capacity(K * DIMS);
        for _ in 0..K {
            for d in 0..DIMS {
                let on = d == c || d == 3 + s;
                features.push(if on { 1.0 } else { 0.0 } + noise());
            }
        }
        let named = if mislabel_validation && unit % 5 == 0 {
            (c + 1) % 3
        } else {
            c
        };
        let text = format!("bright {} {} everywhere", COLOURS[named], SHAPES[s]);
        let descriptions = vec![text.clone(); 3];
        let tokens = descriptions
            .iter()
            .map(|d| milan_shared::tokenize::tokenize(d))
            .collect();
        neurons.push(Neuron {
            id: NeuronId::new(key.clone(), "conv1", unit),
            features,
            descriptions,
            tokens,
            label: None,
        });
    }
    Corpus {
        neurons,
        k: K,
        dims: DIMS,
        encoder: "toy".into(),
    }
}

fn small_config(max_epochs: usize) -> MilanConfig {
    MilanConfig {
        embedding: 16,
        hidden: 32,
        lm_embedding: 16,
        lm_hidden: 32,
        dropout: 0.1,
        lm_dropout: 0.1,
        batch: 16,
        lm_batch: 16,
        learning_rate: 1e-2,
        max_epochs,
        lm_max_epochs: max_epochs,
        patience: 100,
        lm_patience: 100,
        decode: DecodeConfig {
            beam: 5,
            ..DecodeConfig::default()
        },
        ..MilanConfig::default()
    }
}

fn options(config: MilanConfig, resume: bool) -> RunOptions {
    RunOptions {
        config,
        seed: 3,
        resume,
        backend: "flex".into(),
        quiet: true,
        init: None,
    }
}

fn split() -> (Vec<usize>, Vec<usize>) {
    let train: Vec<usize> = (0..45).filter(|i| i % 5 != 0).collect();
    let validation: Vec<usize> = (0..45).filter(|i| i % 5 == 0).collect();
    (train, validation)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn learns_the_toy_task_and_writes_a_loadable_checkpoint() {
    let _serial = serial();
    let corpus = toy_corpus();
    let (train_pos, val_pos) = split();
    let dir = tempfile::tempdir().expect("tempdir");
    let device = Device::flex();
    let trained = train(
        &corpus,
        &train_pos,
        &val_pos,
        dir.path(),
        &options(small_config(25), false),
        &device,
    )
    .expect("training");
    let history = &trained.history.captioner;
    assert_eq!(history.len(), 25);
    assert!(
        history.last().expect("epochs").train_loss < history[0].train_loss * 0.5,
        "the loss falls: {history:?}"
    );
    let best = milan_model::train::History::best(history, false).expect("best");
    assert!(
        best.validation > 50.0,
        "validation BLEU {}",
        best.validation
    );
    for file in [
        "config.json",
        "vocab.json",
        "captioner.bpk",
        "lm.bpk",
        "history.json",
    ] {
        assert!(dir.path().join(file).is_file(), "{file} written");
    }
    // The checkpoint reloads to the same predictions.
    let loaded = load(dir.path(), &device).expect("load");
    let f = corpus.features(&val_pos, &device);
    let a = greedy(&trained.captioner, f.clone());
    let b = greedy(&loaded.captioner, f.clone());
    assert_eq!(a, b);
    let text: Vec<String> = a.iter().map(|ids| loaded.vocab.decode(ids)).collect();
    let right = val_pos
        .iter()
        .zip(&text)
        .filter(|(p, t)| &corpus.neurons[**p].descriptions[0] == *t)
        .count();
    assert!(
        right * 10 >= val_pos.len() * 8,
        "greedy gets most held-out neurons right: {text:?}"
    );
    let pmi = milan_pmi(&loaded.captioner, &loaded.lm, f, &loaded.info.config.decode);
    assert_eq!(pmi.len(), val_pos.len());
}

#[test]
fn early_stopping_restores_the_best_epoch() {
    use milan_model::train::EarlyStopping;
    let _serial = serial();
    let corpus = toy_corpus_with(true);
    let (train_pos, val_pos) = split();
    let device = Device::flex();
    for mode in [EarlyStopping::Best, EarlyStopping::Loss] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = small_config(40);
        config.patience = 2;
        config.lm_patience = 2;
        config.early_stopping = mode;
        let trained = train(
            &corpus,
            &train_pos,
            &val_pos,
            dir.path(),
            &options(config, false),
            &device,
        )
        .expect("training");
        let history = &trained.history.captioner;
        assert!(
            history.len() < 40,
            "{mode:?}: stopped early after {} epochs",
            history.len()
        );
        let best = trained.history.best_captioner().expect("best");
        assert_eq!(
            history.len(),
            best.epoch + 2,
            "{mode:?}: patience 2 after the best epoch"
        );
        if mode == EarlyStopping::Loss {
            let lowest = history
                .iter()
                .map(|e| e.validation_loss)
                .fold(f64::INFINITY, f64::min);
            assert_eq!(best.validation_loss, lowest, "the lowest validation loss");
        }
        let bleu = milan_model::train::validation_bleu(
            &trained.captioner,
            &corpus,
            &trained.vocab,
            &val_pos,
            &device,
        );
        assert!(
            (bleu - best.validation).abs() < 1e-9,
            "{mode:?}: the kept weights are the best epoch's"
        );
    }
}

#[test]
fn a_seed_reproduces_a_run_and_resume_continues_it_exactly() {
    let _serial = serial();
    let corpus = toy_corpus();
    let (train_pos, val_pos) = split();
    let device = Device::flex();
    let whole = tempfile::tempdir().expect("tempdir");
    let a = train(
        &corpus,
        &train_pos,
        &val_pos,
        whole.path(),
        &options(small_config(6), false),
        &device,
    )
    .expect("training");
    let again = tempfile::tempdir().expect("tempdir");
    let b = train(
        &corpus,
        &train_pos,
        &val_pos,
        again.path(),
        &options(small_config(6), false),
        &device,
    )
    .expect("training");
    let numbers = |h: &milan_model::train::History| -> Vec<(usize, f64, f64, f64)> {
        h.captioner
            .iter()
            .chain(&h.language_model)
            .map(|e| (e.epoch, e.train_loss, e.validation, e.validation_loss))
            .collect()
    };
    assert_eq!(
        numbers(&a.history),
        numbers(&b.history),
        "same seed, same run"
    );

    // Stopped after 3 epochs (as a killed run leaves its last whole epoch), then resumed to 6.
    let split_run = tempfile::tempdir().expect("tempdir");
    train(
        &corpus,
        &train_pos,
        &val_pos,
        split_run.path(),
        &options(small_config(3), false),
        &device,
    )
    .expect("first half");
    let resumed = train(
        &corpus,
        &train_pos,
        &val_pos,
        split_run.path(),
        &options(small_config(6), true),
        &device,
    )
    .expect("resumed");
    assert_eq!(resumed.history.captioner.len(), 6);
    for (x, y) in a.history.captioner.iter().zip(&resumed.history.captioner) {
        assert!((x.train_loss - y.train_loss).abs() < 1e-6, "{x:?} vs {y:?}");
        assert!(
            (x.validation_loss - y.validation_loss).abs() < 1e-6,
            "{x:?} vs {y:?}"
        );
    }
    assert_eq!(
        read(&whole.path().join("vocab.json")),
        read(&split_run.path().join("vocab.json"))
    );

    // Resuming with other numbers than the run's is refused.
    let mut other = small_config(6);
    other.hidden = 16;
    let err = train(
        &corpus,
        &train_pos,
        &val_pos,
        split_run.path(),
        &options(other, true),
        &device,
    )
    .expect_err("a different model");
    assert!(err.to_string().contains("different configuration"), "{err}");
}
