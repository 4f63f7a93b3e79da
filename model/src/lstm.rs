//! LSTM recurrences with their own backward passes on autodiff devices (PyTorch's gate order
//! `[i | f | g | o]`):
//!
//! ```text
//! gates = x W_ih + b_ih + h W_hh + b_hh        [B, 4H]
//! c' = sigmoid(f) * c + sigmoid(i) * tanh(g)
//! h' = sigmoid(o) * tanh(c')
//! ```
//!
//! - [`step`]: the element-wise half of one cell step, `(gates, c) -> (h', c')`, for the
//!   captioner, whose input at each step depends on its attention;
//! - [`layer`]: a whole layer over a sequence, `(x W_ih + b, W_hh, h0, c0) -> h` of every step,
//!   for the language model, whose inputs are known in advance: the input projection of all
//!   steps is one matrix product, as PyTorch's `nn.LSTM` runs it.
//!
//! Why they are not written with the `Tensor` API alone: that version splits the gates into four
//! (`chunk`), and burn's autodiff answers each slice with a zero-filled gradient of the whole
//! sliced tensor, then adds them up (1.0 ms per cell step on libtorch, 2.8 ms on flex at
//! [128, 2048]; docs/performance.md); a layer reading step t of a hoisted [B, T, 4H] projection
//! pays that for the whole projection at every step. Here the gates' gradient is one `cat` of the
//! four blocks (PyTorch's `chunk` backward); [`layer`]'s backward runs the recurrence backwards
//! itself and returns the projection's gradient as one [B, T, 4H] tensor and W_hh's as one
//! matrix product over all steps.
//!
//! A burn autodiff operation has one output, so [`step`] is two: `CellState` (`(gates, c) ->
//! c'`) and `Hidden` (`(gates, c') -> h'`); [`layer`] is one (`Layer`). Each saves what its
//! backward pass needs, computed once in the forward pass. On devices without autodiff, on
//! backends or checkpointing strategies this module does not know, and within [`composed_only`],
//! the same formulas run through the `Tensor` API ([`composed`], [`composed_layer`]), to which
//! the tests hold the custom backward passes.

use std::cell::Cell;

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Backend, DispatchKindConversion, DispatchTensor, Flex, TensorMetadata};
use burn::tensor::activation::{sigmoid, tanh};
use burn::tensor::{Shape, Slice, Tensor};

/// burn 0.22 deprecates burn-tch; libtorch stays this project's second backend (README).
#[cfg(feature = "tch")]
#[allow(deprecated)]
type LibTorch = burn::backend::LibTorch;

thread_local! {
    static COMPOSED_ONLY: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with every [`step`] and [`layer`] on this thread taking the `Tensor`-API path
/// ([`composed`], [`composed_layer`]): `trainer bench --model` times both in one run.
pub fn composed_only<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            COMPOSED_ONLY.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(COMPOSED_ONLY.with(|c| c.replace(true)));
    f()
}

/// `(h', c')` from the gate pre-activations [B, 4H] and the cell state [B, H].
pub fn step(gates: Tensor<2>, c: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
    match custom_step(&gates, &c) {
        Some(next) => next,
        None => composed(gates, c),
    }
}

/// The step by the custom operations; `None` where [`step`] falls back to [`composed`]: the
/// tensors are not on an autodiff device of a backend this module knows, or [`composed_only`] is
/// in force.
pub fn custom_step(gates: &Tensor<2>, c: &Tensor<2>) -> Option<(Tensor<2>, Tensor<2>)> {
    if COMPOSED_ONLY.with(Cell::get) {
        return None;
    }
    #[cfg(feature = "tch")]
    if let Some(next) = custom::<LibTorch>(gates, c) {
        return Some(next);
    }
    custom::<Flex>(gates, c)
}

/// The step through the `Tensor` API: what runs without autodiff, and the tests' reference.
pub fn composed(gates: Tensor<2>, c: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
    let mut parts = gates.chunk(4, 1).into_iter();
    let mut next = || parts.next().expect("four gates");
    let (i, f, g, o) = (
        sigmoid(next()),
        sigmoid(next()),
        tanh(next()),
        sigmoid(next()),
    );
    let c = f * c + i * g;
    let h = o * tanh(c.clone());
    (h, c)
}

/// The hidden state of every step [B, T, H] of one LSTM layer: `projected` [B, T, 4H] holds each
/// step's input projection with both biases (`x W_ih + b_ih + b_hh`), `w_hh` [H, 4H] is the
/// recurrent weight in burn's `Linear` layout (`h W_hh`), `(h0, c0)` [B, H] the initial state.
pub fn layer(projected: Tensor<3>, w_hh: Tensor<2>, h0: Tensor<2>, c0: Tensor<2>) -> Tensor<3> {
    match custom_layer(&projected, &w_hh, &h0, &c0) {
        Some(hs) => hs,
        None => composed_layer(projected, w_hh, h0, c0),
    }
}

/// [`layer`] by its custom operation; `None` where it falls back to [`composed_layer`].
pub fn custom_layer(
    projected: &Tensor<3>,
    w_hh: &Tensor<2>,
    h0: &Tensor<2>,
    c0: &Tensor<2>,
) -> Option<Tensor<3>> {
    if COMPOSED_ONLY.with(Cell::get) {
        return None;
    }
    #[cfg(feature = "tch")]
    if let Some(hs) = custom_layer_on::<LibTorch>(projected, w_hh, h0, c0) {
        return Some(hs);
    }
    custom_layer_on::<Flex>(projected, w_hh, h0, c0)
}

/// [`layer`] step by step through the `Tensor` API ([`composed`] steps).
pub fn composed_layer(
    projected: Tensor<3>,
    w_hh: Tensor<2>,
    h0: Tensor<2>,
    c0: Tensor<2>,
) -> Tensor<3> {
    let [b, steps, four_h] = projected.dims();
    let (mut h, mut c) = (h0, c0);
    let mut hs = Vec::with_capacity(steps);
    for t in 0..steps {
        let gates = projected.clone().narrow(1, t, 1).reshape([b, four_h]) + h.matmul(w_hh.clone());
        (h, c) = composed(gates, c);
        hs.push(h.clone().unsqueeze_dim::<3>(1));
    }
    Tensor::cat(hs, 1)
}

/// The step as two custom autodiff operations on backend `B`, when both tensors live on
/// `Autodiff<B>` (without gradient checkpointing); `None` otherwise.
fn custom<B: Backend>(gates: &Tensor<2>, c: &Tensor<2>) -> Option<(Tensor<2>, Tensor<2>)>
where
    DispatchTensor: DispatchKindConversion<Autodiff<B>>,
{
    let gates = gates.clone().try_into_primitive::<Autodiff<B>>().ok()?;
    let c = c.clone().try_into_primitive::<Autodiff<B>>().ok()?;
    let c_next = cell_state::<B>(&gates, c);
    let h_next = hidden::<B>(gates, &c_next);
    Some((
        Tensor::from_primitive::<Autodiff<B>>(h_next),
        Tensor::from_primitive::<Autodiff<B>>(c_next),
    ))
}

type Inner<B> = <B as burn::backend::BackendTypes>::FloatTensorPrimitive;
type Tracked<B> = <Autodiff<B> as burn::backend::BackendTypes>::FloatTensorPrimitive;

/// Gate `k` (0 = i, 1 = f, 2 = g, 3 = o) of [B, 4H] pre-activations.
fn gate<B: Backend>(gates: &Inner<B>, k: usize) -> Inner<B> {
    let [_, four_h] = gates.shape().dims();
    let h = four_h / 4;
    B::float_slice(
        gates.clone(),
        &[Slice::from(..), Slice::from(k * h..(k + 1) * h)],
    )
}

/// `1 - t²`: tanh's derivative from its output.
fn one_minus_square<B: Backend>(t: Inner<B>) -> Inner<B> {
    B::float_add_scalar(B::float_neg(B::float_mul(t.clone(), t)), 1.0.into())
}

/// `[B, n]` zeros beside `like` (same device and dtype).
fn zeros<B: Backend>(like: &Inner<B>, n: usize) -> Inner<B> {
    let [b, _] = like.shape().dims();
    B::float_zeros([b, n].into(), &like.device(), like.dtype().into())
}

/// Step `t` of a [B, T, N] tensor, as [B, N].
fn at_step<B: Backend>(sequence: &Inner<B>, t: usize) -> Inner<B> {
    let [b, _, n] = sequence.shape().dims();
    let step = B::float_slice(
        sequence.clone(),
        &[Slice::from(..), Slice::from(t..t + 1), Slice::from(..)],
    );
    B::float_reshape(step, Shape::new([b, n]))
}

// The cell's two halves, forward and backward, shared by the step's two operations and the layer.

/// The cell state's half: the activations `[i, f, g]` and `c' = f c + i g`.
fn state_forward<B: Backend>(pre: &Inner<B>, c: &Inner<B>) -> ([Inner<B>; 3], Inner<B>) {
    let i = B::sigmoid(gate::<B>(pre, 0));
    let f = B::sigmoid(gate::<B>(pre, 1));
    let g = B::float_tanh(gate::<B>(pre, 2));
    let c_next = B::float_add(
        B::float_mul(f.clone(), c.clone()),
        B::float_mul(i.clone(), g.clone()),
    );
    ([i, f, g], c_next)
}

/// The output's half: `(o, tanh(c'), h' = o tanh(c'))`.
fn output_forward<B: Backend>(pre: &Inner<B>, c_next: &Inner<B>) -> [Inner<B>; 3] {
    let o = B::sigmoid(gate::<B>(pre, 3));
    let tanh_c = B::float_tanh(c_next.clone());
    let h_next = B::float_mul(o.clone(), tanh_c.clone());
    [o, tanh_c, h_next]
}

/// From the gradient of c': those of the pre-activations `[i, f, g]` and of the incoming c.
fn state_backward<B: Backend>(
    [i, f, g]: [Inner<B>; 3],
    c: Inner<B>,
    d_c_next: Inner<B>,
) -> ([Inner<B>; 3], Inner<B>) {
    let d_i = B::sigmoid_backward(i.clone(), B::float_mul(d_c_next.clone(), g.clone()));
    let d_f = B::sigmoid_backward(f.clone(), B::float_mul(d_c_next.clone(), c));
    let d_g = B::float_mul(B::float_mul(d_c_next.clone(), i), one_minus_square::<B>(g));
    ([d_i, d_f, d_g], B::float_mul(d_c_next, f))
}

/// From the gradient of h': those of the pre-activation o and of c'.
fn output_backward<B: Backend>(o: Inner<B>, tanh_c: Inner<B>, d_h: Inner<B>) -> [Inner<B>; 2] {
    let d_o = B::sigmoid_backward(o.clone(), B::float_mul(d_h.clone(), tanh_c.clone()));
    let d_c_next = B::float_mul(B::float_mul(d_h, o), one_minus_square::<B>(tanh_c));
    [d_o, d_c_next]
}

/// `(gates, c) -> c' = sigmoid(f) * c + sigmoid(i) * tanh(g)`.
#[derive(Debug)]
struct CellState;

impl<B: Backend> Backward<B, 2> for CellState {
    /// The activations i, f, g and the incoming cell state.
    type State = ([Inner<B>; 3], Inner<B>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [gates_node, c_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (ifg, c) = ops.state;
        let ([d_i, d_f, d_g], d_c) = state_backward::<B>(ifg, c, grad);
        if let Some(node) = c_node {
            grads.register::<B>(node.id, d_c);
        }
        if let Some(node) = gates_node {
            let d_o = zeros::<B>(&d_i, d_i.shape().dims::<2>()[1]);
            grads.register::<B>(node.id, B::float_cat(vec![d_i, d_f, d_g, d_o], 1));
        }
    }
}

fn cell_state<B: Backend>(gates: &Tracked<B>, c: Tracked<B>) -> Tracked<B> {
    let prep = CellState
        .prepare::<NoCheckpointing>([gates.node(), c.node()])
        .compute_bound()
        .stateful();
    let c = c.into_primitive();
    let (ifg, c_next) = state_forward::<B>(gates.primitive(), &c);
    match prep {
        OpsKind::Tracked(prep) => prep.finish((ifg, c), c_next),
        OpsKind::UnTracked(prep) => prep.finish(c_next),
    }
}

/// `(gates, c') -> h' = sigmoid(o) * tanh(c')`.
#[derive(Debug)]
struct Hidden;

impl<B: Backend> Backward<B, 2> for Hidden {
    /// The activations o and tanh(c').
    type State = (Inner<B>, Inner<B>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [gates_node, c_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (o, tanh_c) = ops.state;
        let [d_o, d_c] = output_backward::<B>(o, tanh_c, grad);
        if let Some(node) = c_node {
            grads.register::<B>(node.id, d_c);
        }
        if let Some(node) = gates_node {
            let [_, h] = d_o.shape().dims();
            let d_ifg = zeros::<B>(&d_o, 3 * h);
            grads.register::<B>(node.id, B::float_cat(vec![d_ifg, d_o], 1));
        }
    }
}

fn hidden<B: Backend>(gates: Tracked<B>, c: &Tracked<B>) -> Tracked<B> {
    let prep = Hidden
        .prepare::<NoCheckpointing>([gates.node(), c.node()])
        .compute_bound()
        .stateful();
    let [o, tanh_c, h] = output_forward::<B>(gates.primitive(), c.primitive());
    match prep {
        OpsKind::Tracked(prep) => prep.finish((o, tanh_c), h),
        OpsKind::UnTracked(prep) => prep.finish(h),
    }
}

fn custom_layer_on<B: Backend>(
    projected: &Tensor<3>,
    w_hh: &Tensor<2>,
    h0: &Tensor<2>,
    c0: &Tensor<2>,
) -> Option<Tensor<3>>
where
    DispatchTensor: DispatchKindConversion<Autodiff<B>>,
{
    let projected = projected.clone().try_into_primitive::<Autodiff<B>>().ok()?;
    let w_hh = w_hh.clone().try_into_primitive::<Autodiff<B>>().ok()?;
    let h0 = h0.clone().try_into_primitive::<Autodiff<B>>().ok()?;
    let c0 = c0.clone().try_into_primitive::<Autodiff<B>>().ok()?;
    Some(Tensor::from_primitive::<Autodiff<B>>(layer_op::<B>(
        projected, w_hh, h0, c0,
    )))
}

/// What [`Layer`]'s backward pass reads of the forward pass.
#[derive(Clone, Debug)]
struct LayerTape<B: Backend> {
    w_hh: Inner<B>,
    steps: Vec<StepTape<B>>,
    /// The incoming h of every step, [B * T, H] (batch-major, as the projection's rows).
    h_in: Inner<B>,
}

/// What one step of the layer keeps: the activations, [B, H] each, the incoming c and tanh(c').
#[derive(Clone, Debug)]
struct StepTape<B: Backend> {
    ifg: [Inner<B>; 3],
    o: Inner<B>,
    c_in: Inner<B>,
    tanh_c: Inner<B>,
}

/// `(projected, W_hh, h0, c0) -> h` of every step: one LSTM layer over a sequence.
#[derive(Debug)]
struct Layer;

impl<B: Backend> Backward<B, 4> for Layer {
    type State = LayerTape<B>;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [projected_node, w_node, h0_node, c0_node] = ops.parents;
        let d_hs = grads.consume::<B>(&ops.node);
        let LayerTape { w_hh, steps, h_in } = ops.state;
        let [b, t_len, h] = d_hs.shape().dims();
        let w_t = B::float_transpose(w_hh);
        let (mut d_h_next, mut d_c_next): (Option<Inner<B>>, Option<Inner<B>>) = (None, None);
        let mut d_gates = Vec::with_capacity(t_len);
        for (
            t,
            StepTape {
                ifg,
                o,
                c_in,
                tanh_c,
            },
        ) in steps.into_iter().enumerate().rev()
        {
            let d_h_out = at_step::<B>(&d_hs, t);
            let d_h = match d_h_next.take() {
                Some(next) => B::float_add(d_h_out, next),
                None => d_h_out,
            };
            let [d_o, d_c_out] = output_backward::<B>(o, tanh_c, d_h);
            let d_c = match d_c_next.take() {
                Some(next) => B::float_add(d_c_out, next),
                None => d_c_out,
            };
            let ([d_i, d_f, d_g], d_c_in) = state_backward::<B>(ifg, c_in, d_c);
            d_c_next = Some(d_c_in);
            let d_gate = B::float_cat(vec![d_i, d_f, d_g, d_o], 1);
            d_h_next = Some(B::float_matmul(d_gate.clone(), w_t.clone()));
            d_gates.push(B::float_reshape(d_gate, Shape::new([b, 1, 4 * h])));
        }
        d_gates.reverse();
        let d_projected = B::float_cat(d_gates, 1);
        if let Some(node) = w_node {
            let rows = B::float_reshape(d_projected.clone(), Shape::new([b * t_len, 4 * h]));
            let d_w = B::float_matmul(B::float_transpose(h_in), rows);
            grads.register::<B>(node.id, d_w);
        }
        if let Some(node) = h0_node {
            grads.register::<B>(node.id, d_h_next.expect("at least one step"));
        }
        if let Some(node) = c0_node {
            grads.register::<B>(node.id, d_c_next.expect("at least one step"));
        }
        if let Some(node) = projected_node {
            grads.register::<B>(node.id, d_projected);
        }
    }
}

fn layer_op<B: Backend>(
    projected: Tracked<B>,
    w_hh: Tracked<B>,
    h0: Tracked<B>,
    c0: Tracked<B>,
) -> Tracked<B> {
    let prep = Layer
        .prepare::<NoCheckpointing>([projected.node(), w_hh.node(), h0.node(), c0.node()])
        .compute_bound()
        .stateful();
    let projected = projected.into_primitive();
    let w = w_hh.into_primitive();
    let [b, t_len, four_h] = projected.shape().dims();
    let (mut h, mut c) = (h0.into_primitive(), c0.into_primitive());
    let mut steps = Vec::with_capacity(t_len);
    let mut h_in = Vec::with_capacity(t_len);
    let mut hs = Vec::with_capacity(t_len);
    for t in 0..t_len {
        let gates = B::float_add(
            at_step::<B>(&projected, t),
            B::float_matmul(h.clone(), w.clone()),
        );
        let (ifg, c_next) = state_forward::<B>(&gates, &c);
        let [o, tanh_c, h_next] = output_forward::<B>(&gates, &c_next);
        h_in.push(B::float_reshape(h, Shape::new([b, 1, four_h / 4])));
        hs.push(B::float_reshape(
            h_next.clone(),
            Shape::new([b, 1, four_h / 4]),
        ));
        steps.push(StepTape {
            ifg,
            o,
            c_in: c,
            tanh_c,
        });
        (h, c) = (h_next, c_next);
    }
    let hs = B::float_cat(hs, 1);
    match prep {
        OpsKind::Tracked(prep) => {
            let h_in = B::float_reshape(B::float_cat(h_in, 1), Shape::new([b * t_len, four_h / 4]));
            prep.finish(
                LayerTape {
                    w_hh: w,
                    steps,
                    h_in,
                },
                hs,
            )
        }
        OpsKind::UnTracked(prep) => prep.finish(hs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("f32 data")
    }

    fn assert_close(a: Vec<f32>, b: Vec<f32>, what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        for (k, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-6 * x.abs().max(1.0),
                "{what}[{k}]: {x} against {y}"
            );
        }
    }

    /// Two chained steps, so that the first step's c' gets gradients both from the second step
    /// and from the loss, and every input reaches the loss through h' and c'.
    fn two_steps(
        run: fn(Tensor<2>, Tensor<2>) -> (Tensor<2>, Tensor<2>),
        gates: [Tensor<2>; 2],
        c: Tensor<2>,
        weights: [Tensor<2>; 3],
    ) -> Tensor<1> {
        let [g1, g2] = gates;
        let [w_h1, w_c1, w_h2] = weights;
        let (h1, c1) = run(g1, c);
        let (h2, c2) = run(g2 + h1.clone().repeat_dim(1, 4), c1.clone());
        (h1 * w_h1).sum() + (c1 * w_c1).sum() + (h2 * w_h2).sum() + c2.sum()
    }

    #[test]
    fn the_custom_backward_gives_the_composed_steps_gradients() {
        let device = Device::flex().autodiff();
        let (b, h) = (3, 5);
        let normal = |dims: [usize; 2], std| {
            Tensor::<2>::random(dims, Distribution::Normal(0.0, std), &device)
        };
        // Pre-activations out to +-9 so that the sigmoid and tanh saturate in places.
        let gates = [normal([b, 4 * h], 3.0), normal([b, 4 * h], 3.0)].map(Tensor::require_grad);
        let c = normal([b, h], 1.0).require_grad();
        let weights = [
            normal([b, h], 1.0),
            normal([b, h], 1.0),
            normal([b, h], 1.0),
        ];

        assert!(
            custom_step(&gates[0], &c).is_some(),
            "flex autodiff takes the custom backward"
        );
        assert!(
            composed_only(|| custom_step(&gates[0], &c)).is_none(),
            "except within composed_only"
        );
        assert!(custom_step(&gates[0], &c).is_some(), "and after it");
        let custom = two_steps(step, gates.clone(), c.clone(), weights.clone());
        let reference = two_steps(composed, gates.clone(), c.clone(), weights);
        assert_close(values(custom.clone()), values(reference.clone()), "loss");
        let (grads, grads0) = (custom.backward(), reference.backward());
        for (name, x) in [("gates 1", &gates[0]), ("gates 2", &gates[1]), ("c", &c)] {
            let g = |grads| values(x.grad(grads).expect("a gradient"));
            let (ours, theirs) = (g(&grads), g(&grads0));
            assert!(ours.iter().any(|v| *v != 0.0), "{name}: all-zero gradient");
            assert_close(ours, theirs, &format!("gradient of {name}"));
        }
    }

    #[test]
    fn a_cell_state_without_gradients_and_devices_without_autodiff_step_the_same() {
        let device = Device::flex();
        let gates = Tensor::<2>::random([4, 12], Distribution::Normal(0.0, 2.0), &device);
        let c = Tensor::<2>::random([4, 3], Distribution::Normal(0.0, 1.0), &device);
        let (h0, c0) = composed(gates.clone(), c.clone());
        let (h1, c1) = step(gates.clone(), c.clone());
        assert_close(values(h1), values(h0.clone()), "h' without autodiff");
        assert_close(values(c1), values(c0.clone()), "c' without autodiff");

        // On an autodiff device: c untracked (as the zero initial state is), gates tracked.
        let autodiff = device.autodiff();
        let gates = Tensor::<2>::from_data(gates.into_data(), &autodiff).require_grad();
        let c = Tensor::<2>::from_data(c.into_data(), &autodiff);
        assert!(custom_step(&gates, &c).is_some());
        let (h2, c2) = step(gates.clone(), c.clone());
        assert_close(values(h2.clone()), values(h0), "h' with autodiff");
        assert_close(values(c2.clone()), values(c0), "c' with autodiff");
        let grads = (h2.sum() + c2.sum()).backward();
        assert!(c.grad(&grads).is_none(), "c was not tracked");
        assert!(gates.grad(&grads).is_some(), "the gates were");
    }

    /// A layer of `composed` or `custom` steps over 4 steps, with a loss on every hidden state.
    #[test]
    fn the_layers_custom_backward_gives_the_composed_layers_gradients() {
        let device = Device::flex().autodiff();
        let (b, steps, h) = (3, 4, 5);
        let normal = |dims: [usize; 2], std| {
            Tensor::<2>::random(dims, Distribution::Normal(0.0, std), &device)
        };
        let projected = normal([b * steps, 4 * h], 2.0)
            .reshape([b, steps, 4 * h])
            .require_grad();
        let w_hh = normal([h, 4 * h], 0.7).require_grad();
        let (h0, c0) = (
            normal([b, h], 1.0).require_grad(),
            normal([b, h], 1.0).require_grad(),
        );
        let weights = normal([b * steps, h], 1.0).reshape([b, steps, h]);
        let loss = |hs: Tensor<3>| (hs * weights.clone()).sum();

        let custom =
            custom_layer(&projected, &w_hh, &h0, &c0).expect("flex autodiff has the custom layer");
        assert!(
            composed_only(|| custom_layer(&projected, &w_hh, &h0, &c0)).is_none(),
            "except within composed_only"
        );
        let reference = composed_layer(projected.clone(), w_hh.clone(), h0.clone(), c0.clone());
        assert_close(
            values(custom.clone()),
            values(reference.clone()),
            "hidden states",
        );
        let (grads, grads0) = (loss(custom).backward(), loss(reference).backward());
        let flat = |x: Tensor<3>| x.reshape([b * steps, 4 * h]);
        let pairs = [
            (
                "projection",
                flat(projected.grad(&grads).expect("a gradient")),
                flat(projected.grad(&grads0).expect("a gradient")),
            ),
            (
                "W_hh",
                w_hh.grad(&grads).expect("a gradient"),
                w_hh.grad(&grads0).expect("a gradient"),
            ),
            (
                "h0",
                h0.grad(&grads).expect("a gradient"),
                h0.grad(&grads0).expect("a gradient"),
            ),
            (
                "c0",
                c0.grad(&grads).expect("a gradient"),
                c0.grad(&grads0).expect("a gradient"),
            ),
        ];
        for (name, ours, theirs) in pairs {
            let (ours, theirs) = (values(ours), values(theirs));
            assert!(ours.iter().any(|v| *v != 0.0), "{name}: all-zero gradient");
            assert_close(ours, theirs, &format!("gradient of {name}"));
        }
    }
}
