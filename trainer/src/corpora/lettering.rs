//! Words drawn onto images: the grounded scenes' text concept and the editing case's spurious
//! cue (docs/applications.md). Glyphs are font8x8's basic Latin (8x8 bitmaps, each row's least
//! significant bit leftmost), scaled by whole pixels, so every machine draws the same pixels.

use image::{Rgb, RgbImage};
use rand_chacha::ChaCha8Rng;

use milan_shared::random::{below_f32 as below, uniform_f32 as uniform};

/// Pixels of a glyph's side at scale 1.
pub const GLYPH: u32 = 8;

/// Width and height in pixels of `text` drawn at `scale`.
pub fn extent(text: &str, scale: u32) -> (u32, u32) {
    (text.chars().count() as u32 * GLYPH * scale, GLYPH * scale)
}

/// Black or white, whichever stands out more against the mean of `img` under the box
/// `(x, y, w, h)` (clipped to the image).
pub fn contrasting(img: &RgbImage, x: i64, y: i64, w: u32, h: u32) -> Rgb<u8> {
    let (mut sum, mut n) = (0.0f64, 0u64);
    for py in y.max(0)..(y + i64::from(h)).min(i64::from(img.height())) {
        for px in x.max(0)..(x + i64::from(w)).min(i64::from(img.width())) {
            let p = img.get_pixel(px as u32, py as u32).0;
            sum += 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]);
            n += 1;
        }
    }
    if n > 0 && sum / n as f64 > 128.0 {
        Rgb([0, 0, 0])
    } else {
        Rgb([255, 255, 255])
    }
}

/// Draws `text` (ASCII; other characters are blanks) with its top-left corner at `(x, y)`, each
/// glyph pixel a `scale` x `scale` square of `colour`; parts off the image are dropped.
pub fn draw(img: &mut RgbImage, text: &str, x: i64, y: i64, scale: u32, colour: Rgb<u8>) {
    let scale = i64::from(scale.max(1));
    for (k, ch) in text.chars().enumerate() {
        let glyph = font8x8::legacy::BASIC_LEGACY
            .get(ch as usize)
            .copied()
            .unwrap_or([0; 8]);
        let left = x + k as i64 * i64::from(GLYPH) * scale;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..GLYPH as i64 {
                if bits & (1 << col) == 0 {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        let px = left + col * scale + dx;
                        let py = y + row as i64 * scale + dy;
                        if px >= 0
                            && py >= 0
                            && px < i64::from(img.width())
                            && py < i64::from(img.height())
                        {
                            img.put_pixel(px as u32, py as u32, colour);
                        }
                    }
                }
            }
        }
    }
}

/// A made-up word of `min..=max` capital letters.
pub fn random_word(rng: &mut ChaCha8Rng, min: usize, max: usize) -> String {
    let len = min + below(rng, max - min + 1);
    (0..len)
        .map(|_| (b'A' + below(rng, 26) as u8) as char)
        .collect()
}

/// Where a word of `w` x `h` pixels sits, at random, wholly inside a `side`-pixel square (its
/// top-left corner).
pub fn random_place(rng: &mut ChaCha8Rng, side: u32, w: u32, h: u32) -> (i64, i64) {
    let x = (uniform(rng) * side.saturating_sub(w) as f32) as i64;
    let y = (uniform(rng) * side.saturating_sub(h) as f32) as i64;
    (x, y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_are_drawn_from_the_glyphs_at_scale() {
        let mut img = RgbImage::from_pixel(40, 20, Rgb([200, 200, 200]));
        let colour = contrasting(&img, 0, 0, 40, 20);
        assert_eq!(colour, Rgb([0, 0, 0]), "dark on a light background");
        draw(&mut img, "I", 4, 2, 2, colour);
        // font8x8's "I": rows 0x1E, 0x0C x5, 0x1E, 0: the bar is columns 2-3, the serifs 1-4.
        let dark = |x: u32, y: u32| img.get_pixel(x, y).0 == [0, 0, 0];
        assert!(dark(4 + 2 * 2, 2 + 2 * 3), "the stem");
        assert!(
            dark(4 + 2 * 3 + 1, 2 + 2 * 3 + 1),
            "the stem is 2 pixels a glyph pixel"
        );
        assert!(dark(4 + 2, 2), "the top serif");
        assert!(!dark(4, 2 + 2 * 3), "left of the stem");
        assert!(!dark(4 + 2 * 2, 2 + 2 * 7), "the blank last row");
        let inked = img.pixels().filter(|p| p.0 == [0, 0, 0]).count();
        // 4 + 2 + 2 + 2 + 2 + 2 + 4 glyph pixels, each 2x2.
        assert_eq!(inked, 18 * 4);
        assert_eq!(extent("ABC", 3), (72, 24));
        assert_eq!(contrasting(&img, 100, 100, 5, 5), Rgb([255, 255, 255]));
    }
}
