//! How the concepts and the look of a network's units depend on the network: its task, its
//! training dataset, its architecture and the depth of the layer.
//!
//! - Depth: early classifier layers lean to colours and patterns, late ones to objects and
//!   relations. Generators run the other way (their first layers are nearest the latent code, their
//!   last nearest the pixels) and lean to textures throughout.
//! - Dataset: imagenet and places365 draw from palettes and shape sets that overlap only in part,
//!   so a captioner trained on one meets words and things it never saw on the other.
//! - Architecture: how early in depth complex concepts appear (sooner in ResNet-152 than in
//!   AlexNet), object size and count, and how coarse the masks are (AlexNet's blobs, ResNet's
//!   finer maps, the ViT's 8-pixel patch grid).

use milan_shared::{ModelKey, Task};

use crate::concept::{Colour, Kind, Shape};

/// Everything that decides what one layer's units look like.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Relative weight of each [`Kind`], in [`Kind::ALL`] order.
    pub kind_weights: [f64; 7],
    pub colours: &'static [Colour],
    pub shapes: &'static [Shape],
    pub background: Background,
    /// Object radius as a fraction of the image side.
    pub object_scale: (f32, f32),
    /// Distractor objects per scene.
    pub distractors: (usize, usize),
    pub mask: MaskStyle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Background {
    /// A light, flat colour with grain (object photos).
    Pastel,
    /// Sky above, ground below (scenes).
    Horizon,
    /// A smooth two-colour gradient (generated images).
    Gradient,
}

/// How a unit's mask is made coarse, like an upsampled activation map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskStyle {
    /// Pooled on a grid this many cells wide, then upsampled smoothly: a blob around the concept.
    Blob { cells: usize },
    /// Pooled on fixed-size patches and upsampled blockily, as a ViT's tokens.
    Patches { patch: usize },
}

const IMAGENET_COLOURS: &[Colour] = &[
    Colour::Red,
    Colour::Green,
    Colour::Blue,
    Colour::Yellow,
    Colour::Orange,
    Colour::Purple,
    Colour::Pink,
];
const PLACES_COLOURS: &[Colour] = &[
    Colour::Red,
    Colour::Green,
    Colour::Blue,
    Colour::Brown,
    Colour::Gray,
    Colour::White,
    Colour::Black,
    Colour::Teal,
];
const IMAGENET_SHAPES: &[Shape] = &[
    Shape::Circle,
    Shape::Triangle,
    Shape::Square,
    Shape::Star,
    Shape::Ring,
    Shape::Cross,
];
const PLACES_SHAPES: &[Shape] = &[
    Shape::Square,
    Shape::Bar,
    Shape::Triangle,
    Shape::Circle,
    Shape::Diamond,
];
const OTHER_COLOURS: &[Colour] = &[
    Colour::Red,
    Colour::Green,
    Colour::Blue,
    Colour::Yellow,
    Colour::Purple,
    Colour::Black,
];
const OTHER_SHAPES: &[Shape] = &[Shape::Circle, Shape::Square, Shape::Triangle, Shape::Cross];

fn lerp(a: &[f64; 7], b: &[f64; 7], t: f64) -> [f64; 7] {
    std::array::from_fn(|i| a[i] * (1.0 - t) + b[i] * t)
}

/// The profile of layer `layer_index` of `layers` layers of `key`. Keys outside the catalog get
/// a classifier's profile and a palette of their own.
pub fn profile(key: &ModelKey, layer_index: usize, layers: usize) -> Profile {
    let depth = if layers > 1 {
        layer_index as f64 / (layers - 1) as f64
    } else {
        0.5
    };
    // Deeper architectures reach complex concepts in earlier layers than AlexNet does.
    let depth = match key.arch() {
        "alexnet" => depth * 0.8,
        "resnet152" => depth.powf(0.7),
        _ => depth,
    };
    let task = key.known().map_or(Task::Classifier, |m| m.task);
    // Weights in Kind::ALL order: colour, pattern, shape, coloured, textured, placed, relation.
    let kind_weights = match task {
        Task::Classifier => lerp(
            &[0.35, 0.35, 0.10, 0.15, 0.05, 0.0, 0.0],
            &[0.02, 0.05, 0.08, 0.25, 0.15, 0.22, 0.23],
            depth,
        ),
        Task::SelfSupervised => lerp(
            &[0.25, 0.25, 0.20, 0.20, 0.05, 0.05, 0.0],
            &[0.02, 0.03, 0.15, 0.20, 0.10, 0.30, 0.20],
            depth,
        ),
        Task::Generator => lerp(
            &[0.02, 0.20, 0.05, 0.18, 0.35, 0.12, 0.08],
            &[0.30, 0.50, 0.02, 0.08, 0.10, 0.0, 0.0],
            depth,
        ),
    };
    let (colours, shapes, background) = match (key.dataset(), task) {
        ("imagenet", Task::Generator) => (IMAGENET_COLOURS, IMAGENET_SHAPES, Background::Gradient),
        ("places365", Task::Generator) => (PLACES_COLOURS, PLACES_SHAPES, Background::Gradient),
        ("imagenet", _) => (IMAGENET_COLOURS, IMAGENET_SHAPES, Background::Pastel),
        ("places365", _) => (PLACES_COLOURS, PLACES_SHAPES, Background::Horizon),
        _ => (OTHER_COLOURS, OTHER_SHAPES, Background::Pastel),
    };
    let (object_scale, distractors) = match key.arch() {
        "alexnet" => ((0.14, 0.22), (1, 3)),
        "resnet152" => ((0.09, 0.15), (2, 5)),
        "biggan" => ((0.12, 0.2), (1, 3)),
        "dino_vits8" => ((0.08, 0.14), (3, 5)),
        _ => ((0.1, 0.18), (2, 4)),
    };
    let mask = match (key.arch(), task) {
        (_, Task::SelfSupervised) => MaskStyle::Patches { patch: 8 },
        // Early layers see small receptive fields (fine maps); late ones coarse, as 7x7 or 13x13.
        ("alexnet", _) => MaskStyle::Blob {
            cells: (27.0 - 14.0 * depth).round() as usize,
        },
        _ => MaskStyle::Blob {
            cells: (56.0 - 49.0 * depth).round() as usize,
        },
    };
    Profile {
        kind_weights,
        colours,
        shapes,
        background,
        object_scale,
        distractors,
        mask,
    }
}

impl Profile {
    /// Mean complexity of the concepts this profile draws (0 = all colours, 6 = all relations).
    pub fn mean_complexity(&self) -> f64 {
        let total: f64 = self.kind_weights.iter().sum();
        Kind::ALL
            .iter()
            .zip(self.kind_weights)
            .map(|(k, w)| k.complexity() as f64 * w)
            .sum::<f64>()
            / total
    }
}

/// The share of each concept [`Kind`] a key's units are drawn from, over its layers weighted by
/// their unit counts: what a split's training and test sets differ by.
pub fn expected_kinds(key: &ModelKey, units_per_layer: usize) -> [f64; 7] {
    let layers = crate::layers_of(key, units_per_layer);
    let mut total = [0f64; 7];
    let mut units = 0f64;
    for (i, (_, n)) in layers.iter().enumerate() {
        let p = profile(key, i, layers.len());
        let sum: f64 = p.kind_weights.iter().sum();
        for (t, w) in total.iter_mut().zip(p.kind_weights) {
            *t += w / sum * *n as f64;
        }
        units += *n as f64;
    }
    total.map(|t| t / units.max(1.0))
}
