//! The captioner's teacher-forced pass against its own decoding step applied step by step, with
//! dropout on: the hoisted pass draws the same masks from a seed, so the numbers are the same.
//! (One test in its own process: burn's random stream is shared by the whole process.)

use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use milan_model::model::CaptionerConfig;
use milan_model::vocab::{START_ID, STOP_ID, pad};

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

#[test]
fn the_teacher_forced_pass_is_the_decoding_step_repeated_with_the_same_dropout() {
    let device = Device::flex().autodiff();
    device.seed(5);
    let m = CaptionerConfig::new(40, 30)
        .with_embedding(8)
        .with_hidden(16)
        .with_dropout(0.5)
        .init(&device);
    let features = Tensor::<3>::random([5, 4, 40], Distribution::Normal(0.0, 1.0), &device);
    let seqs: Vec<Vec<usize>> = (0..5)
        .map(|i| {
            std::iter::once(START_ID)
                .chain((0..6).map(|t| 4 + (i * 7 + t * 3) % 26))
                .chain(std::iter::once(STOP_ID))
                .collect()
        })
        .collect();
    let refs: Vec<&[usize]> = seqs.iter().map(Vec::as_slice).collect();
    let padded = pad(&refs);
    // burn initialises parameters lazily, drawing from the random stream at their first use:
    // one pass first, so that both passes below start from the seed with nothing else to draw.
    let _ = values(m.forward(features.clone(), &padded).0);
    let mut firsts = Vec::new();
    for seed in [1, 2] {
        device.seed(seed);
        let (hoisted, _) = m.forward(features.clone(), &padded);
        device.seed(seed);
        let (encoded, mut state) = m.encode(features.clone());
        let mut steps = Vec::new();
        for t in 0..padded.steps {
            let tokens: Vec<i64> = (0..padded.batch)
                .map(|b| padded.inputs[b * padded.steps + t])
                .collect();
            let tokens =
                Tensor::<1, Int>::from_data(TensorData::new(tokens, [padded.batch]), &device);
            let step = m.step(&encoded, state, tokens);
            state = step.state;
            steps.push(step.log_probs.unsqueeze_dim::<3>(1));
        }
        let (a, b) = (values(hoisted), values(Tensor::cat(steps, 1)));
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst <= 1e-5,
            "seed {seed}: log-probabilities differ by {worst}"
        );
        firsts.push(a[0]);
    }
    assert_ne!(
        firsts[0], firsts[1],
        "dropout draws differ by seed: it is on"
    );
}
