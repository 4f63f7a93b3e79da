//! Where an ONNX file's tensors may keep their data.
//!
//! ONNX lets a tensor keep its values in another file (`data_location: EXTERNAL` with a
//! `location`), read relative to the model. A crafted model could name
//! `../../home/me/.ssh/id_ed25519` or `/etc/shadow` and read any file the user can read into its
//! weights. As ONNX Runtime does, a location must be a relative path of plain names that resolves,
//! links followed, to a file inside the model's own folder; anything else is refused before the
//! model is parsed, naming the tensor. (tract 0.23.9 confines the path too; this check comes
//! first so that the error names the tensor, and holds whatever the runtime's version does.)

use std::path::{Component, Path};

use anyhow::{Context, Result, bail};
use tract_onnx::pb::{self, GraphProto, TensorProto};

/// Refuses `proto` (read from `model`) when a tensor's external data lies outside the model's
/// folder or names no file there.
pub fn check(model: &Path, proto: &pb::ModelProto) -> Result<()> {
    let mut tensors = Vec::new();
    if let Some(graph) = &proto.graph {
        graph_tensors(graph, &mut tensors);
    }
    let external: Vec<&TensorProto> = tensors
        .into_iter()
        .filter(|t| t.data_location == Some(pb::tensor_proto::DataLocation::External as i32))
        .collect();
    if external.is_empty() {
        return Ok(());
    }
    let dir = match model.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dir = dir
        .canonicalize()
        .with_context(|| format!("{}: resolving the model's folder", model.display()))?;
    for t in external {
        resolve(model, &dir, t)?;
    }
    Ok(())
}

/// Refuses a tensor whose external data is not a file inside `dir` (the model's folder, resolved).
fn resolve(model: &Path, dir: &Path, t: &TensorProto) -> Result<()> {
    let Some(location) = t
        .external_data
        .iter()
        .find(|e| e.key == "location")
        .map(|e| e.value.as_str())
    else {
        bail!(
            "{}: tensor {:?} keeps its data in an external file but names none",
            model.display(),
            t.name
        );
    };
    let relative = Path::new(location);
    if location.is_empty()
        || !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        bail!(
            "{}: tensor {:?} names its external data {location:?}; only a relative path inside \
             the model's folder ({}) is read: no absolute path, no `..`",
            model.display(),
            t.name,
            dir.display()
        );
    }
    let file = dir.join(relative);
    let resolved = file.canonicalize().with_context(|| {
        format!(
            "{}: tensor {:?} keeps its data in {location:?}, which is not in the model's folder \
             ({})",
            model.display(),
            t.name,
            dir.display()
        )
    })?;
    if !resolved.starts_with(dir) || !resolved.is_file() {
        bail!(
            "{}: tensor {:?} names its external data {location:?}, which leads to {} (a link out \
             of the model's folder {}, or not a file); refused",
            model.display(),
            t.name,
            resolved.display(),
            dir.display()
        );
    }
    Ok(())
}

/// Every tensor of a graph: its initializers (sparse ones too) and the tensors in its nodes'
/// attributes, subgraphs (If, Loop, Scan) included.
fn graph_tensors<'a>(graph: &'a GraphProto, out: &mut Vec<&'a TensorProto>) {
    out.extend(&graph.initializer);
    for s in &graph.sparse_initializer {
        out.extend(s.values.iter().chain(s.indices.iter()));
    }
    for node in &graph.node {
        for a in &node.attribute {
            out.extend(a.t.iter().chain(&a.tensors));
            for s in a.sparse_tensor.iter().chain(&a.sparse_tensors) {
                out.extend(s.values.iter().chain(s.indices.iter()));
            }
            for g in a.g.iter().chain(&a.graphs) {
                graph_tensors(g, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use tract_onnx::pb::{
        GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
        TypeProto, ValueInfoProto, tensor_proto, tensor_shape_proto, type_proto,
    };
    use tract_onnx::prelude::*;

    fn float_value(name: &str) -> ValueInfoProto {
        let dim = |n: i64| tensor_shape_proto::Dimension {
            value: Some(tensor_shape_proto::dimension::Value::DimValue(n)),
            ..Default::default()
        };
        ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type: tensor_proto::DataType::Float as i32,
                    shape: Some(tract_onnx::pb::TensorShapeProto {
                        dim: vec![dim(1), dim(3)],
                    }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// `y = x + w`, w's three floats kept in the external file `location`.
    fn write_model(path: &std::path::Path, location: &str) {
        let w = TensorProto {
            name: "the_weights".into(),
            dims: vec![1, 3],
            data_type: tensor_proto::DataType::Float as i32,
            data_location: Some(tensor_proto::DataLocation::External as i32),
            external_data: vec![
                StringStringEntryProto {
                    key: "location".into(),
                    value: location.into(),
                },
                StringStringEntryProto {
                    key: "length".into(),
                    value: "12".into(),
                },
            ],
            ..Default::default()
        };
        let model = ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            }],
            graph: Some(GraphProto {
                name: "g".into(),
                node: vec![NodeProto {
                    name: "add".into(),
                    op_type: "Add".into(),
                    input: vec!["x".into(), "the_weights".into()],
                    output: vec!["y".into()],
                    ..Default::default()
                }],
                initializer: vec![w],
                input: vec![float_value("x")],
                output: vec![float_value("y")],
                ..Default::default()
            }),
            ..Default::default()
        };
        std::fs::write(path, model.encode_to_vec()).unwrap();
    }

    fn floats(values: [f32; 3]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn external_data_is_read_only_from_the_models_own_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("model");
        std::fs::create_dir(&dir).unwrap();
        let secret = tmp.path().join("secret.bin");
        std::fs::write(&secret, floats([7.0, 8.0, 9.0])).unwrap();
        std::fs::write(dir.join("weights.bin"), floats([1.0, 2.0, 3.0])).unwrap();
        std::os::unix::fs::symlink(&secret, dir.join("link.bin")).unwrap();
        std::fs::create_dir(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/w.bin"), floats([4.0, 5.0, 6.0])).unwrap();

        // Inside the folder (a subfolder too) the data is read, as ONNX means it.
        for (location, expected) in [
            ("weights.bin", [2.0, 3.0, 4.0]),
            ("sub/w.bin", [5.0, 6.0, 7.0]),
        ] {
            let path = dir.join("ok.onnx");
            write_model(&path, location);
            let model = crate::onnx::read_model(&path).unwrap();
            let plan = model.into_optimized().unwrap().into_runnable().unwrap();
            let x = tract_ndarray::Array2::<f32>::ones((1, 3)).into_tensor();
            let y = plan.run(tvec!(x.into())).unwrap();
            let y: Vec<f32> = y[0]
                .to_plain_array_view::<f32>()
                .unwrap()
                .iter()
                .copied()
                .collect();
            assert_eq!(y, expected, "{location}");
        }

        // Out of it: refused, naming the tensor, before anything is read.
        let absolute = secret.display().to_string();
        for (location, says) in [
            ("../secret.bin", "no `..`"),
            (absolute.as_str(), "no absolute path"),
            ("sub/../../secret.bin", "no `..`"),
            ("link.bin", "a link out of the model's folder"),
            ("missing.bin", "not in the model's folder"),
            ("", "no absolute path"),
        ] {
            let path = dir.join("crafted.onnx");
            write_model(&path, location);
            let err = format!("{:#}", crate::onnx::read_model(&path).unwrap_err());
            assert!(
                err.contains("\"the_weights\"") && err.contains(says),
                "{location:?}: {err}"
            );
        }
    }
}
