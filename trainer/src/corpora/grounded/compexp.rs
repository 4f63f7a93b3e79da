//! Compositional explanations (Mu & Andreas, "Compositional Explanations of Neurons", NeurIPS
//! 2020), the paper's CompExp baseline: a unit's label is the logical formula of up to three
//! concepts, joined by AND, OR and AND NOT, whose pixels overlap the unit's masks best by IoU,
//! found by beam search (beam 5, as their vision experiments run it): the best single concepts
//! first, then each formula of the beam extended by one more concept with each operator, the
//! best five kept at every length.
//!
//! IoU is NetDissect's, summed over images: `sum |M & F| / sum |M | F|`. What a formula covers
//! depends only on which concepts each pixel shows, so the search runs over [`Cells`]: the
//! pixels grouped by the concepts they show, with how many of them lie in the unit's masks.
//!
//! How the labels are rendered as text for scoring: `crate::evaluation::labels`.

use std::collections::BTreeSet;

/// Formulas kept at each length.
pub const BEAM: usize = 5;

/// Concepts in a formula at most.
pub const MAX_LENGTH: usize = 3;

/// A logical formula over concept indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Formula {
    Leaf(usize),
    Not(Box<Formula>),
    And(Box<Formula>, Box<Formula>),
    Or(Box<Formula>, Box<Formula>),
}

impl Formula {
    fn holds(&self, shown: &[usize]) -> bool {
        match self {
            Formula::Leaf(c) => shown.contains(c),
            Formula::Not(f) => !f.holds(shown),
            Formula::And(a, b) => a.holds(shown) && b.holds(shown),
            Formula::Or(a, b) => a.holds(shown) || b.holds(shown),
        }
    }

    /// The concepts the formula names.
    pub fn leaves(&self) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        let mut stack = vec![self];
        while let Some(f) = stack.pop() {
            match f {
                Formula::Leaf(c) => {
                    out.insert(*c);
                }
                Formula::Not(x) => stack.push(x),
                Formula::And(a, b) | Formula::Or(a, b) => {
                    stack.push(a);
                    stack.push(b);
                }
            }
        }
        out
    }

    /// CompExp's string of the formula: `(a OR b)`, `(a AND b)`, `(NOT a)`.
    pub fn render(&self, name: &dyn Fn(usize) -> String) -> String {
        match self {
            Formula::Leaf(c) => name(*c),
            Formula::Not(f) => format!("(NOT {})", f.render(name)),
            Formula::And(a, b) => format!("({} AND {})", a.render(name), b.render(name)),
            Formula::Or(a, b) => format!("({} OR {})", a.render(name), b.render(name)),
        }
    }
}

/// Pixels grouped by the concepts they show.
#[derive(Debug, Clone, Default)]
pub struct Cells {
    /// (concepts shown, pixels inside the unit's masks, pixels).
    pub cells: Vec<(Vec<usize>, u64, u64)>,
}

impl Cells {
    fn mask_area(&self) -> u64 {
        self.cells.iter().map(|c| c.1).sum()
    }

    /// IoU of the pixels where `f` holds with the masks.
    pub fn iou(&self, f: &Formula) -> f64 {
        let (mut inter, mut area) = (0u64, 0u64);
        for (shown, masked, total) in &self.cells {
            if f.holds(shown) {
                inter += masked;
                area += total;
            }
        }
        let union = self.mask_area() + area - inter;
        if union == 0 {
            0.0
        } else {
            inter as f64 / union as f64
        }
    }
}

/// The best formula of up to [`MAX_LENGTH`] of `concepts` concepts by beam search, with its IoU;
/// `None` when nothing overlaps the masks. Ties go to fewer concepts, then to the first string.
pub fn explain(
    cells: &Cells,
    concepts: usize,
    name: &dyn Fn(usize) -> String,
) -> Option<(Formula, f64)> {
    let rank = |pool: Vec<Formula>| -> Vec<(Formula, f64)> {
        let mut scored: Vec<(Formula, f64, String)> = pool
            .into_iter()
            .map(|f| {
                let iou = cells.iou(&f);
                let text = f.render(name);
                (f, iou, text)
            })
            .collect();
        // Ties go to the shorter formula, then to the first string.
        scored.sort_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then_with(|| a.0.leaves().len().cmp(&b.0.leaves().len()))
                .then_with(|| a.2.cmp(&b.2))
        });
        scored.dedup_by(|a, b| a.2 == b.2);
        scored.truncate(BEAM);
        scored.into_iter().map(|(f, iou, _)| (f, iou)).collect()
    };
    let mut beam = rank((0..concepts).map(Formula::Leaf).collect());
    for _ in 1..MAX_LENGTH {
        let mut pool: Vec<Formula> = beam.iter().map(|(f, _)| f.clone()).collect();
        for (f, _) in &beam {
            let used = f.leaves();
            for c in (0..concepts).filter(|c| !used.contains(c)) {
                let leaf = Box::new(Formula::Leaf(c));
                let left = Box::new(f.clone());
                pool.push(Formula::Or(left.clone(), leaf.clone()));
                pool.push(Formula::And(left.clone(), leaf.clone()));
                pool.push(Formula::And(left, Box::new(Formula::Not(leaf))));
            }
        }
        beam = rank(pool);
    }
    beam.into_iter().next().filter(|(_, iou)| *iou > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(c: usize) -> String {
        ["dog", "car", "red", "blue"][c].to_owned()
    }

    #[test]
    fn a_single_concept_that_is_the_mask_wins_alone() {
        // Pixels: dog+red (all masked), car+blue (none masked).
        let cells = Cells {
            cells: vec![(vec![0, 2], 100, 100), (vec![1, 3], 0, 300)],
        };
        let (f, iou) = explain(&cells, 4, &names).unwrap();
        // dog and red both cover the mask exactly; the tie goes to the first string.
        assert_eq!(iou, 1.0);
        assert_eq!(f.render(&names), "dog");
    }

    #[test]
    fn or_and_and_not_are_found_when_they_fit_better() {
        // The mask is dogs and cars, but not red things.
        let cells = Cells {
            cells: vec![
                (vec![0, 3], 50, 50), // blue dog: masked
                (vec![1, 3], 50, 50), // blue car: masked
                (vec![0, 2], 0, 50),  // red dog: not
                (vec![1, 2], 0, 50),  // red car: not
                (vec![2], 0, 400),    // red background
                (vec![3], 0, 400),    // blue background
            ],
        };
        let (f, iou) = explain(&cells, 4, &names).unwrap();
        let text = f.render(&names);
        assert_eq!(iou, 1.0, "{text}");
        // No single concept or pair fits exactly: the formula needs all three of its concepts,
        // and holds on exactly the masked pixels.
        assert_eq!(f.leaves().len(), 3, "{text}");
        for (shown, masked, _) in &cells.cells {
            assert_eq!(f.holds(shown), *masked > 0, "{text} on {shown:?}");
        }
        // Nothing masked: no label.
        let dead = Cells {
            cells: vec![(vec![0], 0, 10)],
        };
        assert!(explain(&dead, 4, &names).is_none());
    }
}
