//! Scenes with per-pixel ground truth: stamp photographs (or any cut-outs) pasted on drawn
//! backgrounds, and in some scenes a made-up word written over them ([`crate::corpora::lettering`]); each
//! pixel labelled with the object category under it (the word's box counts as the object
//! category [`TEXT`]), the background pattern where no object covers it, and its colour name.
//!
//! On disk, a scene set is `<dir>/images/NNNN.png`, `<dir>/truth/NNNN.png` and
//! `<dir>/concepts.json`. A truth PNG is RGB: R = object category + 1 (0: none), G = background
//! pattern + 1 where the background shows (0 under an object), B = colour + 1.

use std::path::Path;

use anyhow::{Context, Result, ensure};
use image::{Rgb, RgbImage, RgbaImage};
use indicatif::ProgressBar;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::corpora::lettering;
use crate::corpora::photos::{PATTERNS, background_with_kind, paste_with};
use milan_shared::random::{below_f32 as below, uniform_f32 as uniform};

/// Side of every scene (MILANNOTATIONS' exemplar size).
pub const SIZE: u32 = 224;

/// Colour names, by index; [`colour_of`] maps a pixel onto them.
pub const COLOURS: [&str; 11] = [
    "black", "white", "gray", "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown",
];

/// A stamp's alpha at or above which its pixel counts as the object's.
const OBJECT_ALPHA: f32 = 0.5;

/// The object category of written words: the last of [`Concepts::objects`] when a set has text.
pub const TEXT: &str = "text";

/// Share of scenes with a word written in them.
pub const TEXT_SHARE: f32 = 0.3;

/// The colour name of a pixel: dark, light and unsaturated pixels by value, the rest by hue
/// (orange turns brown when dark).
pub fn colour_of(p: [u8; 3]) -> usize {
    let [r, g, b] = p.map(|c| f32::from(c) / 255.0);
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let v = max;
    let s = if max > 0.0 { (max - min) / max } else { 0.0 };
    if v < 0.2 {
        return 0;
    }
    if s < 0.2 {
        return if v > 0.8 { 1 } else { 2 };
    }
    let d = max - min;
    let h = if max == r {
        60.0 * ((g - b) / d).rem_euclid(6.0)
    } else if max == g {
        60.0 * ((b - r) / d + 2.0)
    } else {
        60.0 * ((r - g) / d + 4.0)
    };
    match h {
        h if !(15.0..345.0).contains(&h) => 3,
        h if h < 45.0 => {
            if v < 0.6 {
                10
            } else {
                4
            }
        }
        h if h < 70.0 => 5,
        h if h < 170.0 => 6,
        h if h < 260.0 => 7,
        h if h < 300.0 => 8,
        _ => 9,
    }
}

/// What each truth value means: object categories by name, then [`PATTERNS`] and [`COLOURS`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Concepts {
    pub objects: Vec<String>,
    pub patterns: Vec<String>,
    pub colours: Vec<String>,
}

impl Concepts {
    pub fn new(objects: Vec<String>) -> Concepts {
        Concepts {
            objects,
            patterns: PATTERNS.iter().map(|s| (*s).to_owned()).collect(),
            colours: COLOURS.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// The stamp categories and the [`TEXT`] category after them.
    pub fn with_text(mut objects: Vec<String>) -> Concepts {
        objects.push(TEXT.to_owned());
        Concepts::new(objects)
    }

    /// The index of the [`TEXT`] category, when the set has one.
    pub fn text(&self) -> Option<usize> {
        self.objects.iter().position(|o| o == TEXT)
    }

    /// Object categories drawn from stamps (every one but [`TEXT`]).
    pub fn stamp_categories(&self) -> usize {
        self.objects.len() - usize::from(self.text().is_some())
    }

    pub fn len(&self) -> usize {
        self.objects.len() + self.patterns.len() + self.colours.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The concept at a flat index: (kind, name).
    pub fn get(&self, index: usize) -> (ConceptKind, &str) {
        let (o, p) = (self.objects.len(), self.patterns.len());
        if index < o {
            (ConceptKind::Object, &self.objects[index])
        } else if index < o + p {
            (ConceptKind::Pattern, &self.patterns[index - o])
        } else {
            (ConceptKind::Colour, &self.colours[index - o - p])
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConceptKind {
    Object,
    Pattern,
    Colour,
}

impl ConceptKind {
    /// The name `labels.csv` and serde use.
    pub fn name(self) -> &'static str {
        match self {
            ConceptKind::Object => "object",
            ConceptKind::Pattern => "pattern",
            ConceptKind::Colour => "colour",
        }
    }
}

/// One scene's ground truth, a value per pixel (row-major, SIZE x SIZE).
#[derive(Debug, Clone, PartialEq)]
pub struct Truth {
    /// Object category + 1, 0 where no object.
    pub objects: Vec<u8>,
    /// The background's pattern (the whole scene has one).
    pub pattern: u8,
    pub colours: Vec<u8>,
}

impl Truth {
    /// Whether pixel `i` shows concept `c` (a flat index of [`Concepts`]).
    pub fn shows(&self, concepts: &Concepts, c: usize, i: usize) -> bool {
        let (o, p) = (concepts.objects.len(), concepts.patterns.len());
        if c < o {
            usize::from(self.objects[i]) == c + 1
        } else if c < o + p {
            self.objects[i] == 0 && usize::from(self.pattern) == c - o
        } else {
            usize::from(self.colours[i]) == c - o - p
        }
    }

    pub fn to_png(&self) -> RgbImage {
        RgbImage::from_fn(SIZE, SIZE, |x, y| {
            let i = (y * SIZE + x) as usize;
            let bg = if self.objects[i] == 0 {
                self.pattern + 1
            } else {
                0
            };
            Rgb([self.objects[i], bg, self.colours[i] + 1])
        })
    }

    pub fn from_png(img: &RgbImage, file: &Path) -> Result<Truth> {
        ensure!(
            img.dimensions() == (SIZE, SIZE),
            "{}: truth is {:?}, not {SIZE}x{SIZE}",
            file.display(),
            img.dimensions()
        );
        let mut pattern = None;
        let mut objects = Vec::with_capacity((SIZE * SIZE) as usize);
        let mut colours = Vec::with_capacity((SIZE * SIZE) as usize);
        for (x, y, p) in img.enumerate_pixels() {
            ensure!(
                p[2] >= 1 && usize::from(p[2]) <= COLOURS.len(),
                "{}: pixel ({x}, {y}) has no colour",
                file.display()
            );
            objects.push(p[0]);
            colours.push(p[2] - 1);
            if p[1] > 0 {
                pattern = Some(p[1] - 1);
            }
        }
        Ok(Truth {
            objects,
            // A scene covered edge to edge by objects shows no pattern; any value is as good.
            pattern: pattern.unwrap_or(0),
            colours,
        })
    }
}

/// A cut-out to paste: its category (an index of [`Concepts::objects`]) and its pixels.
#[derive(Debug, Clone)]
pub struct Stamp {
    pub category: usize,
    pub image: RgbaImage,
}

/// Draws scene `i` of a set: a background, then one stamp (two in a third of the scenes), each
/// 35-85% of the side, placed at random (partly off the edge at times); then, when the set has a
/// text category, a made-up word of 3-7 letters in [`TEXT_SHARE`] of the scenes, 16-32 pixels
/// high, black or white against what is under it, wholly inside the scene; its box is labelled
/// text.
pub fn draw(
    stamps: &[Stamp],
    categories: usize,
    text: Option<usize>,
    seed: u64,
    i: usize,
) -> (RgbImage, Truth) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let (mut canvas, pattern) = background_with_kind(&mut rng);
    let mut objects = vec![0u8; (SIZE * SIZE) as usize];
    let count = 1 + usize::from(uniform(&mut rng) < 0.35);
    for _ in 0..count {
        // A category first, then a stamp of it: categories are equally likely however many
        // stamps each has.
        let category = below(&mut rng, categories);
        let of: Vec<&Stamp> = stamps.iter().filter(|s| s.category == category).collect();
        let stamp = of[below(&mut rng, of.len())];
        place_stamp(&mut rng, &mut canvas, stamp, |i| {
            objects[i] = (category + 1) as u8;
        });
    }
    if let Some(text) = text
        && uniform(&mut rng) < TEXT_SHARE
    {
        let word = lettering::random_word(&mut rng, 3, 7);
        let scale = 2 + below(&mut rng, 3) as u32;
        let (w, h) = lettering::extent(&word, scale);
        let (x, y) = lettering::random_place(&mut rng, SIZE, w, h);
        let colour = lettering::contrasting(&canvas, x, y, w, h);
        lettering::draw(&mut canvas, &word, x, y, scale, colour);
        for py in y..y + i64::from(h) {
            for px in x..x + i64::from(w) {
                objects[(py as u32 * SIZE + px as u32) as usize] = (text + 1) as u8;
            }
        }
    }
    let colours = canvas.pixels().map(|p| colour_of(p.0) as u8).collect();
    (
        canvas,
        Truth {
            objects,
            pattern: pattern as u8,
            colours,
        },
    )
}

/// Pastes `stamp` at a random size (35-85% of the side) and place (partly off the edge at
/// times), calling `object` with the index of every pixel that shows it.
pub fn place_stamp(
    rng: &mut ChaCha8Rng,
    canvas: &mut RgbImage,
    stamp: &Stamp,
    mut object: impl FnMut(usize),
) {
    let side = (SIZE as f32 * (0.35 + 0.5 * uniform(rng))) as u32;
    let x = (uniform(rng) * (SIZE - side / 2) as f32) as i64 - i64::from(side / 4);
    let y = (uniform(rng) * (SIZE - side / 2) as f32) as i64 - i64::from(side / 4);
    paste_with(canvas, &stamp.image, side, x, y, |cx, cy, alpha| {
        if alpha >= OBJECT_ALPHA {
            object((cy * SIZE + cx) as usize);
        }
    });
}

/// Writes `n` scenes and their truth under `dir` (a temporary sibling renamed into place).
pub fn write_set(
    dir: &Path,
    stamps: &[Stamp],
    concepts: &Concepts,
    n: usize,
    seed: u64,
    bar: &ProgressBar,
) -> Result<()> {
    let categories = concepts.stamp_categories();
    ensure!(
        (0..categories).all(|c| stamps.iter().any(|s| s.category == c)),
        "every object category needs at least one stamp"
    );
    let parent = dir.parent().context("a scene folder has a parent")?;
    std::fs::create_dir_all(parent)?;
    let tmp = tempfile::Builder::new()
        .prefix(".scenes.tmp-")
        .tempdir_in(parent)?;
    std::fs::create_dir_all(tmp.path().join("images"))?;
    std::fs::create_dir_all(tmp.path().join("truth"))?;
    for i in 0..n {
        let (img, truth) = draw(stamps, categories, concepts.text(), seed, i);
        img.save(tmp.path().join("images").join(format!("{i:05}.png")))?;
        truth
            .to_png()
            .save(tmp.path().join("truth").join(format!("{i:05}.png")))?;
        bar.inc(1);
    }
    std::fs::write(
        tmp.path().join("concepts.json"),
        serde_json::to_vec_pretty(concepts)?,
    )?;
    milan_shared::atomic::publish_dir(&tmp.keep(), dir)?;
    Ok(())
}

/// A written scene set, read back: concepts and every scene's truth (ids index the sorted
/// `images/` listing, which is the scene order).
#[derive(Debug)]
pub struct SceneSet {
    pub concepts: Concepts,
    pub truths: Vec<Truth>,
}

impl SceneSet {
    pub fn open(dir: &Path) -> Result<SceneSet> {
        let path = dir.join("concepts.json");
        let concepts: Concepts = serde_json::from_slice(
            &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("{}", path.display()))?;
        let mut files: Vec<_> = std::fs::read_dir(dir.join("truth"))
            .with_context(|| format!("reading {}/truth", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "png"))
            .collect();
        files.sort();
        let truths = files
            .iter()
            .map(|f| {
                let img = image::open(f)
                    .with_context(|| format!("reading {}", f.display()))?
                    .to_rgb8();
                Truth::from_png(&img, f)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(SceneSet { concepts, truths })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_are_named_as_people_name_them() {
        let cases = [
            ([0, 0, 0], "black"),
            ([250, 250, 250], "white"),
            ([128, 128, 128], "gray"),
            ([220, 20, 30], "red"),
            ([250, 140, 0], "orange"),
            ([120, 70, 10], "brown"),
            ([240, 230, 20], "yellow"),
            ([30, 200, 40], "green"),
            ([20, 60, 220], "blue"),
            ([140, 30, 200], "purple"),
            ([240, 60, 180], "pink"),
        ];
        for (p, name) in cases {
            assert_eq!(COLOURS[colour_of(p)], name, "{p:?}");
        }
    }

    #[test]
    fn truth_marks_the_stamp_and_the_background_around_it() {
        // One category: an opaque red square with a transparent border.
        let image = RgbaImage::from_fn(20, 20, |x, y| {
            let inside = (5..15).contains(&x) && (5..15).contains(&y);
            image::Rgba([230, 20, 20, if inside { 255 } else { 0 }])
        });
        let stamps = [Stamp { category: 0, image }];
        let concepts = Concepts::new(vec!["squares".into()]);
        let (img, truth) = draw(&stamps, 1, None, 7, 3);
        let red = concepts.objects.len() + concepts.patterns.len() + 3;
        let (mut object, mut exact) = (0, 0);
        for i in 0..(SIZE * SIZE) as usize {
            let p = img.get_pixel(i as u32 % SIZE, i as u32 / SIZE).0;
            if truth.objects[i] == 1 {
                object += 1;
                // Edge pixels blend with the background (alpha >= 0.5 counts as the object).
                exact += usize::from(p == [230, 20, 20]);
                if p == [230, 20, 20] {
                    assert!(truth.shows(&concepts, red, i));
                }
                assert!(truth.shows(&concepts, 0, i));
                assert!(!truth.shows(&concepts, 1 + usize::from(truth.pattern), i));
            } else {
                assert!(truth.shows(&concepts, 1 + usize::from(truth.pattern), i));
            }
            assert_eq!(usize::from(truth.colours[i]), colour_of(p));
        }
        assert!(object > 100, "the stamp shows ({object} pixels)");
        // An upscaled 20-pixel stamp ramps its alpha over a few pixels at the edge.
        assert!(
            exact * 4 >= object * 3,
            "{exact} of {object} object pixels are the stamp's"
        );
        // Round trip through the PNG.
        let back = Truth::from_png(&truth.to_png(), Path::new("t.png")).unwrap();
        assert_eq!(back, truth);
    }

    #[test]
    fn words_are_written_in_some_scenes_and_their_boxes_are_text() {
        let image = RgbaImage::from_pixel(20, 20, image::Rgba([20, 120, 230, 255]));
        let stamps = [Stamp { category: 0, image }];
        let concepts = Concepts::with_text(vec!["squares".into()]);
        assert_eq!(concepts.text(), Some(1));
        assert_eq!(concepts.stamp_categories(), 1);
        let n = 200;
        let mut with_text = 0;
        for i in 0..n {
            let (img, truth) = draw(&stamps, 1, concepts.text(), 11, i);
            let boxed: Vec<usize> = (0..(SIZE * SIZE) as usize)
                .filter(|&p| truth.shows(&concepts, 1, p))
                .collect();
            if boxed.is_empty() {
                continue;
            }
            with_text += 1;
            // The box is a rectangle 16-32 pixels high holding black or white letters.
            let (x0, y0) = (boxed[0] as u32 % SIZE, boxed[0] as u32 / SIZE);
            let last = *boxed.last().unwrap();
            let (x1, y1) = (last as u32 % SIZE, last as u32 / SIZE);
            let (w, h) = (x1 - x0 + 1, y1 - y0 + 1);
            assert_eq!(boxed.len() as u32, w * h, "scene {i}: one rectangle");
            assert!([16, 24, 32].contains(&h), "scene {i}: {h} pixels high");
            assert_eq!(w % h, 0, "scene {i}: whole letters");
            let inked = boxed
                .iter()
                .filter(|&&p| {
                    let c = img.get_pixel(p as u32 % SIZE, p as u32 / SIZE).0;
                    c == [0, 0, 0] || c == [255, 255, 255]
                })
                .count();
            assert!(inked * 10 >= boxed.len(), "scene {i}: letters in the box");
        }
        // 30% of 200 scenes, give or take three standard deviations.
        assert!(
            (40..=80).contains(&with_text),
            "{with_text} scenes with text"
        );
        // Without a text category nothing is written.
        let (_, truth) = draw(&stamps, 1, None, 11, 0);
        assert!(truth.objects.iter().all(|&o| o <= 1));
    }
}
