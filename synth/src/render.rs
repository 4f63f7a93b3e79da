//! Drawing one exemplar: a background, distractor objects that do not match the concept, the
//! concept's objects on top, grain, and the mask over the concept made coarse like an upsampled
//! activation map.

use rand_chacha::ChaCha8Rng;
use rand_core::Rng;

use crate::concept::{Colour, Concept, Object, Position, Relation, Shape, Texture};
use crate::profile::{Background, MaskStyle, Profile};
use crate::random::Draw;

const BACKGROUND: u8 = 0;
const CONCEPT: u8 = 1;
const DISTRACTOR: u8 = 2;

/// One rendered exemplar: RGB planar (3, S, S) and its mask (S, S) of 0/1.
#[derive(Debug)]
pub struct Exemplar {
    pub rgb: Vec<u8>,
    pub mask: Vec<u8>,
}

struct Canvas {
    size: usize,
    rgb: Vec<u8>,
    owner: Vec<u8>,
}

impl Canvas {
    fn set(&mut self, x: usize, y: usize, colour: [u8; 3], owner: u8) {
        let plane = self.size * self.size;
        let i = y * self.size + x;
        for (c, v) in colour.into_iter().enumerate() {
            self.rgb[c * plane + i] = v;
        }
        self.owner[i] = owner;
    }

    fn background(&mut self, style: Background, rng: &mut ChaCha8Rng) {
        let s = self.size;
        let pastel = |rng: &mut ChaCha8Rng| -> [u8; 3] {
            std::array::from_fn(|_| rng.range_usize(185, 235) as u8)
        };
        match style {
            Background::Pastel => {
                let c = pastel(rng);
                for y in 0..s {
                    for x in 0..s {
                        self.set(x, y, c, BACKGROUND);
                    }
                }
            }
            Background::Horizon => {
                let horizon = rng.range_usize(s * 2 / 5, s * 3 / 5);
                let sky = [
                    rng.range_usize(160, 200) as u8,
                    rng.range_usize(195, 225) as u8,
                    rng.range_usize(225, 250) as u8,
                ];
                let ground = [
                    rng.range_usize(170, 200) as u8,
                    rng.range_usize(165, 190) as u8,
                    rng.range_usize(130, 160) as u8,
                ];
                for y in 0..s {
                    for x in 0..s {
                        self.set(x, y, if y < horizon { sky } else { ground }, BACKGROUND);
                    }
                }
            }
            Background::Gradient => {
                let (a, b) = (pastel(rng), pastel(rng));
                let vertical = rng.chance(0.5);
                for y in 0..s {
                    for x in 0..s {
                        let t = if vertical { y } else { x } as f32 / s as f32;
                        let c = std::array::from_fn(|i| {
                            (f32::from(a[i]) * (1.0 - t) + f32::from(b[i]) * t) as u8
                        });
                        self.set(x, y, c, BACKGROUND);
                    }
                }
            }
        }
    }

    fn draw(&mut self, object: &Object, cx: f32, cy: f32, radius: f32, owner: u8) {
        let s = self.size as f32;
        let x0 = (cx - radius).floor().max(0.0) as usize;
        let x1 = ((cx + radius).ceil().min(s - 1.0)).max(0.0) as usize;
        let y0 = (cy - radius).floor().max(0.0) as usize;
        let y1 = ((cy + radius).ceil().min(s - 1.0)).max(0.0) as usize;
        let period = (self.size / 10).max(4);
        let second = second_colour(object.colour);
        for y in y0..=y1 {
            for x in x0..=x1 {
                let lx = (x as f32 + 0.5 - cx) / radius;
                let ly = (y as f32 + 0.5 - cy) / radius;
                if object.shape.contains(lx, ly) {
                    let colour = if object.texture.alternate(x, y, period) {
                        second
                    } else {
                        object.colour.rgb()
                    };
                    self.set(x, y, colour, owner);
                }
            }
        }
    }

    fn grain(&mut self, rng: &mut ChaCha8Rng) {
        let mut bytes = [0u8; 8];
        for (i, v) in self.rgb.iter_mut().enumerate() {
            if i % 8 == 0 {
                bytes = rng.next_u64().to_le_bytes();
            }
            let delta = i16::from(bytes[i % 8] % 13) - 6;
            *v = (i16::from(*v) + delta).clamp(0, 255) as u8;
        }
    }
}

/// The pattern's other colour: white on dark colours, near-black on light ones.
fn second_colour(colour: Colour) -> [u8; 3] {
    let [r, g, b] = colour.rgb();
    let luma = 0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b);
    if luma > 150.0 {
        [40, 40, 40]
    } else {
        [245, 245, 245]
    }
}

struct Placed {
    object: Object,
    cx: f32,
    cy: f32,
    radius: f32,
}

fn random_object(profile: &Profile, rng: &mut ChaCha8Rng) -> Object {
    let texture = if rng.chance(0.25) {
        rng.pick(&Texture::PATTERNS)
    } else {
        Texture::Solid
    };
    Object {
        colour: rng.pick(profile.colours),
        shape: rng.pick(profile.shapes),
        texture,
    }
}

/// Objects that make the concept, placed as it requires.
fn concept_objects(
    concept: &Concept,
    profile: &Profile,
    size: f32,
    rng: &mut ChaCha8Rng,
) -> Vec<Placed> {
    let (lo, hi) = profile.object_scale;
    let radius = |rng: &mut ChaCha8Rng| rng.range_f32(lo, hi) * size;
    let mut objects: Vec<(Object, f32)> = Vec::new();
    let count = |rng: &mut ChaCha8Rng, max| rng.range_usize(1, max);
    let solid = |colour, shape| Object {
        colour,
        shape,
        texture: Texture::Solid,
    };
    match *concept {
        Concept::Colour(c) => {
            let n = count(rng, 3);
            for _ in 0..n {
                let shape = rng.pick(profile.shapes);
                let r = radius(rng);
                objects.push((solid(c, shape), r));
            }
        }
        Concept::Pattern(t, c) => {
            let shape = rng.pick(&[Shape::Square, Shape::Circle, Shape::Bar]);
            let r = radius(rng) * 1.6;
            objects.push((
                Object {
                    colour: c,
                    shape,
                    texture: t,
                },
                r,
            ));
        }
        Concept::Shape(s) => {
            let n = count(rng, 3);
            for _ in 0..n {
                let colour = rng.pick(profile.colours);
                let r = radius(rng);
                objects.push((solid(colour, s), r));
            }
        }
        Concept::ColouredShape(c, s) => {
            let n = count(rng, 2);
            for _ in 0..n {
                let r = radius(rng);
                objects.push((solid(c, s), r));
            }
        }
        Concept::TexturedShape(c, t, s) => {
            let n = count(rng, 2);
            for _ in 0..n {
                let r = radius(rng) * 1.2;
                objects.push((
                    Object {
                        colour: c,
                        shape: s,
                        texture: t,
                    },
                    r,
                ));
            }
        }
        Concept::PlacedShape(c, s, p) => {
            let r = radius(rng);
            let (x, y) = position_centre(p, r, size, rng);
            return vec![Placed {
                object: solid(c, s),
                cx: x,
                cy: y,
                radius: r,
            }];
        }
        Concept::Relation(c1, s1, rel, c2, s2) => {
            let (r1, r2) = (radius(rng), radius(rng));
            let gap = size * 0.03;
            let (dx, dy) = match rel {
                Relation::NextTo => {
                    let side = if rng.chance(0.5) { 1.0 } else { -1.0 };
                    (side * (r1 + r2 + gap), rng.range_f32(-0.3, 0.3) * r1)
                }
                // The first object above the second: the second lies lower (larger y).
                Relation::Above => (rng.range_f32(-0.3, 0.3) * r1, r1 + r2 + gap),
                Relation::Below => (rng.range_f32(-0.3, 0.3) * r1, -(r1 + r2 + gap)),
            };
            // Place the pair so that both fit.
            let span_x = (r1.max(r2 - dx).max(r1 + dx.abs())).min(size / 2.0);
            let span_y = (r1 + dy.abs()).min(size / 2.0);
            let cx = clamp_centre(rng.range_f32(0.0, size), span_x, size);
            let cy = clamp_centre(rng.range_f32(0.0, size), span_y, size);
            let (x1, y1) = (cx - dx / 2.0, cy - dy / 2.0);
            return vec![
                Placed {
                    object: solid(c1, s1),
                    cx: x1,
                    cy: y1,
                    radius: r1,
                },
                Placed {
                    object: solid(c2, s2),
                    cx: x1 + dx,
                    cy: y1 + dy,
                    radius: r2,
                },
            ];
        }
    }
    objects
        .into_iter()
        .map(|(object, r)| Placed {
            object,
            cx: rng.range_f32(r, (size - r).max(r + 1.0)),
            cy: rng.range_f32(r, (size - r).max(r + 1.0)),
            radius: r,
        })
        .collect()
}

fn clamp_centre(c: f32, span: f32, size: f32) -> f32 {
    if span * 2.0 >= size {
        size / 2.0
    } else {
        c.clamp(span, size - span)
    }
}

fn position_centre(p: Position, r: f32, size: f32, rng: &mut ChaCha8Rng) -> (f32, f32) {
    let third = size / 3.0;
    let anywhere = |rng: &mut ChaCha8Rng| rng.range_f32(r, (size - r).max(r + 1.0));
    let low = |rng: &mut ChaCha8Rng| rng.range_f32(r.min(third), third.max(r + 0.5));
    let high = |rng: &mut ChaCha8Rng| {
        rng.range_f32(
            (size - third).min(size - r - 0.5),
            (size - r).max(size - third + 0.5),
        )
    };
    match p {
        Position::Left => (low(rng), anywhere(rng)),
        Position::Right => (high(rng), anywhere(rng)),
        Position::Top => (anywhere(rng), low(rng)),
        Position::Bottom => (anywhere(rng), high(rng)),
        Position::Center => (
            rng.range_f32(size * 0.45, size * 0.55),
            rng.range_f32(size * 0.45, size * 0.55),
        ),
    }
}

/// Whether `object` could be mistaken for part of the concept.
fn confusable(concept: &Concept, object: &Object) -> bool {
    match *concept {
        Concept::Relation(_, _, _, c2, s2) => {
            concept.matched_by(object) || (object.colour == c2 && object.shape == s2)
        }
        Concept::Pattern(..) => concept.matched_by(object) || object.texture != Texture::Solid,
        _ => concept.matched_by(object),
    }
}

pub fn render(concept: &Concept, profile: &Profile, size: usize, rng: &mut ChaCha8Rng) -> Exemplar {
    let mut canvas = Canvas {
        size,
        rgb: vec![0; 3 * size * size],
        owner: vec![BACKGROUND; size * size],
    };
    canvas.background(profile.background, rng);
    let s = size as f32;
    let n_distractors = rng.range_usize(profile.distractors.0, profile.distractors.1);
    for _ in 0..n_distractors {
        let mut object = random_object(profile, rng);
        let mut tries = 0;
        while confusable(concept, &object) && tries < 50 {
            object = random_object(profile, rng);
            tries += 1;
        }
        if confusable(concept, &object) {
            continue;
        }
        let r = rng.range_f32(profile.object_scale.0, profile.object_scale.1) * s;
        let cx = rng.range_f32(0.0, s);
        let cy = rng.range_f32(0.0, s);
        canvas.draw(&object, cx, cy, r, DISTRACTOR);
    }
    for placed in concept_objects(concept, profile, s, rng) {
        canvas.draw(&placed.object, placed.cx, placed.cy, placed.radius, CONCEPT);
    }
    canvas.grain(rng);
    let concept_pixels: Vec<bool> = canvas.owner.iter().map(|&o| o == CONCEPT).collect();
    let mut mask = coarsen(&concept_pixels, size, profile.mask);
    if !mask.contains(&1) {
        // A concept smaller than one mask cell still gets a mask: its own pixels.
        mask = concept_pixels.iter().map(|&c| u8::from(c)).collect();
    }
    Exemplar {
        rgb: canvas.rgb,
        mask,
    }
}

/// Pools concept coverage on a grid and brings it back to full size, like an activation map
/// upsampled and thresholded.
fn coarsen(pixels: &[bool], size: usize, style: MaskStyle) -> Vec<u8> {
    let (cells, smooth, threshold) = match style {
        MaskStyle::Blob { cells } => (cells.clamp(1, size), true, 0.2),
        MaskStyle::Patches { patch } => ((size / patch.max(1)).max(1), false, 0.25),
    };
    let cell = size as f32 / cells as f32;
    let mut coverage = vec![0f32; cells * cells];
    let mut counts = vec![0f32; cells * cells];
    for y in 0..size {
        let cy = ((y as f32 / cell) as usize).min(cells - 1);
        for x in 0..size {
            let cx = ((x as f32 / cell) as usize).min(cells - 1);
            counts[cy * cells + cx] += 1.0;
            if pixels[y * size + x] {
                coverage[cy * cells + cx] += 1.0;
            }
        }
    }
    for (c, n) in coverage.iter_mut().zip(&counts) {
        *c /= n.max(1.0);
    }
    let at = |gx: usize, gy: usize| coverage[gy.min(cells - 1) * cells + gx.min(cells - 1)];
    let mut mask = vec![0u8; size * size];
    for y in 0..size {
        for x in 0..size {
            let value = if smooth {
                // Bilinear between cell centres.
                let fx = ((x as f32 + 0.5) / cell - 0.5).max(0.0);
                let fy = ((y as f32 + 0.5) / cell - 0.5).max(0.0);
                let (gx, gy) = (fx as usize, fy as usize);
                let (tx, ty) = (fx - gx as f32, fy - gy as f32);
                let top = at(gx, gy) * (1.0 - tx) + at(gx + 1, gy) * tx;
                let bottom = at(gx, gy + 1) * (1.0 - tx) + at(gx + 1, gy + 1) * tx;
                top * (1.0 - ty) + bottom * ty
            } else {
                at(
                    ((x as f32 / cell) as usize).min(cells - 1),
                    ((y as f32 / cell) as usize).min(cells - 1),
                )
            };
            mask[y * size + x] = u8::from(value > threshold);
        }
    }
    mask
}
