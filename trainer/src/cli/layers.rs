//! `trainer layers`: the modules and nodes of a network whose units can be described.

use crate::cli::exemplars::{OnnxArgs, is_onnx};
#[cfg(feature = "onnx")]
use std::path::Path;

use anyhow::{Result, bail};
#[cfg(feature = "onnx")]
use milan_networks::generator::OnnxGenerator;
#[cfg(feature = "onnx")]
use milan_networks::onnx::{OnnxNetwork, shape_text};

#[derive(Debug, clap::Args)]
pub struct LayersArgs {
    /// A model.onnx file (or efficientnet-lite0, resnet18..152 for their layer names).
    #[arg(long)]
    model: String,
    #[command(flatten)]
    onnx: OnnxArgs,
    /// List every node with a float output (those that cannot be described too, with why)
    /// instead of the modules.
    #[arg(long)]
    nodes: bool,
}

/// `trainer layers`: the names to pass to `--layers`, with what each outputs for one image.
pub fn run(args: &LayersArgs) -> Result<()> {
    if !is_onnx(&args.model) {
        let names: Vec<String> = match args.model.as_str() {
            "efficientnet-lite0" => (0..milan_networks::efficientnet::BLOCKS)
                .map(|i| format!("_blocks.{i}"))
                .collect(),
            m if m.starts_with("resnet") => milan_networks::resnet::LAYERS
                .iter()
                .map(|l| (*l).to_owned())
                .collect(),
            other => bail!("unknown model {other:?}: give a .onnx file"),
        };
        for n in names {
            println!("{n}");
        }
        return Ok(());
    }
    list_onnx(args)
}

#[cfg(not(feature = "onnx"))]
fn list_onnx(args: &LayersArgs) -> Result<()> {
    let _ = (&args.onnx, args.nodes);
    Err(milan_trainer::util::onnx_feature::missing(&args.model))
}

/// The describable modules (or, with `--nodes`, every float node) of an ONNX network, or the
/// inputs and maps of an ONNX generator.
#[cfg(feature = "onnx")]
fn list_onnx(args: &LayersArgs) -> Result<()> {
    let net = match OnnxNetwork::load(Path::new(&args.model), &args.onnx.spec()?, 1) {
        Ok(net) => net,
        // Not a network of one image input: perhaps a generator of latent inputs.
        Err(e) => match OnnxGenerator::load(Path::new(&args.model), None, (-1.0, 1.0)) {
            Ok(generator) => return list_generator(&args.model, &generator),
            Err(_) => return Err(e),
        },
    };
    let s = net.size();
    let mut w = std::io::BufWriter::new(std::io::stdout().lock());
    use std::io::Write;
    let modules = net.modules();
    if !args.nodes && !modules.is_empty() {
        writeln!(
            w,
            "# {}: the PyTorch modules with a describable output, for a 1x3x{s}x{s} input. Pass \
             module paths or node names to --layers; --nodes lists every node.",
            args.model
        )?;
        writeln!(
            w,
            "{:<32} {:<44} {:<20} kind",
            "module", "output node", "shape"
        )?;
        for (path, n) in &modules {
            let kind = n.kind.as_ref().expect("describable").describe();
            writeln!(
                w,
                "{path:<32} {:<44} {:<20} {kind}",
                n.name,
                shape_text(&n.shape)
            )?;
        }
        w.flush()?;
        return Ok(());
    }
    writeln!(
        w,
        "# {}: every node with a float output, for a 1x3x{s}x{s} input; pass names to --layers",
        args.model
    )?;
    writeln!(w, "{:<48} {:<20} {:<20} kind", "node", "op", "shape")?;
    let mut shown = 0;
    for n in net.nodes() {
        let kind = match &n.kind {
            Ok(k) => k.describe(),
            Err(why) => format!("not describable: {why}"),
        };
        shown += 1;
        writeln!(
            w,
            "{:<48} {:<20} {:<20} {kind}",
            n.name,
            n.op,
            shape_text(&n.shape)
        )?;
    }
    w.flush()?;
    anyhow::ensure!(shown > 0, "{}: no node outputs float values", args.model);
    Ok(())
}

/// A generator's inputs, image output and describable nodes (for one sample).
#[cfg(feature = "onnx")]
fn list_generator(model: &str, generator: &OnnxGenerator) -> Result<()> {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::io::stdout().lock());
    let inputs: Vec<String> = generator
        .inputs()
        .iter()
        .map(|i| match i.width {
            Some(width) => format!("{} (float rows of {width})", i.name),
            None => format!("{} (integer ids)", i.name),
        })
        .collect();
    let (output, h, wd) = generator.image();
    writeln!(
        w,
        "# {model}: a generator. Inputs: {}. Image output: {output} ({h}x{wd}). Its describable \
         nodes for one sample (pass them to --layers, with --latents):",
        inputs.join(", ")
    )?;
    writeln!(w, "{:<44} {:<20} {:<20} kind", "node", "op", "shape")?;
    for n in generator.nodes() {
        let Ok(kind) = &n.kind else { continue };
        if n.name == output {
            continue;
        }
        writeln!(
            w,
            "{:<44} {:<20} {:<20} {}",
            n.name,
            n.op,
            shape_text(&n.shape),
            kind.describe()
        )?;
    }
    Ok(())
}
