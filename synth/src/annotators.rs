//! Simulated crowd workers. Each has habits: favourite synonyms, a word order, extra words,
//! boilerplate openings and endings ("these regions are ..."), capitals and full stops, and typos.
//! Three distinct workers describe every unit, so its three descriptions agree on the concept
//! and differ in the ways real crowd text differs.

use rand_chacha::ChaCha8Rng;

use crate::concept::{Colour, Concept, Position, Relation, Shape, Texture};
use crate::random::{Draw, fnv1a};

/// One simulated worker's habits; probabilities are per description.
#[derive(Debug, Clone, Copy)]
pub struct Persona {
    pub name: &'static str,
    /// How often the worker uses their own favourite synonym rather than any.
    pub loyalty: f64,
    /// "circles that are red" instead of "red circles".
    pub relative_clause: f64,
    /// "small", "bright", "some"...
    pub extra_word: f64,
    pub boilerplate_opening: f64,
    pub boilerplate_ending: f64,
    pub capitalise: f64,
    pub full_stop: f64,
    pub typo: f64,
    /// "a red circle" instead of "red circles".
    pub singular: f64,
}

/// The pool three workers per unit are drawn from.
pub const PERSONAS: [Persona; 8] = [
    Persona {
        name: "terse",
        loyalty: 0.9,
        relative_clause: 0.0,
        extra_word: 0.0,
        boilerplate_opening: 0.0,
        boilerplate_ending: 0.0,
        capitalise: 0.0,
        full_stop: 0.0,
        typo: 0.02,
        singular: 0.05,
    },
    Persona {
        name: "verbose",
        loyalty: 0.6,
        relative_clause: 0.3,
        extra_word: 0.5,
        boilerplate_opening: 0.7,
        boilerplate_ending: 0.3,
        capitalise: 0.8,
        full_stop: 0.9,
        typo: 0.03,
        singular: 0.1,
    },
    Persona {
        name: "hasty",
        loyalty: 0.5,
        relative_clause: 0.1,
        extra_word: 0.1,
        boilerplate_opening: 0.1,
        boilerplate_ending: 0.1,
        capitalise: 0.2,
        full_stop: 0.2,
        typo: 0.25,
        singular: 0.2,
    },
    Persona {
        name: "formal",
        loyalty: 0.8,
        relative_clause: 0.2,
        extra_word: 0.2,
        boilerplate_opening: 0.4,
        boilerplate_ending: 0.0,
        capitalise: 1.0,
        full_stop: 1.0,
        typo: 0.0,
        singular: 0.0,
    },
    Persona {
        name: "inverter",
        loyalty: 0.7,
        relative_clause: 0.8,
        extra_word: 0.1,
        boilerplate_opening: 0.2,
        boilerplate_ending: 0.2,
        capitalise: 0.3,
        full_stop: 0.3,
        typo: 0.05,
        singular: 0.1,
    },
    Persona {
        name: "storyteller",
        loyalty: 0.4,
        relative_clause: 0.2,
        extra_word: 0.6,
        boilerplate_opening: 0.5,
        boilerplate_ending: 0.5,
        capitalise: 0.5,
        full_stop: 0.5,
        typo: 0.05,
        singular: 0.4,
    },
    Persona {
        name: "literal",
        loyalty: 0.95,
        relative_clause: 0.0,
        extra_word: 0.0,
        boilerplate_opening: 0.3,
        boilerplate_ending: 0.0,
        capitalise: 0.0,
        full_stop: 0.0,
        typo: 0.0,
        singular: 0.0,
    },
    Persona {
        name: "casual",
        loyalty: 0.5,
        relative_clause: 0.3,
        extra_word: 0.3,
        boilerplate_opening: 0.3,
        boilerplate_ending: 0.2,
        capitalise: 0.1,
        full_stop: 0.1,
        typo: 0.1,
        singular: 0.3,
    },
];

const OPENINGS: &[&str] = &[
    "these regions are",
    "all images contain",
    "there are",
    "i see",
    "images of",
    "the highlighted regions show",
];
const ENDINGS: &[&str] = &["in them", "in the images", "are shown", "in each image"];
const EXTRA_WORDS: &[&str] = &["small", "bright", "some", "many", "large"];

fn shape_plurals(s: Shape) -> &'static [&'static str] {
    match s {
        Shape::Circle => &["circles", "round shapes", "balls"],
        Shape::Square => &["squares", "boxes", "square shapes"],
        Shape::Triangle => &["triangles", "triangular shapes"],
        Shape::Star => &["stars", "star shapes"],
        Shape::Ring => &["rings", "donuts", "hoops"],
        Shape::Cross => &["crosses", "plus signs"],
        Shape::Diamond => &["diamonds", "diamond shapes", "rhombuses"],
        Shape::Bar => &["bars", "rectangles", "strips"],
    }
}

fn shape_singulars(s: Shape) -> &'static [&'static str] {
    match s {
        Shape::Circle => &["circle", "round shape", "ball"],
        Shape::Square => &["square", "box", "square shape"],
        Shape::Triangle => &["triangle", "triangular shape"],
        Shape::Star => &["star", "star shape"],
        Shape::Ring => &["ring", "donut", "hoop"],
        Shape::Cross => &["cross", "plus sign"],
        Shape::Diamond => &["diamond", "diamond shape", "rhombus"],
        Shape::Bar => &["bar", "rectangle", "strip"],
    }
}

fn colour_words(c: Colour) -> &'static [&'static str] {
    match c {
        Colour::Gray => &["gray", "grey"],
        Colour::Purple => &["purple", "violet"],
        Colour::Teal => &["teal", "turquoise"],
        Colour::Red => &["red"],
        Colour::Green => &["green"],
        Colour::Blue => &["blue"],
        Colour::Yellow => &["yellow"],
        Colour::Orange => &["orange"],
        Colour::Pink => &["pink"],
        Colour::Brown => &["brown"],
        Colour::White => &["white"],
        Colour::Black => &["black"],
    }
}

fn pattern_nouns(t: Texture) -> &'static [&'static str] {
    match t {
        Texture::Solid => &["solid color"],
        Texture::VerticalStripes => &["vertical stripes", "vertical lines", "upright stripes"],
        Texture::HorizontalStripes => &["horizontal stripes", "horizontal lines", "flat stripes"],
        Texture::DiagonalStripes => &["diagonal stripes", "diagonal lines", "slanted stripes"],
        Texture::Dots => &["dots", "polka dots", "spots"],
        Texture::Checkered => &["checkerboard pattern", "checkered pattern", "checks"],
    }
}

fn texture_adjectives(t: Texture) -> &'static [&'static str] {
    match t {
        Texture::Solid => &["plain"],
        Texture::VerticalStripes | Texture::HorizontalStripes | Texture::DiagonalStripes => {
            &["striped", "stripy", "lined"]
        }
        Texture::Dots => &["dotted", "spotted", "polka dot"],
        Texture::Checkered => &["checkered", "checked", "plaid"],
    }
}

fn position_phrases(p: Position) -> &'static [&'static str] {
    match p {
        Position::Left => &["on the left", "on the left side", "at left"],
        Position::Right => &["on the right", "on the right side", "at right"],
        Position::Top => &["at the top", "on top", "in the upper part"],
        Position::Bottom => &["at the bottom", "in the lower part", "near the bottom"],
        Position::Center => &["in the center", "in the middle", "centered"],
    }
}

fn relation_phrases(r: Relation) -> &'static [&'static str] {
    match r {
        Relation::NextTo => &["next to", "beside", "near"],
        Relation::Above => &["above", "over", "on top of"],
        Relation::Below => &["below", "under", "beneath"],
    }
}

/// One worker writing one description.
struct Writer<'a> {
    persona: &'a Persona,
    rng: &'a mut ChaCha8Rng,
}

impl Writer<'_> {
    /// A synonym: the worker's favourite (a fixed function of the worker and the word list)
    /// with probability `loyalty`, else any.
    fn word(&mut self, options: &[&'static str]) -> &'static str {
        if self.rng.chance(self.persona.loyalty) {
            let favourite = fnv1a(format!("{}{}", self.persona.name, options[0]).as_bytes());
            options[(favourite % options.len() as u64) as usize]
        } else {
            self.rng.pick(options)
        }
    }

    fn colour(&mut self, c: Colour) -> &'static str {
        self.word(colour_words(c))
    }

    /// A coloured shape as a noun phrase, plural or singular with its article.
    fn coloured_shape(&mut self, c: Colour, s: Shape, singular: bool) -> String {
        let colour = self.colour(c);
        if singular {
            let noun = self.word(shape_singulars(s));
            let article = if colour.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            format!("{article} {colour} {noun}")
        } else if self.rng.chance(self.persona.relative_clause) {
            let noun = self.word(shape_plurals(s));
            let form = self
                .rng
                .pick(&["{n} that are {c}", "{n} in {c}", "{c} colored {n}"]);
            form.replace("{n}", noun).replace("{c}", colour)
        } else {
            let noun = self.word(shape_plurals(s));
            format!("{colour} {noun}")
        }
    }

    fn core(&mut self, concept: &Concept) -> String {
        let singular = self.rng.chance(self.persona.singular);
        match *concept {
            Concept::Colour(c) => {
                let colour = self.colour(c);
                let form = self.word(&[
                    "{c} things",
                    "{c} objects",
                    "the color {c}",
                    "{c}",
                    "{c} regions",
                    "{c} areas",
                ]);
                form.replace("{c}", colour)
            }
            Concept::Pattern(t, c) => {
                let pattern = self.word(pattern_nouns(t));
                if self.rng.chance(0.7) {
                    format!("{} {pattern}", self.colour(c))
                } else {
                    pattern.to_owned()
                }
            }
            Concept::Shape(s) => {
                if singular {
                    format!("a {}", self.word(shape_singulars(s)))
                } else {
                    self.word(shape_plurals(s)).to_owned()
                }
            }
            Concept::ColouredShape(c, s) => self.coloured_shape(c, s, singular),
            Concept::TexturedShape(c, t, s) => {
                let colour = self.colour(c);
                let noun = self.word(shape_plurals(s));
                if self.rng.chance(self.persona.relative_clause) {
                    let pattern = self.word(pattern_nouns(t));
                    format!("{colour} {noun} with {pattern}")
                } else {
                    let adjective = self.word(texture_adjectives(t));
                    format!("{adjective} {colour} {noun}")
                }
            }
            Concept::PlacedShape(c, s, p) => {
                let object = self.coloured_shape(c, s, singular);
                let place = self.word(position_phrases(p));
                format!("{object} {place}")
            }
            Concept::Relation(c1, s1, r, c2, s2) => {
                let first = self.coloured_shape(c1, s1, singular);
                let relation = self.word(relation_phrases(r));
                let second = self.coloured_shape(c2, s2, singular);
                format!("{first} {relation} {second}")
            }
        }
    }

    fn describe(&mut self, concept: &Concept) -> String {
        let mut text = self.core(concept);
        // Extra words go before plural noun phrases only: "some red circles", never "some a circle"
        // or "many green".
        let plural_phrase =
            text.contains(' ') && !["a ", "an ", "the "].iter().any(|a| text.starts_with(a));
        if plural_phrase && self.rng.chance(self.persona.extra_word) {
            text = format!("{} {text}", self.rng.pick(EXTRA_WORDS));
        }
        if self.rng.chance(self.persona.typo) {
            text = typo(&text, self.rng);
        }
        let opened = self.rng.chance(self.persona.boilerplate_opening);
        if opened {
            text = format!("{} {text}", self.rng.pick(OPENINGS));
        }
        if self.rng.chance(self.persona.boilerplate_ending) {
            // "are shown" only reads as English without an opening ("i see dogs are shown").
            let endings = if opened { &ENDINGS[..2] } else { ENDINGS };
            text = format!("{text} {}", self.rng.pick(endings));
        }
        if self.rng.chance(self.persona.capitalise) {
            let mut chars = text.chars();
            if let Some(first) = chars.next() {
                text = first.to_uppercase().chain(chars).collect();
            }
        }
        if self.rng.chance(self.persona.full_stop) {
            text.push('.');
        }
        text
    }
}

/// Swaps two neighbouring letters, or drops one, in a word of five letters or more.
fn typo(text: &str, rng: &mut ChaCha8Rng) -> String {
    let mut words: Vec<String> = text.split(' ').map(str::to_owned).collect();
    let candidates: Vec<usize> = (0..words.len())
        .filter(|&i| words[i].len() >= 5 && words[i].is_ascii())
        .collect();
    if candidates.is_empty() {
        return text.to_owned();
    }
    let i = rng.pick(&candidates);
    let mut letters: Vec<char> = words[i].chars().collect();
    let at = rng.range_usize(1, letters.len() - 2);
    if rng.chance(0.5) {
        letters.swap(at, at + 1);
    } else {
        letters.remove(at);
    }
    words[i] = letters.into_iter().collect();
    words.join(" ")
}

/// Three distinct workers' descriptions of a unit, with the indices of the workers in
/// [`PERSONAS`].
pub fn describe(concept: &Concept, rng: &mut ChaCha8Rng) -> [(usize, String); 3] {
    let mut chosen: Vec<usize> = Vec::with_capacity(3);
    while chosen.len() < 3 {
        let p = rng.range_usize(0, PERSONAS.len() - 1);
        if !chosen.contains(&p) {
            chosen.push(p);
        }
    }
    std::array::from_fn(|i| {
        let persona = &PERSONAS[chosen[i]];
        let text = Writer {
            persona,
            rng: &mut *rng,
        }
        .describe(concept);
        (chosen[i], text)
    })
}
