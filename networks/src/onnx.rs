//! The user's own network, from an ONNX file, as a [`Network`] whose inner outputs give exemplars.
//!
//! Runs on tract (pure Rust; `tract-onnx`): the model is parsed once, its describable nodes are
//! found by typing it for a 1x3xSxS input, and for each (batch size, layers) a plan is optimised
//! whose outputs are exactly the chosen nodes, so nothing after them (the classifier) runs.
//!
//! Three kinds of output are described ([`LayerKind`]): convolutional maps (N, C, H, W), one unit
//! per channel; transformer tokens (N, T, C), one unit per channel, the patch tokens laid back on
//! their square grid and the class/register tokens before them dropped; and feature vectors
//! (N, C), one unit per feature, whose mask is the whole image.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail, ensure};
use burn::tensor::{Device, Tensor, TensorData};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::internal::DimLike;

pub use crate::input_spec::InputSpec;
pub use crate::layer_kind::{LayerKind, MAX_PREFIX, shape_text};
use crate::layout::{AxesByNode, Layout, classify_rank4};
use crate::{Activation, Network};

/// One output of a run, `count` samples of `kind`, laid out [count, units, h, w] as
/// [`Activation`] holds it: channels-last maps transposed, tokens laid on their grid with the
/// prefix tokens dropped.
pub(crate) fn unit_values(
    view: tract_ndarray::ArrayViewD<'_, f32>,
    kind: &LayerKind,
    count: usize,
) -> Result<Vec<f32>> {
    let shape = view.shape().to_vec();
    ensure!(
        kind.fits(&shape, count),
        "an output of shape {} where {} was expected",
        shape_text(&shape),
        kind.describe()
    );
    let mut values = Vec::with_capacity(view.len());
    match *kind {
        LayerKind::Conv { .. } | LayerKind::Features { .. } => {
            values.extend(view.iter().copied());
        }
        LayerKind::ChannelsLast {
            channels,
            height,
            width,
        } => {
            let view = view
                .into_dimensionality::<tract_ndarray::Ix4>()
                .expect("rank checked");
            for i in 0..count {
                for c in 0..channels {
                    for y in 0..height {
                        for x in 0..width {
                            values.push(view[[i, y, x, c]]);
                        }
                    }
                }
            }
        }
        LayerKind::Tokens {
            channels,
            prefix,
            grid,
        } => {
            // (count, T, C) -> (count, C, grid, grid), prefix tokens dropped.
            let view = view
                .into_dimensionality::<tract_ndarray::Ix3>()
                .expect("rank checked");
            for i in 0..count {
                for c in 0..channels {
                    for t in 0..grid * grid {
                        values.push(view[[i, prefix + t, c]]);
                    }
                }
            }
        }
        LayerKind::Attention { .. } => bail!("attention scores are not units"),
    }
    Ok(values)
}

/// A node of the model and what it outputs for one image.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub name: String,
    pub op: String,
    /// Its output's shape for a 1x3xSxS input.
    pub shape: Vec<usize>,
    /// Its kind, or why it cannot be described.
    pub kind: std::result::Result<LayerKind, String>,
}

/// A parsed ONNX model ready to give the activations of any of its nodes.
pub struct OnnxNetwork {
    path: PathBuf,
    model: InferenceModel,
    size: usize,
    mean: [f32; 3],
    std: [f32; 3],
    nodes: Vec<NodeInfo>,
    /// Threads a batch is split over (data parallel: each runs the plan on its share).
    threads: usize,
    /// Images per run of the plan within a share (tract was fastest at 1 on 2 cores; see
    /// `trainer bench --onnx`).
    run_size: usize,
    /// Optimised plans by (batch, layers).
    plans: Mutex<HashMap<(usize, Vec<String>), Plan>>,
    /// Optimised plans with units switched off, by (batch, units off).
    ablated_plans: Mutex<HashMap<(usize, OnnxOff), Plan>>,
    /// Whether the note about a refused batch size was printed.
    batch_warned: AtomicBool,
}

impl std::fmt::Debug for OnnxNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxNetwork")
            .field("path", &self.path)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl OnnxNetwork {
    /// Parses `path`, checks that every operator is one tract runs, and types the model for a
    /// 1x3xSxS input to learn its nodes' shapes. A batch is split over `threads` threads.
    pub fn load(path: &Path, input: &InputSpec, threads: usize) -> Result<Self> {
        let bytes = std::fs::metadata(path)
            .with_context(|| format!("{}: cannot read it", path.display()))?;
        ensure!(bytes.is_file(), "{}: not a file", path.display());
        let model = read_model(path)?;
        let inputs = model.input_outlets()?.len();
        ensure!(
            inputs == 1,
            "{}: the model takes {inputs} inputs; only models of one image input are supported",
            path.display()
        );
        let declared = declared_size(&model);
        let size = input.size.or(declared).unwrap_or(crate::SIZE);
        ensure!(size >= 1, "--input-size must be positive");
        for (what, values) in [("mean", input.mean), ("std", input.std)] {
            ensure!(
                values.iter().all(|v| v.is_finite()),
                "--{what} must be three finite numbers"
            );
        }
        ensure!(
            input.std.iter().all(|v| *v != 0.0),
            "--std must not contain 0"
        );
        let nodes = node_infos(&model, size, input).with_context(|| {
            format!(
                "{}: inferring its shapes for a 1x3x{size}x{size} input",
                path.display()
            )
        })?;
        Ok(OnnxNetwork {
            path: path.to_owned(),
            model,
            size,
            mean: input.mean,
            std: input.std,
            nodes,
            threads: threads.max(1),
            run_size: 1,
            plans: Mutex::new(HashMap::new()),
            ablated_plans: Mutex::new(HashMap::new()),
            batch_warned: AtomicBool::new(false),
        })
    }

    /// Images per run of the plan (1 by default): larger runs batch inside tract.
    pub fn with_run_size(mut self, images: usize) -> Self {
        self.run_size = images.max(1);
        self
    }

    /// Every node with a float output, in forward order, with its shape and kind.
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// The side of the square input.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The node `layer` names (a node name, the name of its output tensor, or a PyTorch module
    /// path), if it can be described; else an error naming the closest names.
    pub fn resolve(&self, layer: &str) -> Result<&NodeInfo> {
        let node = self
            .nodes
            .iter()
            .find(|n| n.name == layer)
            .or_else(|| {
                let outlet = self.model.find_outlet_label(layer)?;
                let name = &self.model.node(outlet.node).name;
                (outlet.slot == 0)
                    .then(|| self.nodes.iter().find(|n| &n.name == name))
                    .flatten()
            })
            .or_else(|| self.module_output(layer));
        match node {
            Some(n) => match &n.kind {
                Ok(kind @ LayerKind::Attention { .. }) => bail!(
                    "layer {layer:?} outputs {}, {}: describe the attention block's output or \
                     its MLP instead",
                    shape_text(&n.shape),
                    kind.describe()
                ),
                Ok(_) => Ok(n),
                Err(why) => bail!(
                    "layer {layer:?} outputs {} ({why}): it cannot be described",
                    shape_text(&n.shape)
                ),
            },
            None => {
                let close = self.close_names(layer, 5);
                bail!(
                    "{}: no node {layer:?}{}; `trainer layers --model {}` lists them all",
                    self.path.display(),
                    if close.is_empty() {
                        String::new()
                    } else {
                        format!("; close names: {}", close.join(", "))
                    },
                    self.path.display()
                )
            }
        }
    }

    /// The output of the PyTorch module at `path` (e.g. `layer4.1`, `blocks.3`): the last node, in
    /// forward order, that torch.onnx.export put inside that module's scope.
    fn module_output(&self, path: &str) -> Option<&NodeInfo> {
        if path.is_empty() || path.starts_with('/') {
            return None;
        }
        self.nodes.iter().rev().find(|n| {
            module_path(&n.name).is_some_and(|m| {
                m == path || m.starts_with(path) && m[path.len()..].starts_with('.')
            })
        })
    }

    /// Every PyTorch module with a describable output, as (module path, its output node), in
    /// forward order of those outputs.
    pub fn modules(&self) -> Vec<(String, &NodeInfo)> {
        let mut paths: Vec<String> = Vec::new();
        for n in &self.nodes {
            if let Some(m) = module_path(&n.name) {
                let parts: Vec<&str> = m.split('.').collect();
                for i in 1..=parts.len() {
                    let p = parts[..i].join(".");
                    if !paths.contains(&p) {
                        paths.push(p);
                    }
                }
            }
        }
        let mut out: Vec<(String, &NodeInfo)> = paths
            .into_iter()
            .filter_map(|p| {
                let node = self.module_output(&p)?;
                node.kind.is_ok().then_some((p, node))
            })
            .collect();
        let order = |n: &NodeInfo| self.nodes.iter().position(|m| m.name == n.name);
        out.sort_by_key(|(p, n)| (order(n), p.len()));
        out
    }

    /// The describable module paths and node names nearest to `name`: those containing it or
    /// contained in it first, then by edit distance.
    fn close_names(&self, name: &str, n: usize) -> Vec<String> {
        let lower = name.to_lowercase();
        let mut candidates: Vec<String> = self.modules().into_iter().map(|(p, _)| p).collect();
        candidates.extend(
            self.nodes
                .iter()
                .filter(|node| node.kind.is_ok())
                .map(|node| node.name.clone()),
        );
        let mut scored: Vec<(usize, usize, String)> = candidates
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let candidate = c.to_lowercase();
                let score = if candidate.contains(&lower) || lower.contains(&candidate) {
                    0
                } else {
                    1 + strsim::levenshtein(&lower, &candidate)
                };
                (score, i, c)
            })
            .collect();
        scored.sort();
        scored
            .into_iter()
            .take(n)
            .map(|(_, _, s)| format!("{s:?}"))
            .collect()
    }

    /// The optimised plan that outputs `layers` for batches of `batch` images.
    fn plan(&self, batch: usize, layers: &[String]) -> Result<Plan> {
        let key = (batch, layers.to_vec());
        if let Some(plan) = self.plans.lock().expect("no panic").get(&key) {
            return Ok(plan.clone());
        }
        let names: Vec<String> = layers
            .iter()
            .map(|l| self.resolve(l).map(|n| n.name.clone()))
            .collect::<Result<_>>()?;
        let plan = self
            .model
            .clone()
            .with_input_fact(0, f32::fact([batch, 3, self.size, self.size]).into())
            .and_then(|m| m.with_outputs_by_name(&names))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .with_context(|| {
                format!(
                    "{}: preparing the model for batches of {batch} at {s}x{s}",
                    self.path.display(),
                    s = self.size
                )
            })?;
        self.plans
            .lock()
            .expect("no panic")
            .insert(key, plan.clone());
        Ok(plan)
    }

    /// Runs `n` preprocessed images through the plan for `layers`: the batch split over the
    /// threads, each share in one run when the model takes batches, else one image at a time
    /// (models exported with a fixed batch of 1).
    fn forward(&self, input: &[f32], n: usize, layers: &[String]) -> Result<Vec<Activation>> {
        let per_image = 3 * self.size * self.size;
        ensure!(input.len() == n * per_image, "input of {n} images");
        let kinds: Vec<LayerKind> = layers
            .iter()
            .map(|l| Ok(self.resolve(l)?.kind.clone().expect("resolve checks")))
            .collect::<Result<_>>()?;
        // Shares of the batch, in order: (first image, count).
        let threads = self.threads.min(n).max(1);
        let shares: Vec<(usize, usize)> = (0..threads)
            .map(|t| (t * n / threads, (t + 1) * n / threads - t * n / threads))
            .filter(|(_, c)| *c > 0)
            .collect();
        // Plans first, on this thread: optimising is not worth doing twice.
        let mut runs: Vec<(Plan, usize, usize)> = Vec::new();
        for &(first, count) in &shares {
            let mut at = first;
            while at < first + count {
                let size = self.run_size.min(first + count - at);
                match self.batch_plan(size, layers)? {
                    Some(plan) => runs.push((plan, at, size)),
                    None => {
                        let plan = self.plan(1, layers)?;
                        runs.extend((at..at + size).map(|i| (plan.clone(), i, 1)));
                    }
                }
                at += size;
            }
        }
        let run_one = |(plan, first, count): &(Plan, usize, usize)| {
            let results = self.run_plan(plan, input, *first, *count)?;
            self.unpack(&results, &kinds, *count)
        };
        let parts: Vec<Vec<Vec<f32>>> = if threads > 1 {
            // Runs grouped by thread, in order.
            let per_thread = runs.len().div_ceil(threads);
            std::thread::scope(|scope| {
                let handles: Vec<_> = runs
                    .chunks(per_thread)
                    .map(|group| {
                        scope.spawn(move || group.iter().map(run_one).collect::<Result<Vec<_>>>())
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("no panic in a run"))
                    .collect::<Result<Vec<Vec<_>>>>()
                    .map(|v| v.into_iter().flatten().collect())
            })?
        } else {
            runs.iter().map(run_one).collect::<Result<_>>()?
        };
        Ok(kinds
            .iter()
            .enumerate()
            .map(|(l, k)| {
                let (height, width) = k.map();
                let mut values = Vec::with_capacity(n * k.units() * height * width);
                for part in &parts {
                    values.extend_from_slice(&part[l]);
                }
                Activation {
                    values,
                    units: k.units(),
                    height,
                    width,
                }
            })
            .collect())
    }

    /// Runs `plan` on images `first..first + count` of the preprocessed `input`.
    fn run_plan(
        &self,
        plan: &Plan,
        input: &[f32],
        first: usize,
        count: usize,
    ) -> Result<TVec<TValue>> {
        let per_image = 3 * self.size * self.size;
        let x = Tensor4::from_shape(
            &[count, 3, self.size, self.size],
            &input[first * per_image..(first + count) * per_image],
        )
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        plan.run(tvec!(x.into()))
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .with_context(|| format!("{}: running the model", self.path.display()))
    }

    /// The plan for batches of `count`, or `None` when the model refuses that batch size (said
    /// once).
    fn batch_plan(&self, count: usize, layers: &[String]) -> Result<Option<Plan>> {
        if count == 1 {
            return self.plan(1, layers).map(Some);
        }
        match self.plan(count, layers) {
            Ok(plan) => Ok(Some(plan)),
            Err(e) => {
                if !self.batch_warned.swap(true, Ordering::Relaxed) {
                    eprintln!(
                        "note: {} does not run in batches of {count} ({e:#}); running one image \
                         at a time (export it with a dynamic batch axis to batch)",
                        self.path.display()
                    );
                }
                Ok(None)
            }
        }
    }

    /// The outputs of one run, each laid out [count, units, h, w].
    fn unpack(
        &self,
        results: &[TValue],
        kinds: &[LayerKind],
        count: usize,
    ) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(kinds.len());
        for (result, kind) in results.iter().zip(kinds) {
            let view = result
                .to_plain_array_view::<f32>()
                .map_err(|e| anyhow::anyhow!("{e:#}"))
                .context("reading an output as float32")?;
            let values = unit_values(view, kind, count)?;
            out.push(values);
        }
        Ok(out)
    }
}

/// Units switched off in an ONNX model: (layer, as [`OnnxNetwork::resolve`] takes it; channels).
pub type OnnxOff = Vec<(String, Vec<usize>)>;

/// What [`OnnxNetwork::forward_ablated`] gives.
#[derive(Debug, Clone)]
pub struct Ablated {
    /// The model's first output, [n, classes], row-major.
    pub logits: Vec<f32>,
    pub classes: usize,
    /// Each switched-off layer's output after the switch, as the network's next nodes see it
    /// (laid out as [`Network::run`] gives it).
    pub layers: Vec<Activation>,
}

impl OnnxNetwork {
    /// Runs `n` preprocessed images with the channels `off` zeroed after their nodes: a node
    /// multiplying each chosen node's output by a 0/1 mask over its channels is inserted in the
    /// graph, and every consumer of the node reads the masked output. Gives the model's first
    /// output (which must be [N, classes]) and the masked outputs.
    pub fn forward_ablated(
        &self,
        input: &[f32],
        n: usize,
        off: &[(String, Vec<usize>)],
    ) -> Result<Ablated> {
        let per_image = 3 * self.size * self.size;
        ensure!(input.len() == n * per_image, "input of {n} images");
        let kinds: Vec<LayerKind> = off
            .iter()
            .map(|(l, _)| Ok(self.resolve(l)?.kind.clone().expect("resolve checks")))
            .collect::<Result<_>>()?;
        let mut runs: Vec<(Plan, usize, usize)> = Vec::new();
        match self.ablated_plan(n, off) {
            Ok(plan) => runs.push((plan, 0, n)),
            Err(_) if n > 1 => {
                let plan = self.ablated_plan(1, off)?;
                runs.extend((0..n).map(|i| (plan.clone(), i, 1)));
            }
            Err(e) => return Err(e),
        }
        let mut logits = Vec::new();
        let mut classes = 0;
        let mut layers: Vec<Vec<f32>> = vec![Vec::new(); off.len()];
        for (plan, first, count) in runs {
            let results = self.run_plan(&plan, input, first, count)?;
            let view = results[0]
                .to_plain_array_view::<f32>()
                .map_err(|e| anyhow::anyhow!("{e:#}"))
                .context("reading the model's output as float32")?;
            let shape = view.shape().to_vec();
            let [rows, width] = shape[..] else {
                bail!(
                    "{}: its output has shape {}; switching units off compares [N, classes] \
                     outputs",
                    self.path.display(),
                    shape_text(&shape)
                );
            };
            ensure!(rows == count, "an output of {rows} rows for {count} images");
            classes = width;
            logits.extend(view.iter().copied());
            for (l, values) in self
                .unpack(&results[1..], &kinds, count)?
                .into_iter()
                .enumerate()
            {
                layers[l].extend(values);
            }
        }
        let layers = kinds
            .iter()
            .zip(layers)
            .map(|(k, values)| {
                let (height, width) = k.map();
                Activation {
                    values,
                    units: k.units(),
                    height,
                    width,
                }
            })
            .collect();
        Ok(Ablated {
            logits,
            classes,
            layers,
        })
    }

    /// The plan of the model with `off` switched off, for batches of `batch`; outputs: the model's
    /// first output, then each masked node output.
    fn ablated_plan(&self, batch: usize, off: &[(String, Vec<usize>)]) -> Result<Plan> {
        let key = (batch, off.to_vec());
        if let Some(plan) = self.ablated_plans.lock().expect("no panic").get(&key) {
            return Ok(plan.clone());
        }
        let mut model = self.model.clone();
        let output = *model
            .output_outlets()?
            .first()
            .with_context(|| format!("{}: the model has no output", self.path.display()))?;
        let mut outputs = vec![output];
        for (layer, units) in off {
            let info = self.resolve(layer)?;
            let kind = info.kind.clone().expect("resolve checks");
            let channels = kind.units();
            let mut mask = vec![1f32; channels];
            for &u in units {
                ensure!(
                    u < channels,
                    "{layer} has {channels} units; unit {u} is not one of them"
                );
                mask[u] = 0.0;
            }
            // Broadcast over the batch and, for maps, the positions: [C, 1, 1] against
            // (N, C, H, W); [C] against (N, T, C) and (N, C).
            let shape: &[usize] = match kind {
                LayerKind::Conv { .. } if info.shape.len() == 3 => &[channels, 1],
                LayerKind::Conv { .. } => &[channels, 1, 1],
                LayerKind::Tokens { .. }
                | LayerKind::Features { .. }
                | LayerKind::ChannelsLast { .. } => &[channels],
                LayerKind::Attention { .. } => bail!("{layer}: attention scores are not units"),
            };
            let mask = Tensor4::from_shape(shape, &mask).map_err(|e| anyhow::anyhow!("{e:#}"))?;
            let outlet = OutletId::new(model.node_by_name(&info.name)?.id, 0);
            let masked = (|| -> TractResult<OutletId> {
                let mut patch = tract_onnx::tract_hir::infer::InferenceModelPatch::default();
                let tap = patch.tap_model(&model, outlet)?;
                let mask = patch.add_const(format!("{}.milan_off_mask", info.name), mask)?;
                let wired = patch.wire_node(
                    format!("{}.milan_off", info.name),
                    tract_onnx::tract_hir::ops::binary::BinIntoHir::into_hir(
                        tract_onnx::tract_core::ops::math::Mul,
                    ),
                    &[tap, mask],
                )?[0];
                patch.shunt_outside(&model, outlet, wired)?;
                let name = patch.node(wired.node).name.clone();
                patch.apply(&mut model)?;
                Ok(OutletId::new(model.node_by_name(&name)?.id, 0))
            })()
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .with_context(|| format!("{}: switching units of {layer} off", self.path.display()))?;
            outputs.push(masked);
        }
        let plan = model
            .with_input_fact(0, f32::fact([batch, 3, self.size, self.size]).into())
            .and_then(|mut m| {
                m.select_output_outlets(&outputs)?;
                Ok(m)
            })
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .with_context(|| {
                format!(
                    "{}: preparing the model with units off for batches of {batch}",
                    self.path.display()
                )
            })?;
        self.ablated_plans
            .lock()
            .expect("no panic")
            .insert(key, plan.clone());
        Ok(plan)
    }
}

/// An optimised plan, shared by the threads that run it.
type Plan = Arc<TypedRunnableModel>;

type Tensor4 = tract_onnx::prelude::Tensor;

/// Parses an ONNX file, refusing a model with an operator tract does not run, named with its node.
pub(crate) fn read_model(path: &Path) -> Result<InferenceModel> {
    let not_onnx = || format!("{} is not an ONNX model tract can read", path.display());
    let onnx = tract_onnx::onnx();
    let proto = onnx
        .proto_model_for_path(path)
        .map_err(|e| anyhow::anyhow!("{e:#}"))
        .with_context(not_onnx)?;
    // Before tract reads a byte of external data.
    crate::external_data::check(path, &proto)?;
    let dir = path.parent().and_then(|d| d.to_str());
    let parsed = onnx
        .parse(&proto, dir)
        .map_err(|e| anyhow::anyhow!("{e:#}"))
        .with_context(not_onnx)?;
    ensure!(
        parsed.unresolved_inputs.is_empty(),
        "{}: inputs that nothing defines: {}",
        path.display(),
        parsed.unresolved_inputs.join(", ")
    );
    let model = parsed.model;
    let unknown: Vec<String> = model
        .nodes()
        .iter()
        .filter_map(|n| {
            let op = n.op.name();
            op.strip_prefix("Unimplemented(")
                .and_then(|o| o.strip_suffix(')'))
                .map(|o| format!("{o} (node {:?})", n.name))
        })
        .collect();
    if !unknown.is_empty() {
        bail!(
            "{}: the runtime (tract {}) has no implementation of {}",
            path.display(),
            TRACT_VERSION,
            unknown.join(", ")
        );
    }
    Ok(model)
}

/// The version of tract this build runs (for error messages).
pub const TRACT_VERSION: &str = "0.23";

/// The square side declared by the model's input (N, 3, S, S), if concrete.
fn declared_size(model: &InferenceModel) -> Option<usize> {
    let fact = model.input_fact(0).ok()?;
    let shape = fact.shape.concretize()?;
    let dims: Vec<usize> = shape
        .iter()
        .map(|d| d.to_usize().ok())
        .collect::<Option<_>>()?;
    match dims[..] {
        [_, 3, h, w] if h == w => Some(h),
        _ => None,
    }
}

/// Every node with a float output, in forward order, with its shape for one image (from
/// tract's shape inference over the ONNX graph, so every ONNX node keeps its name).
fn node_infos(model: &InferenceModel, size: usize, input: &InputSpec) -> Result<Vec<NodeInfo>> {
    let analysed = model
        .clone()
        .with_input_fact(0, f32::fact([1, 3, size, size]).into())
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    describe_nodes(analysed, input.prefix_tokens, input.layout)
}

/// Every node with a float output of `analysed` (its inputs' facts set for one sample), in
/// forward order, with its shape and kind.
pub(crate) fn describe_nodes(
    mut analysed: InferenceModel,
    prefix: Option<usize>,
    layout: Option<Layout>,
) -> Result<Vec<NodeInfo>> {
    analysed
        .analyse(false)
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let inputs = analysed.input_outlets()?.to_vec();
    let mut axes = AxesByNode::default();
    // (node, its axes) of every float output.
    let mut found = Vec::new();
    for id in analysed.eval_order()? {
        let node = analysed.node(id);
        let Some(fact) = node.outputs.first().map(|o| &o.fact) else {
            continue;
        };
        let shape: Option<Vec<usize>> = fact.shape.concretize().and_then(|dims| {
            dims.iter()
                .map(|d| d.to_usize().ok())
                .collect::<Option<Vec<_>>>()
        });
        let is_input = inputs.iter().any(|o| o.node == id);
        let op = node.op.name().to_string();
        let perm = transpose_axes(node.op.as_op());
        let from: Vec<usize> = node.inputs.iter().map(|o| o.node).collect();
        let node_axes = shape
            .as_ref()
            .map(|shape| axes.record(id, &op, perm.as_deref(), &from, shape, is_input));
        if is_input {
            continue;
        }
        // Constants (weights, shapes) are not activations.
        if fact.value.concretize().is_some() {
            continue;
        }
        if fact.datum_type.concretize() != Some(f32::datum_type()) {
            continue;
        }
        let Some(shape) = shape else {
            continue;
        };
        // Every kind but rank-4 outputs' now; those wait for the model's token counts.
        let kind = if shape.first() != Some(&1) {
            Err("its first axis is not the batch".to_owned())
        } else if let Some((channels, height, width)) = axes.flattened_map(&op, &from, &shape) {
            // (N, C, H*W): a channels-first map with its grid flattened, not tokens.
            Ok(LayerKind::Conv {
                channels,
                height,
                width,
            })
        } else if shape.len() == 4 {
            Err(String::new())
        } else {
            LayerKind::of(&shape, prefix)
        };
        found.push((
            NodeInfo {
                name: node.name.clone(),
                op,
                shape,
                kind,
            },
            node_axes.flatten(),
        ));
    }
    let token_counts: std::collections::HashSet<usize> = found
        .iter()
        .filter_map(|(info, _)| match info.kind {
            Ok(LayerKind::Tokens { prefix, grid, .. }) => Some(prefix + grid * grid),
            _ => None,
        })
        .collect();
    Ok(found
        .into_iter()
        .map(|(mut info, node_axes)| {
            if info.shape.len() == 4 && info.shape[0] == 1 {
                info.kind =
                    classify_rank4(&info.shape, &info.op, &node_axes, &token_counts, layout);
            }
            info
        })
        .collect())
}

/// A Transpose's permutation (`None` for any other operator, or when it has none, i.e. reversed).
fn transpose_axes(op: &dyn Op) -> Option<Vec<usize>> {
    use tract_onnx::tract_hir::ops::expandable::Expansion;
    let expansion = op.downcast_ref::<Box<dyn Expansion>>()?;
    expansion
        .as_any()
        .downcast_ref::<tract_onnx::tract_hir::ops::array::PermuteAxes>()?
        .axes
        .as_ref()
        .map(|a| a.to_vec())
}

/// The module path of a node torch.onnx.export named: `/layer4/layer4.1/conv1/Conv` ->
/// `layer4.1.conv1`, `/blocks.0/attn/qkv/MatMul` -> `blocks.0.attn.qkv`. Scopes are either full
/// paths (`layer4.1`) or names inside the enclosing module (`conv1`). `None` outside any module.
pub fn module_path(node: &str) -> Option<String> {
    let scopes: Vec<&str> = node.strip_prefix('/')?.split('/').collect();
    let (_, scopes) = scopes.split_last()?;
    let mut path = String::new();
    for s in scopes {
        if s.is_empty() {
            return None;
        }
        if path.is_empty() || (s.starts_with(path.as_str()) && s[path.len()..].starts_with('.')) {
            path = (*s).to_owned();
        } else {
            path = format!("{path}.{s}");
        }
    }
    (!path.is_empty()).then_some(path)
}

impl Network for OnnxNetwork {
    fn layers(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.kind.as_ref().is_ok_and(LayerKind::is_units))
            .map(|n| n.name.clone())
            .collect()
    }

    fn check_layers(&self, layers: &[String]) -> Result<()> {
        for l in layers {
            self.resolve(l)?;
        }
        Ok(())
    }

    fn input_size(&self) -> usize {
        self.size
    }

    fn preprocess(&self, img: &image::RgbImage) -> Vec<f32> {
        let plane = (img.width() * img.height()) as usize;
        let mut out = vec![0f32; 3 * plane];
        for (i, p) in img.pixels().enumerate() {
            for c in 0..3 {
                out[c * plane + i] = (f32::from(p[c]) / 255.0 - self.mean[c]) / self.std[c];
            }
        }
        out
    }

    fn run(
        &self,
        input: Vec<f32>,
        n: usize,
        layers: &[String],
        _device: &Device,
    ) -> Result<Vec<Activation>> {
        self.forward(&input, n, layers)
    }

    /// The same activations as burn tensors (maps; tokens on their grid; features as 1x1 maps).
    fn activations(&self, x: Tensor<4>, layers: &[String]) -> Result<Vec<Tensor<4>>> {
        let [n, ..] = x.dims();
        let device = x.device();
        let input = x
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("reading the input: {e:?}"))?;
        Ok(self
            .forward(&input, n, layers)?
            .into_iter()
            .map(|a| {
                Tensor::from_data(
                    TensorData::new(a.values, [n, a.units, a.height, a.width]),
                    &device,
                )
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_paths_are_rebuilt_from_both_kinds_of_scope() {
        assert_eq!(
            module_path("/layer4/layer4.1/conv1/Conv").as_deref(),
            Some("layer4.1.conv1")
        );
        assert_eq!(
            module_path("/blocks.0/attn/qkv/MatMul").as_deref(),
            Some("blocks.0.attn.qkv")
        );
        assert_eq!(
            module_path("/_blocks.15/Add").as_deref(),
            Some("_blocks.15")
        );
        assert_eq!(module_path("/Concat_2"), None);
        assert_eq!(module_path("onnx::Add_12"), None);
    }

    #[test]
    fn output_kinds_follow_the_shape() {
        assert_eq!(
            LayerKind::of(&[1, 64, 14, 14], None),
            Ok(LayerKind::Conv {
                channels: 64,
                height: 14,
                width: 14
            })
        );
        // A class token; a class token and four registers; no prefix at all.
        for (tokens, prefix) in [(197, 1), (201, 5), (196, 0)] {
            assert_eq!(
                LayerKind::of(&[1, tokens, 768], None),
                Ok(LayerKind::Tokens {
                    channels: 768,
                    prefix,
                    grid: 14
                }),
                "{tokens} tokens"
            );
        }
        assert_eq!(
            LayerKind::of(&[1, 201, 768], Some(5)),
            Ok(LayerKind::Tokens {
                channels: 768,
                prefix: 5,
                grid: 14
            })
        );
        assert!(LayerKind::of(&[1, 197, 768], Some(2)).is_err());
        assert!(LayerKind::of(&[1, 50, 768], Some(0)).is_err());
        assert_eq!(
            LayerKind::of(&[1, 1000], None),
            Ok(LayerKind::Features { channels: 1000 })
        );
        assert!(LayerKind::of(&[1, 3, 2, 4, 4], None).is_err());
        assert!(LayerKind::of(&[1], None).is_err());
    }
}
