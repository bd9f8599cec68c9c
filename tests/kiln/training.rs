//! Training mode: dropout on under autodiff, off at inference; gradients reach every parameter.

use burn::module::{AutodiffModule, Module, ModuleVisitor, Param, ParamId};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, Tensor};
use kiln::backend::{cpu_device, CpuAutodiff};
use kiln::{EncoderInput, HostTensor, TransformerEncoderConfig};
use kiln_tests::max_abs_diff;

type B = CpuAutodiff;

fn config() -> TransformerEncoderConfig {
    TransformerEncoderConfig::new(16, 4, 2)
        .with_dim_feedforward(32)
        .with_dropout(0.3)
        .with_final_norm(true)
}

#[test]
fn dropout_is_active_in_training_and_off_in_eval() {
    let device = cpu_device();
    let model = config().init::<B>(&device);
    let x = Tensor::<B, 3>::random([5, 2, 16], Distribution::Normal(0.0, 1.0), &device);
    let a = HostTensor::from_tensor(model.forward(x.clone(), None, None, false).unwrap());
    let b = HostTensor::from_tensor(model.forward(x.clone(), None, None, false).unwrap());
    assert!(
        max_abs_diff(&a, &b) > 1e-3,
        "two training passes should differ (dropout)"
    );

    let eval = model.valid();
    let x = x.inner();
    let c = HostTensor::from_tensor(eval.forward(x.clone(), None, None, false).unwrap());
    let d = HostTensor::from_tensor(eval.forward(x, None, None, false).unwrap());
    assert_eq!(c, d, "inference must be deterministic");
}

struct GradCheck<'a> {
    grads: &'a <B as AutodiffBackend>::Gradients,
    missing: Vec<ParamId>,
    count: usize,
}

impl ModuleVisitor<B> for GradCheck<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.count += 1;
        match param.val().grad(self.grads) {
            Some(g) if g.clone().abs().sum().into_scalar() > 0.0 => {}
            _ => self.missing.push(param.id),
        }
    }
}

#[test]
fn gradient_reaches_every_parameter() {
    let device = cpu_device();
    for (norm_first, causal) in [(false, false), (true, true)] {
        let model = config().with_norm_first(norm_first).init::<B>(&device);
        let x = Tensor::<B, 3>::random([6, 3, 16], Distribution::Normal(0.0, 1.0), &device);
        let out = model
            .run(EncoderInput::new(x).causal(causal))
            .unwrap()
            .output;
        let target = Tensor::<B, 3>::random(out.dims(), Distribution::Normal(0.0, 1.0), &device);
        let loss = (out - target).powf_scalar(2.0).mean();
        let grads = loss.backward();
        let mut check = GradCheck {
            grads: &grads,
            missing: vec![],
            count: 0,
        };
        model.visit(&mut check);
        // 12 tensors per layer (in_proj, out_proj, linear1, linear2, norm1, norm2: weight + bias)
        // and the final norm's 2.
        assert_eq!(check.count, 2 * 12 + 2, "visited every parameter tensor");
        assert!(
            check.missing.is_empty(),
            "{} parameter(s) got no gradient",
            check.missing.len()
        );
    }
}
