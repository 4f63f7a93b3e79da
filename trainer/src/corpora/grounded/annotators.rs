//! Simulated describers with the habits of real crowds (MILANNOTATIONS' own descriptions show
//! them all): specific workers name the unit's concepts ("red animals on striped backgrounds"),
//! partial ones name one of them, generic ones write what fits any unit ("different colors and
//! objects"), and some add where in the image the regions are. Each unit gets three distinct
//! workers of a fixed pool; what a worker writes is drawn from its habits, seeded by the unit.
//!
//! Descriptions are 3 to 8 words.

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

use super::dissect::{Label, Place};
use super::scenes::{ConceptKind, Concepts};

/// IoU above which a concept is something a describer sees (NetDissect's threshold).
pub const SEEN_IOU: f64 = 0.04;

/// How a worker describes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Habits {
    /// Writes a generic description whatever the unit.
    pub generic: bool,
    /// Chance to name only one of two concepts (the less obvious one at times).
    pub partial: f64,
    /// Chance to say where in the image the regions are, when they sit in one place.
    pub spatial: f64,
}

/// A pool of `size` workers, `round(generic_share * size)` of them generic.
pub fn pool(size: usize, generic_share: f64, seed: u64) -> Vec<Habits> {
    let generic = (generic_share * size as f64).round() as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_0fc0_ffee);
    (0..size)
        .map(|i| Habits {
            generic: i < generic,
            partial: 0.1 + 0.5 * unit(&mut rng),
            spatial: 0.4 * unit(&mut rng),
        })
        .collect()
}

fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

fn pick<'a>(rng: &mut ChaCha8Rng, options: &[&'a str]) -> &'a str {
    options[(rng.next_u64() % options.len() as u64) as usize]
}

/// Words people use for an object category of the stamps (their folder names), several per
/// category as workers differ; other categories are named by themselves.
fn object_words(category: &str) -> &'static [&'static str] {
    match category {
        "animals" => &["animals", "animal faces", "creatures"],
        "clothes" => &["clothes", "hats and clothing", "garments"],
        "food" => &["food", "fruit and vegetables", "things to eat"],
        "hobbies" => &["musical instruments", "instruments", "guitars and drums"],
        "household" => &["kitchen objects", "household items", "pots and mugs"],
        "military" => &["military vehicles", "soldiers and tanks", "army equipment"],
        "plants" => &["plants", "flowers", "leaves and flowers"],
        "seasonal" => &[
            "party decorations",
            "holiday objects",
            "festive decorations",
        ],
        "space" => &["planets", "moons and planets", "space objects"],
        "sports" => &["sports balls", "balls", "sports equipment"],
        "town" => &["road signs", "street signs", "traffic signs"],
        "vehicles" => &["vehicles", "cars and trucks", "transportation"],
        super::scenes::TEXT => &["text", "letters", "words", "writing"],
        _ => &[],
    }
}

fn pattern_words(pattern: &str) -> &'static [&'static str] {
    match pattern {
        "plain" => &[
            "plain backgrounds",
            "solid backgrounds",
            "flat colored backgrounds",
        ],
        "gradient" => &["color gradients", "fading backgrounds", "smooth gradients"],
        "stripes" => &["stripes", "striped patterns", "diagonal lines"],
        "checkerboard" => &[
            "checkerboard patterns",
            "checkered squares",
            "grid patterns",
        ],
        _ => &["blotchy textures", "mottled backgrounds", "cloudy textures"],
    }
}

const GENERIC: [&str; 8] = [
    "different colors and objects",
    "various objects in the images",
    "things in the pictures",
    "colors and shapes",
    "parts of different objects",
    "many different things",
    "objects and backgrounds",
    "shapes of various colors",
];

const UNCLEAR: [&str; 4] = [
    "random parts of images",
    "nothing in common here",
    "small scattered regions",
    "hard to tell what",
];

/// The noun phrase a worker uses for a concept (colours as an adjective when `adjective`).
fn phrase(concepts: &Concepts, c: usize, rng: &mut ChaCha8Rng) -> (ConceptKind, String) {
    let (kind, name) = concepts.get(c);
    let text = match kind {
        ConceptKind::Object => {
            let words = object_words(name);
            if words.is_empty() {
                name.replace('_', " ")
            } else {
                pick(rng, words).to_owned()
            }
        }
        ConceptKind::Pattern => pick(rng, pattern_words(name)).to_owned(),
        ConceptKind::Colour => name.to_owned(),
    };
    (kind, text)
}

/// One worker's description of a unit.
pub fn describe(concepts: &Concepts, label: &Label, habits: &Habits, seed: u64) -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    if habits.generic {
        return pick(&mut rng, &GENERIC).to_owned();
    }
    let seen: Vec<usize> = label
        .ious
        .iter()
        .take(3)
        .filter(|(_, iou)| *iou >= SEEN_IOU)
        .map(|(c, _)| *c)
        .collect();
    if seen.is_empty() {
        return pick(&mut rng, &UNCLEAR).to_owned();
    }
    // The second concept is named beside the first when it is of another kind (a colour of an
    // object, an object on a pattern); a partial worker names one of the two.
    let second = seen[1..]
        .iter()
        .copied()
        .find(|&c| concepts.get(c).0 != concepts.get(seen[0]).0);
    let named: Vec<usize> = match second {
        Some(s) if unit(&mut rng) < habits.partial => {
            vec![if unit(&mut rng) < 0.3 { s } else { seen[0] }]
        }
        Some(s) => vec![seen[0], s],
        None => vec![seen[0]],
    };
    let mut parts: Vec<(ConceptKind, String)> = named
        .iter()
        .map(|&c| phrase(concepts, c, &mut rng))
        .collect();
    parts.sort_by_key(|(k, _)| match k {
        ConceptKind::Colour => 0,
        ConceptKind::Object => 1,
        ConceptKind::Pattern => 2,
    });
    let text = match parts.as_slice() {
        [(ConceptKind::Colour, c), (ConceptKind::Object, o)] => match rng.next_u64() % 3 {
            0 => format!("{c} {o}"),
            1 => format!("{o} that are {c}"),
            _ => format!("{c} colored {o}"),
        },
        [(ConceptKind::Colour, c), (ConceptKind::Pattern, p)] => format!("{c} {p}"),
        [(ConceptKind::Object, o), (ConceptKind::Pattern, p)] => match rng.next_u64() % 2 {
            0 => format!("{o} on {p}"),
            _ => format!("{o} against {p}"),
        },
        [(ConceptKind::Colour, c)] => match rng.next_u64() % 3 {
            0 => format!("{c} regions"),
            1 => format!("things that are {c}"),
            _ => format!("the color {c}"),
        },
        [(_, single)] => single.clone(),
        _ => parts
            .iter()
            .map(|(_, t)| t.as_str())
            .collect::<Vec<_>>()
            .join(" and "),
    };
    // Where the regions are, within the eight words.
    let words = text.split_whitespace().count();
    let text = match label.place {
        Some(place) if words <= 4 && unit(&mut rng) < habits.spatial => {
            let long = words <= 2 && rng.next_u64() % 2 == 0;
            match (place, long) {
                (Place::Centre, true) => format!("{text} in the middle of the image"),
                (Place::Centre, false) => format!("{text} in the middle"),
                (_, true) => format!("{text} at the {} of the image", place.name()),
                (_, false) => format!("{text} on the {} side", place.name()),
            }
        }
        _ => text,
    };
    // Short phrases get a frame, as workers write them ("pictures of planets").
    if text.split_whitespace().count() < 3 {
        let frame = pick(
            &mut rng,
            &["pictures of {}", "{} in the images", "images of {}"],
        );
        frame.replace("{}", &text)
    } else {
        text
    }
}

/// Three distinct workers of `pool` for a unit, and what each writes.
pub fn describe_unit(
    concepts: &Concepts,
    label: &Label,
    pool: &[Habits],
    seed: u64,
) -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut chosen: Vec<usize> = Vec::with_capacity(3);
    while chosen.len() < 3.min(pool.len()) {
        let w = (rng.next_u64() % pool.len() as u64) as usize;
        if !chosen.contains(&w) {
            chosen.push(w);
        }
    }
    chosen
        .iter()
        .map(|&w| describe(concepts, label, &pool[w], rng.next_u64()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn concepts() -> Concepts {
        Concepts::new(vec!["animals".into(), "vehicles".into()])
    }

    fn label(ious: Vec<(usize, f64)>, place: Option<Place>) -> Label {
        Label {
            ious,
            area: 0.1,
            place,
        }
    }

    const RED: usize = 2 + 5 + 3;
    const STRIPES: usize = 2 + 2;

    #[test]
    fn specific_workers_name_the_concepts_and_generic_ones_do_not() {
        let c = concepts();
        let l = label(vec![(0, 0.3), (RED, 0.2), (1, 0.01)], None);
        let specific = Habits {
            generic: false,
            partial: 0.0,
            spatial: 0.0,
        };
        for seed in 0..20 {
            let d = describe(&c, &l, &specific, seed);
            assert!(d.contains("red"), "{d}");
            assert!(["animal", "creatures"].iter().any(|w| d.contains(w)), "{d}");
            assert!(
                !d.contains("truck") && !d.contains("vehicles"),
                "below the IoU threshold: {d}"
            );
            let words = d.split_whitespace().count();
            assert!((3..=8).contains(&words), "{d}");
        }
        let generic = Habits {
            generic: true,
            ..specific
        };
        let d = describe(&c, &l, &generic, 1);
        assert!(GENERIC.contains(&d.as_str()), "{d}");
    }

    #[test]
    fn partial_workers_name_one_concept_and_spatial_ones_say_where() {
        let c = concepts();
        let l = label(vec![(1, 0.3), (STRIPES, 0.25)], Some(Place::Bottom));
        let partial = Habits {
            generic: false,
            partial: 1.0,
            spatial: 1.0,
        };
        let mut both = 0;
        for seed in 0..30 {
            let d = describe(&c, &l, &partial, seed);
            let object = ["vehicles", "cars", "transportation"]
                .iter()
                .any(|w| d.contains(w));
            let pattern = ["stripe", "lines"].iter().any(|w| d.contains(w));
            assert!(object || pattern, "{d}");
            both += usize::from(object && pattern);
            assert!(d.contains("bottom"), "{d}");
            assert!((3..=8).contains(&d.split_whitespace().count()), "{d}");
        }
        assert_eq!(both, 0, "a partial worker names one of the two");
    }

    #[test]
    fn units_get_three_distinct_workers_and_the_pool_has_its_share_of_generic_ones() {
        let p = pool(12, 0.25, 3);
        assert_eq!(p.iter().filter(|h| h.generic).count(), 3);
        assert_eq!(pool(12, 0.0, 3).iter().filter(|h| h.generic).count(), 0);
        let l = label(vec![(0, 0.5)], None);
        let ds = describe_unit(&concepts(), &l, &p, 9);
        assert_eq!(ds.len(), 3);
        assert_eq!(ds, describe_unit(&concepts(), &l, &p, 9), "seeded");
    }
}
