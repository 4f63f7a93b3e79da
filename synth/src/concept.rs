//! The compositional grammar of synthetic concepts: colour x shape x texture x position x relation.
//!
//! A unit's concept is what its exemplars share and what its annotators describe. Concepts come
//! in seven kinds of rising complexity; which kinds and which words a network's units get depends
//! on the network ([`crate::profile`]).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Colour {
    Red,
    Green,
    Blue,
    Yellow,
    Orange,
    Purple,
    Pink,
    Brown,
    Gray,
    White,
    Black,
    Teal,
}

impl Colour {
    pub fn name(self) -> &'static str {
        match self {
            Colour::Red => "red",
            Colour::Green => "green",
            Colour::Blue => "blue",
            Colour::Yellow => "yellow",
            Colour::Orange => "orange",
            Colour::Purple => "purple",
            Colour::Pink => "pink",
            Colour::Brown => "brown",
            Colour::Gray => "gray",
            Colour::White => "white",
            Colour::Black => "black",
            Colour::Teal => "teal",
        }
    }

    pub fn rgb(self) -> [u8; 3] {
        match self {
            Colour::Red => [220, 40, 40],
            Colour::Green => [40, 170, 60],
            Colour::Blue => [40, 80, 220],
            Colour::Yellow => [240, 220, 40],
            Colour::Orange => [245, 140, 30],
            Colour::Purple => [140, 50, 180],
            Colour::Pink => [245, 130, 190],
            Colour::Brown => [130, 80, 40],
            Colour::Gray => [128, 128, 128],
            Colour::White => [250, 250, 250],
            Colour::Black => [25, 25, 25],
            Colour::Teal => [30, 150, 150],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Shape {
    Circle,
    Square,
    Triangle,
    Star,
    Ring,
    Cross,
    Diamond,
    Bar,
}

impl Shape {
    /// The plural noun annotators use most.
    pub fn plural(self) -> &'static str {
        match self {
            Shape::Circle => "circles",
            Shape::Square => "squares",
            Shape::Triangle => "triangles",
            Shape::Star => "stars",
            Shape::Ring => "rings",
            Shape::Cross => "crosses",
            Shape::Diamond => "diamonds",
            Shape::Bar => "bars",
        }
    }

    pub fn singular(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::Star => "star",
            Shape::Ring => "ring",
            Shape::Cross => "cross",
            Shape::Diamond => "diamond",
            Shape::Bar => "bar",
        }
    }

    /// Whether the point (x, y), in the shape's own frame (centre 0, radius 1), is inside it.
    pub fn contains(self, x: f32, y: f32) -> bool {
        match self {
            Shape::Circle => x * x + y * y <= 1.0,
            Shape::Square => x.abs() <= 0.85 && y.abs() <= 0.85,
            Shape::Triangle => (-1.0..=0.8).contains(&y) && x.abs() <= 0.95 * (y + 1.0) / 1.8,
            Shape::Star => {
                let r = (x * x + y * y).sqrt();
                let theta = y.atan2(x) + std::f32::consts::FRAC_PI_2;
                let spike = ((5.0 * theta).cos() + 1.0) / 2.0;
                r <= 0.42 + 0.58 * spike * spike
            }
            Shape::Ring => {
                let d = x * x + y * y;
                (0.3..=1.0).contains(&d)
            }
            Shape::Cross => {
                (x.abs() <= 0.3 && y.abs() <= 1.0) || (y.abs() <= 0.3 && x.abs() <= 1.0)
            }
            Shape::Diamond => x.abs() + y.abs() <= 1.0,
            Shape::Bar => x.abs() <= 1.0 && y.abs() <= 0.38,
        }
    }
}

/// A fill of a region: plain, or a pattern of the object's colour and a second colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Texture {
    Solid,
    VerticalStripes,
    HorizontalStripes,
    DiagonalStripes,
    Dots,
    Checkered,
}

impl Texture {
    pub const PATTERNS: [Texture; 5] = [
        Texture::VerticalStripes,
        Texture::HorizontalStripes,
        Texture::DiagonalStripes,
        Texture::Dots,
        Texture::Checkered,
    ];

    /// The pattern as a noun phrase: "vertical stripes".
    pub fn noun(self) -> &'static str {
        match self {
            Texture::Solid => "solid color",
            Texture::VerticalStripes => "vertical stripes",
            Texture::HorizontalStripes => "horizontal stripes",
            Texture::DiagonalStripes => "diagonal stripes",
            Texture::Dots => "dots",
            Texture::Checkered => "checkerboard pattern",
        }
    }

    /// The pattern as an adjective: "striped".
    pub fn adjective(self) -> &'static str {
        match self {
            Texture::Solid => "plain",
            Texture::VerticalStripes | Texture::HorizontalStripes | Texture::DiagonalStripes => {
                "striped"
            }
            Texture::Dots => "dotted",
            Texture::Checkered => "checkered",
        }
    }

    /// Whether pixel (x, y) shows the second colour, for a pattern of the given period.
    pub fn alternate(self, x: usize, y: usize, period: usize) -> bool {
        let period = period.max(2);
        let half = period / 2;
        match self {
            Texture::Solid => false,
            Texture::VerticalStripes => x % period < half,
            Texture::HorizontalStripes => y % period < half,
            Texture::DiagonalStripes => (x + y) % period < half,
            Texture::Dots => {
                let (dx, dy) = (
                    (x % period) as f32 - half as f32,
                    (y % period) as f32 - half as f32,
                );
                dx * dx + dy * dy <= (period as f32 / 3.5).powi(2)
            }
            Texture::Checkered => (x / half.max(1) + y / half.max(1)).is_multiple_of(2),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Position {
    Left,
    Right,
    Top,
    Bottom,
    Center,
}

impl Position {
    pub const ALL: [Position; 5] = [
        Position::Left,
        Position::Right,
        Position::Top,
        Position::Bottom,
        Position::Center,
    ];

    pub fn phrase(self) -> &'static str {
        match self {
            Position::Left => "on the left",
            Position::Right => "on the right",
            Position::Top => "at the top",
            Position::Bottom => "at the bottom",
            Position::Center => "in the center",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Relation {
    NextTo,
    Above,
    Below,
}

impl Relation {
    pub const ALL: [Relation; 3] = [Relation::NextTo, Relation::Above, Relation::Below];

    pub fn phrase(self) -> &'static str {
        match self {
            Relation::NextTo => "next to",
            Relation::Above => "above",
            Relation::Below => "below",
        }
    }
}

/// A coloured, textured shape: the unit of everything drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Object {
    pub colour: Colour,
    pub shape: Shape,
    pub texture: Texture,
}

/// How complex a concept is; the order is the order of rising complexity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Colour,
    Pattern,
    Shape,
    ColouredShape,
    TexturedShape,
    PlacedShape,
    Relation,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Colour,
        Kind::Pattern,
        Kind::Shape,
        Kind::ColouredShape,
        Kind::TexturedShape,
        Kind::PlacedShape,
        Kind::Relation,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Colour => "colour",
            Kind::Pattern => "pattern",
            Kind::Shape => "shape",
            Kind::ColouredShape => "coloured-shape",
            Kind::TexturedShape => "textured-shape",
            Kind::PlacedShape => "placed-shape",
            Kind::Relation => "relation",
        }
    }

    /// 0 for the simplest kind, 6 for the most complex.
    pub fn complexity(self) -> usize {
        self as usize
    }
}

/// What a unit responds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Concept {
    /// Anything of this colour.
    Colour(Colour),
    /// A region filled with this pattern, in this colour.
    Pattern(Texture, Colour),
    /// This shape, any colour.
    Shape(Shape),
    ColouredShape(Colour, Shape),
    TexturedShape(Colour, Texture, Shape),
    PlacedShape(Colour, Shape, Position),
    /// The first object in this relation to the second.
    Relation(Colour, Shape, Relation, Colour, Shape),
}

impl Concept {
    pub fn kind(&self) -> Kind {
        match self {
            Concept::Colour(_) => Kind::Colour,
            Concept::Pattern(..) => Kind::Pattern,
            Concept::Shape(_) => Kind::Shape,
            Concept::ColouredShape(..) => Kind::ColouredShape,
            Concept::TexturedShape(..) => Kind::TexturedShape,
            Concept::PlacedShape(..) => Kind::PlacedShape,
            Concept::Relation(..) => Kind::Relation,
        }
    }

    /// Whether a drawn object would count as an instance of this concept's main object; scenes
    /// never show a distractor that matches.
    pub fn matched_by(&self, object: &Object) -> bool {
        match *self {
            Concept::Colour(c) => object.colour == c,
            Concept::Pattern(t, _) => object.texture == t,
            Concept::Shape(s) => object.shape == s,
            Concept::ColouredShape(c, s)
            | Concept::PlacedShape(c, s, _)
            | Concept::Relation(c, s, ..) => object.colour == c && object.shape == s,
            Concept::TexturedShape(c, t, s) => {
                object.colour == c && object.shape == s && object.texture == t
            }
        }
    }
}

/// The canonical description: what a careful annotator with no habits would write.
impl fmt::Display for Concept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Concept::Colour(c) => write!(f, "{} things", c.name()),
            Concept::Pattern(t, c) => write!(f, "{} {}", c.name(), t.noun()),
            Concept::Shape(s) => f.write_str(s.plural()),
            Concept::ColouredShape(c, s) => write!(f, "{} {}", c.name(), s.plural()),
            Concept::TexturedShape(c, t, s) => {
                write!(f, "{} {} {}", t.adjective(), c.name(), s.plural())
            }
            Concept::PlacedShape(c, s, p) => {
                write!(f, "{} {} {}", c.name(), s.plural(), p.phrase())
            }
            Concept::Relation(c1, s1, r, c2, s2) => write!(
                f,
                "{} {} {} {} {}",
                c1.name(),
                s1.plural(),
                r.phrase(),
                c2.name(),
                s2.plural()
            ),
        }
    }
}
