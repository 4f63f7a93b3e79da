//! A generator from an ONNX file: latent inputs in, inner maps and the generated image out (the
//! reference's `generative()` exemplars: a unit's exemplars are the images generated from the
//! latents where it peaks, its masks its own maps).
//!
//! Runs on tract as [`crate::onnx::OnnxNetwork`] does. The model may take several named inputs,
//! each one row per sample (BigGAN's z and class): float inputs take float rows; a float input
//! of width C given integer class ids takes them as one-hot rows; an integer input takes the ids.
//! The image output is the model output shaped (N, 3, H, W) (or the one named), mapped from its
//! value range (`[-1, 1]` for tanh generators) to 0..255.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, bail, ensure};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::internal::DimLike;

use crate::Activation;
use crate::onnx::{LayerKind, NodeInfo, describe_nodes, read_model, shape_text};

type Plan = Arc<TypedRunnableModel>;

/// One latent input's samples.
#[derive(Debug, Clone, PartialEq)]
pub enum Latent {
    /// Float rows of `width` values each.
    Floats { values: Vec<f32>, width: usize },
    /// One integer (a class id) per sample.
    Ids(Vec<i64>),
}

impl Latent {
    pub fn samples(&self) -> usize {
        match self {
            Latent::Floats { values, width } => values.len() / (*width).max(1),
            Latent::Ids(ids) => ids.len(),
        }
    }
}

/// A model input: its name and what one sample of it is.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorInput {
    pub name: String,
    /// Float rows of this width, or integer ids (`None`).
    pub width: Option<usize>,
}

/// A parsed generator.
pub struct OnnxGenerator {
    path: PathBuf,
    model: InferenceModel,
    inputs: Vec<GeneratorInput>,
    output: String,
    height: usize,
    width: usize,
    range: (f32, f32),
    nodes: Vec<NodeInfo>,
    plans: Mutex<HashMap<(usize, Vec<String>), Plan>>,
}

impl std::fmt::Debug for OnnxGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxGenerator")
            .field("path", &self.path)
            .field("output", &self.output)
            .finish_non_exhaustive()
    }
}

impl OnnxGenerator {
    /// Parses `path`, learns its inputs and every node's shape for one sample, and finds the
    /// image output (`output`, or the one output shaped (N, 3, H, W)). `range` is the image
    /// output's value range.
    pub fn load(path: &Path, output: Option<&str>, range: (f32, f32)) -> Result<Self> {
        ensure!(
            range.0.is_finite() && range.1.is_finite() && range.0 < range.1,
            "--output-range: two finite numbers, low then high"
        );
        let model = read_model(path)?;
        let mut inputs = Vec::new();
        for (i, outlet) in model.input_outlets()?.iter().enumerate() {
            let name = model.node(outlet.node).name.clone();
            let fact = model.input_fact(i)?;
            let dims: Option<Vec<Option<usize>>> = fact
                .shape
                .concretize()
                .map(|d| d.iter().map(|x| x.to_usize().ok()).collect());
            let float = fact.datum_type.concretize().is_none_or(|t| t.is_float());
            let width = match dims.as_deref() {
                Some([_, Some(w)]) if float => Some(*w),
                Some([_]) if !float => None,
                _ => bail!(
                    "{}: input {name:?} is not one row per sample (float (N, D) or integer (N))",
                    path.display()
                ),
            };
            inputs.push(GeneratorInput { name, width });
        }
        let nodes = typed_nodes(&model, &inputs)
            .with_context(|| format!("{}: inferring its shapes for one sample", path.display()))?;
        let image = match output {
            Some(o) => nodes
                .iter()
                .find(|n| n.name == o)
                .with_context(|| format!("{}: no node named {o:?}", path.display()))?,
            None => {
                let outputs: Vec<String> = model
                    .output_outlets()?
                    .iter()
                    .map(|o| model.node(o.node).name.clone())
                    .collect();
                nodes
                    .iter()
                    .find(|n| outputs.contains(&n.name) && matches!(n.shape[..], [1, 3, _, _]))
                    .with_context(|| {
                        format!(
                            "{}: no output shaped (N, 3, H, W) among {}; name it with --output",
                            path.display(),
                            outputs.join(", ")
                        )
                    })?
            }
        };
        let [1, 3, height, width] = image.shape[..] else {
            bail!(
                "{}: {:?} is {}, not an image (N, 3, H, W)",
                path.display(),
                image.name,
                shape_text(&image.shape)
            );
        };
        Ok(OnnxGenerator {
            path: path.to_owned(),
            output: image.name.clone(),
            model,
            inputs,
            height,
            width,
            range,
            nodes,
            plans: Mutex::new(HashMap::new()),
        })
    }

    pub fn inputs(&self) -> &[GeneratorInput] {
        &self.inputs
    }

    /// Every node with a float output, in forward order, with its shape for one sample.
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// Nodes whose units can be described (maps, tokens, features), the image output excluded.
    pub fn layers(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.kind.as_ref().is_ok_and(LayerKind::is_units) && n.name != self.output)
            .map(|n| n.name.clone())
            .collect()
    }

    /// The image output's node and its (height, width).
    pub fn image(&self) -> (&str, usize, usize) {
        (&self.output, self.height, self.width)
    }

    fn kind(&self, layer: &str) -> Result<LayerKind> {
        let node = self
            .nodes
            .iter()
            .find(|n| n.name == layer)
            .with_context(|| {
                format!(
                    "unknown layer {layer:?}: the generator has {}",
                    self.layers().join(", ")
                )
            })?;
        match node.kind.clone() {
            Ok(kind) if kind.is_units() => Ok(kind),
            Ok(kind) => bail!("layer {layer:?} cannot be described: {}", kind.describe()),
            Err(why) => bail!("layer {layer:?} cannot be described: {why}"),
        }
    }

    /// Refuses layers the generator cannot give, naming them.
    pub fn check_layers(&self, layers: &[String]) -> Result<()> {
        for l in layers {
            self.kind(l)?;
        }
        Ok(())
    }

    fn plan(&self, batch: usize, layers: &[String]) -> Result<Plan> {
        let key = (batch, layers.to_vec());
        if let Some(plan) = self.plans.lock().expect("no panic").get(&key) {
            return Ok(plan.clone());
        }
        let mut names = layers.to_vec();
        names.push(self.output.clone());
        let mut model = self.model.clone();
        for (i, input) in self.inputs.iter().enumerate() {
            model = model
                .with_input_fact(i, input_fact(input, batch))
                .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        }
        let plan = model
            .with_outputs_by_name(&names)
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .with_context(|| {
                format!(
                    "{}: preparing the model for batches of {batch}",
                    self.path.display()
                )
            })?;
        self.plans
            .lock()
            .expect("no panic")
            .insert(key, plan.clone());
        Ok(plan)
    }

    /// Runs samples `first..first + n` of `latents` (one per model input, in the model's input
    /// order): the activations of `layers` and the generated images, [n, 3, H, W] as 0..255
    /// floats (not rounded).
    pub fn run(
        &self,
        latents: &[Latent],
        first: usize,
        n: usize,
        layers: &[String],
    ) -> Result<(Vec<Activation>, Vec<f32>)> {
        ensure!(latents.len() == self.inputs.len(), "one latent per input");
        let kinds: Vec<LayerKind> = layers.iter().map(|l| self.kind(l)).collect::<Result<_>>()?;
        let plan = match self.plan(n, layers) {
            Ok(p) => Some(p),
            Err(_) if n > 1 => None,
            Err(e) => return Err(e),
        };
        let Some(plan) = plan else {
            // A model exported with a batch of 1: one sample at a time.
            let mut acts: Vec<Activation> = Vec::new();
            let mut images = Vec::new();
            for i in first..first + n {
                let (a, img) = self.run(latents, i, 1, layers)?;
                if acts.is_empty() {
                    acts = a;
                } else {
                    for (all, one) in acts.iter_mut().zip(a) {
                        all.values.extend(one.values);
                    }
                }
                images.extend(img);
            }
            return Ok((acts, images));
        };
        let mut values: TVec<TValue> = tvec!();
        for (input, latent) in self.inputs.iter().zip(latents) {
            values.push(input_tensor(input, latent, first, n)?.into());
        }
        let results = plan
            .run(values)
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .with_context(|| format!("{}: running the generator", self.path.display()))?;
        let mut acts = Vec::with_capacity(layers.len());
        for (result, kind) in results.iter().zip(&kinds) {
            let view = result
                .to_plain_array_view::<f32>()
                .map_err(|e| anyhow::anyhow!("{e:#}"))?;
            let (height, width) = kind.map();
            acts.push(Activation {
                values: crate::onnx::unit_values(view, kind, n)?,
                units: kind.units(),
                height,
                width,
            });
        }
        let image = results
            .last()
            .expect("the image output is the last")
            .to_plain_array_view::<f32>()
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let (low, high) = self.range;
        let scale = 255.0 / (high - low);
        let images = image
            .iter()
            .map(|v| ((v - low) * scale).clamp(0.0, 255.0))
            .collect();
        Ok((acts, images))
    }
}

/// The fact of `input` for batches of `batch`.
fn input_fact(input: &GeneratorInput, batch: usize) -> InferenceFact {
    match input.width {
        Some(w) => f32::fact([batch, w]).into(),
        None => i64::fact([batch]).into(),
    }
}

/// Samples `first..first + n` of `latent` as `input` takes them.
fn input_tensor(input: &GeneratorInput, latent: &Latent, first: usize, n: usize) -> Result<Tensor> {
    let range = first..first + n;
    let bad = |what: &str| {
        anyhow::anyhow!(
            "input {:?}: {what} (the model takes {})",
            input.name,
            match input.width {
                Some(w) => format!("float rows of {w}"),
                None => "integer ids".to_owned(),
            }
        )
    };
    Ok(match (input.width, latent) {
        (Some(w), Latent::Floats { values, width }) => {
            if *width != w {
                return Err(bad(&format!("rows of {width} values")));
            }
            tract_ndarray::Array2::from_shape_vec(
                (n, w),
                values[range.start * w..range.end * w].to_vec(),
            )?
            .into_tensor()
        }
        (Some(w), Latent::Ids(ids)) => {
            let mut rows = vec![0f32; n * w];
            for (i, &id) in ids[range].iter().enumerate() {
                let c = usize::try_from(id)
                    .ok()
                    .filter(|c| *c < w)
                    .ok_or_else(|| bad(&format!("class id {id} is outside the one-hot width")))?;
                rows[i * w + c] = 1.0;
            }
            tract_ndarray::Array2::from_shape_vec((n, w), rows)?.into_tensor()
        }
        (None, Latent::Ids(ids)) => tract_ndarray::Array1::from(ids[range].to_vec()).into_tensor(),
        (None, Latent::Floats { .. }) => return Err(bad("float rows")),
    })
}

/// Every node with a float output, with its shape for one sample.
fn typed_nodes(model: &InferenceModel, inputs: &[GeneratorInput]) -> Result<Vec<NodeInfo>> {
    let mut analysed = model.clone();
    for (i, input) in inputs.iter().enumerate() {
        analysed = analysed
            .with_input_fact(i, input_fact(input, 1))
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    }
    describe_nodes(analysed, None, None)
}
