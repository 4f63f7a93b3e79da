//! Which axis of an ONNX node's output holds the channels.
//!
//! ONNX's convolutions and pools are channels first by definition, but a graph may carry its
//! activations channels last: Swin and ConvNeXt permute to (N, H, W, C) around their norms and
//! MLPs, TensorFlow exports transpose at every layer. Read as (N, C, H, W), such an output gives
//! wrong units and wrong masks without any error. So each node's axes are followed through the
//! graph ([`Axes`]): the image input is (N, C, H, W), convolutions and pools give (N, C, H, W),
//! a Transpose permutes the axes, and every other operator that keeps its input's rank keeps its
//! axes (elementwise operators, norms, MatMul over the last axis); a Reshape that changes the shape
//! loses them. Where the graph says, that decides; where it does not, a square map decides
//! ((1, C, S, S) or (1, S, S, C)), and a shape that is neither asks for `--layout`. Attention
//! scores (N, heads, T, T) are named as such, not read as maps of `heads` units.

use std::collections::{HashMap, HashSet};

use crate::layer_kind::{LayerKind, shape_text};

/// The layout a user states for outputs the graph does not settle (`--layout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// (N, C, H, W)
    Nchw,
    /// (N, H, W, C)
    Nhwc,
    /// (N, T, C) tokens only: rank-4 outputs the graph does not settle are refused.
    Tokens,
}

impl std::str::FromStr for Layout {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "nchw" => Ok(Layout::Nchw),
            "nhwc" => Ok(Layout::Nhwc),
            "tokens" => Ok(Layout::Tokens),
            other => Err(format!("unknown layout {other:?}: nchw, nhwc or tokens")),
        }
    }
}

/// One axis of an activation, as far as the graph tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    Batch,
    Channels,
    Height,
    Width,
}

/// A node's output axes, when the graph settles them.
pub type Axes = Option<Vec<Axis>>;

const NCHW: [Axis; 4] = [Axis::Batch, Axis::Channels, Axis::Height, Axis::Width];
const NHWC: [Axis; 4] = [Axis::Batch, Axis::Height, Axis::Width, Axis::Channels];

/// The axes of a node's output, from its operator and its inputs' axes (`inputs`: each input's
/// axes and rank; `None` for constants). `perm` is a Transpose's permutation.
pub fn propagate(op: &str, perm: Option<&[usize]>, inputs: &[(Axes, usize)], rank: usize) -> Axes {
    let channels_first = ["Conv", "Pool", "BatchNorm", "InstanceNorm", "LRN"];
    if rank == 4 && channels_first.iter().any(|k| op.contains(k)) {
        return Some(NCHW.to_vec());
    }
    let first = inputs.iter().find(|(axes, _)| axes.is_some());
    if op == "PermuteAxes" {
        let (Some(axes), r) = first? else { return None };
        if *r != rank {
            return None;
        }
        let reversed: Vec<usize> = (0..rank).rev().collect();
        let perm = perm.unwrap_or(&reversed);
        return (perm.len() == rank && perm.iter().all(|&p| p < rank))
            .then(|| perm.iter().map(|&p| axes[p]).collect());
    }
    // Operators that move values between axes: the axes are lost (a Reshape that keeps the shape
    // is caught by the caller). Concat, Slice, Split, Pad, Resize and keep-dims reductions keep
    // each axis's meaning, and go through the rank check below like elementwise operators.
    let reshapes = [
        "Reshape",
        "Flatten",
        "Squeeze",
        "Unsqueeze",
        "DepthToSpace",
        "SpaceToDepth",
        "Shape",
    ];
    if reshapes.iter().any(|k| op.contains(k)) {
        return None;
    }
    let (axes, r) = first?;
    (*r == rank).then(|| axes.clone()).flatten()
}

/// The kind of a rank-4 output of shape `shape` (batch first) from node `op` with axes `axes`.
/// `tokens`: the token counts of the model's (N, T, C) outputs; `layout`: the user's statement.
pub fn classify_rank4(
    shape: &[usize],
    op: &str,
    axes: &Axes,
    tokens: &HashSet<usize>,
    layout: Option<Layout>,
) -> Result<LayerKind, String> {
    let [_, a, b, c] = *shape else {
        return Err(format!("{}: not rank 4", shape_text(shape)));
    };
    let settled = axes.as_deref();
    let conv = || LayerKind::Conv {
        channels: a,
        height: b,
        width: c,
    };
    let last = || LayerKind::ChannelsLast {
        channels: c,
        height: a,
        width: b,
    };
    if b == c && settled != Some(&NCHW[..]) && (op == "Softmax" || tokens.contains(&b)) {
        return Ok(LayerKind::Attention {
            heads: a,
            tokens: b,
        });
    }
    match settled {
        Some(x) if x == NCHW => return Ok(conv()),
        Some(x) if x == NHWC => return Ok(last()),
        Some(x) => {
            let names: Vec<&str> = x
                .iter()
                .map(|a| match a {
                    Axis::Batch => "N",
                    Axis::Channels => "C",
                    Axis::Height => "H",
                    Axis::Width => "W",
                })
                .collect();
            return Err(format!(
                "its axes are ({}) in the graph: neither channels first nor channels last",
                names.join(", ")
            ));
        }
        None => {}
    }
    match layout {
        Some(Layout::Nchw) => Ok(conv()),
        Some(Layout::Nhwc) => Ok(last()),
        Some(Layout::Tokens) => Err(
            "a rank-4 output whose layout the graph does not say, and --layout tokens reads only \
             (N, T, C) outputs"
                .to_owned(),
        ),
        None if b == c && a != b => Ok(conv()),
        None if a == b && b != c => Ok(last()),
        None => Err(
            "the graph does not say whether its channels come first or last, and its shape is \
             not a square map either way: give --layout nchw or --layout nhwc"
                .to_owned(),
        ),
    }
}

/// The axes of every node, by node id, as [`propagate`] follows them in evaluation order.
#[derive(Debug, Default)]
pub struct AxesByNode {
    axes: HashMap<usize, (Axes, Vec<usize>)>,
}

impl AxesByNode {
    /// Records node `id`'s output: its axes from its inputs (`inputs`: their node ids).
    pub fn record(
        &mut self,
        id: usize,
        op: &str,
        perm: Option<&[usize]>,
        inputs: &[usize],
        shape: &[usize],
        is_input: bool,
    ) -> Axes {
        let known: Vec<&(Axes, Vec<usize>)> =
            inputs.iter().filter_map(|i| self.axes.get(i)).collect();
        let axes = if is_input {
            (shape.len() == 4).then(|| NCHW.to_vec())
        } else if let Some((axes, _)) = known
            .iter()
            .find(|(_, in_shape)| op.contains("Reshape") && in_shape.as_slice() == shape)
        {
            // A reshape that keeps the shape keeps the axes.
            axes.clone()
        } else {
            let known: Vec<(Axes, usize)> = known
                .iter()
                .map(|(axes, in_shape)| (axes.clone(), in_shape.len()))
                .collect();
            propagate(op, perm, &known, shape.len())
        };
        self.axes.insert(id, (axes.clone(), shape.to_vec()));
        axes
    }

    /// (C, H, W) when node `op` (a Reshape or Flatten of one input settled as (1, C, H, W))
    /// outputs (1, C, H*W): a channels-first map with its grid flattened.
    pub fn flattened_map(
        &self,
        op: &str,
        inputs: &[usize],
        shape: &[usize],
    ) -> Option<(usize, usize, usize)> {
        if !(op.contains("Reshape") || op.contains("Flatten")) {
            return None;
        }
        let (axes, in_shape) = inputs.iter().find_map(|i| self.axes.get(i))?;
        match (axes.as_deref(), in_shape.as_slice(), shape) {
            (Some(x), &[1, c, h, w], &[1, c2, hw]) if x == NCHW && c == c2 && h * w == hw => {
                Some((c, h, w))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_follow_transposes_and_keep_through_elementwise_operators() {
        let nchw = Some(NCHW.to_vec());
        let to_last = propagate("PermuteAxes", Some(&[0, 2, 3, 1]), &[(nchw.clone(), 4)], 4);
        assert_eq!(to_last, Some(NHWC.to_vec()));
        assert_eq!(propagate("Clip", None, &[(to_last.clone(), 4)], 4), to_last);
        assert_eq!(
            propagate(
                "PermuteAxes",
                Some(&[0, 3, 1, 2]),
                &[(to_last.clone(), 4)],
                4
            ),
            nchw
        );
        assert_eq!(propagate("ConvHir", None, &[(to_last, 4)], 4), nchw);
        assert_eq!(propagate("Reshape", None, &[(nchw.clone(), 4)], 3), None);
        // DenseNet's and Inception's concatenations keep channels first.
        assert_eq!(
            propagate(
                "InferenceConcat",
                None,
                &[(nchw.clone(), 4), (nchw.clone(), 4)],
                4
            ),
            nchw
        );
        // A constant input (no axes) does not hide the other one.
        assert_eq!(
            propagate("Add", None, &[(None, 4), (nchw.clone(), 4)], 4),
            nchw
        );
    }

    #[test]
    fn rank4_outputs_are_read_as_the_graph_or_the_shape_says_or_refused() {
        let none = HashSet::new();
        let conv = LayerKind::Conv {
            channels: 6,
            height: 56,
            width: 56,
        };
        let last = LayerKind::ChannelsLast {
            channels: 6,
            height: 56,
            width: 56,
        };
        let nhwc = Some(NHWC.to_vec());
        assert_eq!(
            classify_rank4(&[1, 56, 56, 6], "Clip", &nhwc, &none, None),
            Ok(last)
        );
        // Settled by the graph even against a shape that looks the other way.
        assert_eq!(
            classify_rank4(&[1, 6, 6, 6], "Clip", &nhwc, &none, None),
            Ok(LayerKind::ChannelsLast {
                channels: 6,
                height: 6,
                width: 6
            })
        );
        assert_eq!(
            classify_rank4(&[1, 56, 56, 6], "Reshape", &None, &none, None),
            Ok(last)
        );
        assert_eq!(
            classify_rank4(&[1, 6, 56, 56], "Reshape", &None, &none, None),
            Ok(conv)
        );
        let asked = classify_rank4(&[1, 8, 8, 8], "Reshape", &None, &none, None).unwrap_err();
        assert!(asked.contains("--layout nchw or --layout nhwc"), "{asked}");
        assert_eq!(
            classify_rank4(&[1, 8, 8, 8], "Reshape", &None, &none, Some(Layout::Nhwc)),
            Ok(LayerKind::ChannelsLast {
                channels: 8,
                height: 8,
                width: 8
            })
        );
        assert!(
            classify_rank4(&[1, 8, 8, 8], "Reshape", &None, &none, Some(Layout::Tokens)).is_err()
        );
        let odd = Some(vec![Axis::Batch, Axis::Height, Axis::Channels, Axis::Width]);
        let refused = classify_rank4(&[1, 56, 6, 56], "PermuteAxes", &odd, &none, None);
        assert!(refused.unwrap_err().contains("(N, H, C, W)"));
        // Attention scores: by the softmax, or by the model's token count.
        let tokens: HashSet<usize> = [197].into_iter().collect();
        for op in ["Softmax", "MatMulInference"] {
            assert_eq!(
                classify_rank4(&[1, 4, 197, 197], op, &None, &tokens, None),
                Ok(LayerKind::Attention {
                    heads: 4,
                    tokens: 197
                }),
                "{op}"
            );
        }
        assert!(matches!(
            classify_rank4(
                &[1, 64, 14, 14],
                "ConvHir",
                &Some(NCHW.to_vec()),
                &tokens,
                None
            ),
            Ok(LayerKind::Conv { .. })
        ));
    }
}
