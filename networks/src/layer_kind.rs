//! What a layer's output is, for one input: maps (channels first or last), transformer tokens,
//! feature vectors or attention scores ([`LayerKind`]), and how its shape reads.

/// What one describable node outputs, for one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// (N, C, H, W): a unit per channel, its H x W map.
    Conv {
        channels: usize,
        height: usize,
        width: usize,
    },
    /// (N, T, C) with T = prefix + grid²: a unit per channel, its map the grid x grid patch tokens.
    Tokens {
        channels: usize,
        prefix: usize,
        grid: usize,
    },
    /// (N, C): a unit per feature; its mask is the whole image.
    Features { channels: usize },
    /// (N, H, W, C), channels last (Swin, ConvNeXt's MLPs, TensorFlow exports): a unit per
    /// channel, its H x W map.
    ChannelsLast {
        channels: usize,
        height: usize,
        width: usize,
    },
    /// (N, heads, T, T): attention scores between tokens, not units; listed, never described.
    Attention { heads: usize, tokens: usize },
}

impl LayerKind {
    /// The kind of an output of shape `shape` (batch first), if it is one of the three; the
    /// reason otherwise.
    pub fn of(shape: &[usize], prefix_tokens: Option<usize>) -> std::result::Result<Self, String> {
        match *shape {
            [_, channels] => Ok(LayerKind::Features { channels }),
            [_, tokens, channels] => {
                let square = |n: usize| {
                    let g = (n as f64).sqrt().round() as usize;
                    (g >= 1 && g * g == n).then_some(g)
                };
                match prefix_tokens {
                    Some(p) => match tokens.checked_sub(p).and_then(square) {
                        Some(grid) if tokens > p => Ok(LayerKind::Tokens {
                            channels,
                            prefix: p,
                            grid,
                        }),
                        _ => Err(format!(
                            "{tokens} tokens less the {p} prefix tokens (--prefix-tokens) do not \
                             form a square grid"
                        )),
                    },
                    None => (0..=MAX_PREFIX.min(tokens.saturating_sub(1)))
                        .find_map(|p| {
                            square(tokens - p)
                                .filter(|g| *g >= 2)
                                .map(|grid| LayerKind::Tokens {
                                    channels,
                                    prefix: p,
                                    grid,
                                })
                        })
                        .ok_or_else(|| {
                            format!(
                                "{tokens} tokens: no count of 0 to {MAX_PREFIX} prefix tokens \
                                 leaves a square grid of patches; give --prefix-tokens"
                            )
                        }),
                }
            }
            [_, channels, height, width] => Ok(LayerKind::Conv {
                channels,
                height,
                width,
            }),
            _ => Err(format!(
                "rank {}: not (N, C, H, W) maps, (N, T, C) tokens or (N, C) features",
                shape.len()
            )),
        }
    }

    pub fn units(&self) -> usize {
        match *self {
            LayerKind::Conv { channels, .. }
            | LayerKind::ChannelsLast { channels, .. }
            | LayerKind::Tokens { channels, .. }
            | LayerKind::Features { channels } => channels,
            LayerKind::Attention { heads, .. } => heads,
        }
    }

    /// Height and width of a unit's map.
    pub fn map(&self) -> (usize, usize) {
        match *self {
            LayerKind::Conv { height, width, .. }
            | LayerKind::ChannelsLast { height, width, .. } => (height, width),
            LayerKind::Tokens { grid, .. } => (grid, grid),
            LayerKind::Features { .. } => (1, 1),
            LayerKind::Attention { tokens, .. } => (tokens, tokens),
        }
    }

    /// Whether an output of `shape` (`count` samples) is laid out as this kind says.
    pub fn fits(&self, shape: &[usize], count: usize) -> bool {
        if shape.first() != Some(&count) {
            return false;
        }
        match *self {
            LayerKind::Conv {
                channels,
                height,
                width,
            } => {
                shape[1..] == [channels, height, width] || shape[1..] == [channels, height * width]
            }
            LayerKind::ChannelsLast {
                channels,
                height,
                width,
            } => shape[1..] == [height, width, channels],
            LayerKind::Tokens { .. } | LayerKind::Features { .. } => {
                let prefix = match self {
                    LayerKind::Tokens { prefix, .. } => Some(*prefix),
                    _ => None,
                };
                LayerKind::of(shape, prefix).ok() == Some(*self)
            }
            LayerKind::Attention { heads, tokens } => shape[1..] == [heads, tokens, tokens],
        }
    }

    /// Whether its units can be described (attention scores cannot).
    pub fn is_units(&self) -> bool {
        !matches!(self, LayerKind::Attention { .. })
    }

    pub fn describe(&self) -> String {
        match *self {
            LayerKind::Conv {
                channels,
                height,
                width,
            } => format!("maps: {channels} units, {height}x{width}"),
            LayerKind::Tokens {
                channels,
                prefix,
                grid,
            } => format!("tokens: {channels} units, {grid}x{grid} patches, {prefix} prefix"),
            LayerKind::Features { channels } => {
                format!("features: {channels} units, whole image")
            }
            LayerKind::ChannelsLast {
                channels,
                height,
                width,
            } => format!("maps, channels last: {channels} units, {height}x{width}"),
            LayerKind::Attention { heads, tokens } => format!(
                "attention scores: {heads} heads over {tokens} tokens (not units; not described)"
            ),
        }
    }
}

/// Prefix tokens tried when detecting a token grid (a class token and up to 16 registers).
pub const MAX_PREFIX: usize = 17;

/// `(1, 3, 224, 224)`.
pub fn shape_text(shape: &[usize]) -> String {
    format!(
        "({})",
        shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}
