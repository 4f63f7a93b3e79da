//! NetDissect-style labels (Bau et al. 2017) of a unit from its exemplars: the IoU of the unit's
//! masks with each concept's ground truth, summed over the exemplar images,
//! `IoU(u, c) = sum_i |M_i & C_i| / sum_i |M_i | C_i|`, and where in the image the unit fires.
//!
//! NetDissect sums over the whole probe dataset; here the sums run over the unit's 15 exemplars,
//! the images a describer sees.

use serde::{Deserialize, Serialize};

use super::scenes::{Concepts, SIZE, Truth};
use crate::corpora::grounded::compexp::Cells;

/// Where the masks sit in the image, when they sit in one part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Place {
    Top,
    Bottom,
    Left,
    Right,
    Centre,
}

impl Place {
    pub fn name(self) -> &'static str {
        match self {
            Place::Top => "top",
            Place::Bottom => "bottom",
            Place::Left => "left",
            Place::Right => "right",
            Place::Centre => "centre",
        }
    }
}

/// A unit's labels: concepts by IoU (highest first), its mean mask area and place.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    /// (concept index, IoU), every concept with a positive IoU, highest first (ties to the lower
    /// index).
    pub ious: Vec<(usize, f64)>,
    /// Fraction of the exemplar pixels inside the masks.
    pub area: f64,
    pub place: Option<Place>,
}

impl Label {
    pub fn top(&self) -> Option<(usize, f64)> {
        self.ious.first().copied()
    }
}

/// Calls `f(pixel index, place concept, colour concept, inside the mask)` for every pixel of the
/// exemplars `ids` (masks SIZE x SIZE each, nonzero = inside). Every pixel shows exactly two
/// concepts: an object or the background pattern, and a colour.
fn for_each_pixel(
    concepts: &Concepts,
    truths: &[Truth],
    masks: &[u8],
    ids: &[u64],
    mut f: impl FnMut(usize, usize, usize, bool),
) {
    let n = (SIZE * SIZE) as usize;
    let o = concepts.objects.len();
    let colour0 = o + concepts.patterns.len();
    for (k, &id) in ids.iter().enumerate() {
        let truth = &truths[id as usize];
        let mask = &masks[k * n..(k + 1) * n];
        for (i, &m) in mask.iter().enumerate() {
            let place = if truth.objects[i] > 0 {
                usize::from(truth.objects[i]) - 1
            } else {
                o + usize::from(truth.pattern)
            };
            f(i, place, colour0 + usize::from(truth.colours[i]), m != 0);
        }
    }
}

/// Labels one unit from its `k` masks (SIZE x SIZE each, nonzero = inside) over the scenes `ids`.
pub fn label(concepts: &Concepts, truths: &[Truth], masks: &[u8], ids: &[u64]) -> Label {
    let n = (SIZE * SIZE) as usize;
    let mut inter = vec![0u64; concepts.len()];
    let mut area = vec![0u64; concepts.len()];
    let mut mask_area = 0u64;
    let (mut sx, mut sy) = (0f64, 0f64);
    for_each_pixel(concepts, truths, masks, ids, |i, place, colour, masked| {
        area[place] += 1;
        area[colour] += 1;
        if masked {
            mask_area += 1;
            inter[place] += 1;
            inter[colour] += 1;
            sx += (i % SIZE as usize) as f64;
            sy += (i / SIZE as usize) as f64;
        }
    });
    let mut ious: Vec<(usize, f64)> = (0..concepts.len())
        .filter(|&c| inter[c] > 0)
        .map(|c| {
            let union = mask_area + area[c] - inter[c];
            (c, inter[c] as f64 / union as f64)
        })
        .collect();
    ious.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let total = (n * ids.len()).max(1) as f64;
    let fraction = mask_area as f64 / total;
    let place = (mask_area > 0 && fraction < 0.25).then(|| {
        let half = f64::from(SIZE) / 2.0;
        let (cx, cy) = (
            sx / mask_area as f64 - half + 0.5,
            sy / mask_area as f64 - half + 0.5,
        );
        let off = f64::from(SIZE) / 6.0;
        if cx.abs() < off && cy.abs() < off {
            Place::Centre
        } else if cy.abs() >= cx.abs() {
            if cy < 0.0 { Place::Top } else { Place::Bottom }
        } else if cx < 0.0 {
            Place::Left
        } else {
            Place::Right
        }
    });
    Label {
        ious,
        area: fraction,
        place,
    }
}

/// The pixels of a unit's exemplars grouped by the two concepts each shows (its object or
/// background pattern, and its colour), with how many lie in the unit's masks: what CompExp's
/// formula search needs ([`crate::corpora::grounded::compexp`]).
pub fn cells(concepts: &Concepts, truths: &[Truth], masks: &[u8], ids: &[u64]) -> Cells {
    let mut counts: std::collections::BTreeMap<(usize, usize), (u64, u64)> = Default::default();
    for_each_pixel(concepts, truths, masks, ids, |_, place, colour, masked| {
        let cell = counts.entry((place, colour)).or_default();
        cell.1 += 1;
        if masked {
            cell.0 += 1;
        }
    });
    Cells {
        cells: counts
            .into_iter()
            .map(|((place, colour), (masked, total))| (vec![place, colour], masked, total))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: usize = (SIZE * SIZE) as usize;

    fn concepts() -> Concepts {
        Concepts::new(vec!["dogs".into(), "cars".into()])
    }

    /// A scene: `dog` pixels (indices) are a dog, the rest stripes; all red except `blue`.
    fn scene(dog: &[usize], blue: &[usize]) -> Truth {
        let mut objects = vec![0u8; N];
        let mut colours = vec![3u8; N];
        for &i in dog {
            objects[i] = 1;
        }
        for &i in blue {
            colours[i] = 7;
        }
        Truth {
            objects,
            pattern: 2,
            colours,
        }
    }

    #[test]
    fn iou_sums_intersections_and_unions_over_the_exemplars() {
        let c = concepts();
        // Scene 0: dog on pixels 0..100, mask on 50..150 -> inter 50.
        // Scene 1: dog on pixels 0..100, mask on 0..100  -> inter 100.
        let truths = [
            scene(&(0..100).collect::<Vec<_>>(), &[]),
            scene(&(0..100).collect::<Vec<_>>(), &(0..40).collect::<Vec<_>>()),
        ];
        let mut masks = vec![0u8; 2 * N];
        masks[50..150].iter_mut().for_each(|m| *m = 1);
        masks[N..N + 100].iter_mut().for_each(|m| *m = 1);
        let label = label(&c, &truths, &masks, &[0, 1]);
        let iou = |concept: usize| {
            label
                .ious
                .iter()
                .find(|(k, _)| *k == concept)
                .map_or(0.0, |x| x.1)
        };
        // dogs: inter 150, |M| 200, |C| 200 -> 150 / 250.
        assert!((iou(0) - 150.0 / 250.0).abs() < 1e-12);
        // stripes (index 2 + 2): background pixels under the mask: 50 in scene 0 -> union
        // 200 + (2N - 200) - 50.
        let stripes = 2 + 2;
        assert!((iou(stripes) - 50.0 / (2.0 * N as f64 - 50.0)).abs() < 1e-12);
        // blue (2 + 5 + 7): 40 pixels, all under the mask in scene 1 -> 40 / 200.
        assert!((iou(2 + 5 + 7) - 40.0 / 200.0).abs() < 1e-12);
        // red: 160 of the masked pixels, |C| = 2N - 40.
        assert!((iou(2 + 5 + 3) - 160.0 / (2.0 * N as f64 - 40.0 + 200.0 - 160.0)).abs() < 1e-12);
        assert_eq!(label.top(), Some((0, 0.6)));
        assert_eq!(iou(1), 0.0, "no car anywhere");
        assert!(label.ious.iter().all(|(k, _)| *k != 1));
        assert_eq!(
            label.place,
            Some(Place::Top),
            "the masks are the first rows"
        );
        // CompExp's cells give every concept alone the IoU the label gives it.
        let cells = cells(&c, &truths, &masks, &[0, 1]);
        for concept in 0..c.len() {
            let got = cells.iou(&crate::corpora::grounded::compexp::Formula::Leaf(concept));
            assert!((got - iou(concept)).abs() < 1e-12, "concept {concept}");
        }
    }

    #[test]
    fn places_follow_the_centre_of_the_masks() {
        let c = concepts();
        let truths = [scene(&[], &[])];
        let at = |x0: u32, y0: u32| {
            let mut m = vec![0u8; N];
            for y in y0..y0 + 20 {
                for x in x0..x0 + 20 {
                    m[(y * SIZE + x) as usize] = 1;
                }
            }
            label(&c, &truths, &m, &[0]).place
        };
        assert_eq!(at(102, 102), Some(Place::Centre));
        assert_eq!(at(102, 200), Some(Place::Bottom));
        assert_eq!(at(0, 102), Some(Place::Left));
        assert_eq!(at(200, 90), Some(Place::Right));
        let all = vec![1u8; N];
        assert_eq!(
            label(&c, &truths, &all, &[0]).place,
            None,
            "a mask over everything"
        );
        assert_eq!(label(&c, &truths, &vec![0u8; N], &[0]).ious, vec![]);
    }
}
