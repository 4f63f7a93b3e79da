//! What training records per epoch, and which epoch was best: read by the training loop (to stop
//! early and keep the best weights) and by the plots, neither of which the other needs.

use serde::{Deserialize, Serialize};

/// One epoch of one phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Epoch {
    pub epoch: usize,
    pub train_loss: f64,
    /// Validation BLEU (captioner) or minus the validation loss (language model): higher is
    /// better.
    pub validation: f64,
    /// The validation loss; breaks ties of `validation` (early on, greedy captions can score
    /// BLEU 0 for several epochs while the loss still falls).
    #[serde(default)]
    pub validation_loss: f64,
    pub seconds: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub captioner: Vec<Epoch>,
    pub language_model: Vec<Epoch>,
    /// The captioner's best epoch was chosen by validation loss, not BLEU.
    #[serde(default)]
    pub captioner_by_loss: bool,
}

/// The (score, loss) pair an epoch is ranked by.
pub fn rank(e: &Epoch, by_loss: bool) -> (f64, f64) {
    if by_loss {
        (-e.validation_loss, e.validation_loss)
    } else {
        (e.validation, e.validation_loss)
    }
}

impl History {
    /// The best epoch of a phase: the highest validation score, ties to the lower loss; or the
    /// lowest loss when `by_loss`.
    pub fn best(epochs: &[Epoch], by_loss: bool) -> Option<&Epoch> {
        epochs
            .iter()
            .fold(None, |best: Option<&Epoch>, e| match best {
                Some(b) if !better(rank(e, by_loss), rank(b, by_loss)) => Some(b),
                _ => Some(e),
            })
    }

    /// The captioner's best epoch, as training chose it.
    pub fn best_captioner(&self) -> Option<&Epoch> {
        History::best(&self.captioner, self.captioner_by_loss)
    }
}

/// Whether validation result `a` (score, loss) beats `b`: a higher score, or the same score and a
/// lower loss.
pub fn better(a: (f64, f64), b: (f64, f64)) -> bool {
    a.0 > b.0 || (a.0 == b.0 && a.1 < b.1)
}
