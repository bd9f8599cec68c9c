//! Load an encoder exported from PyTorch (`scripts/export_torch.py`) and compare kiln's output
//! with PyTorch's on a reference case.
//!
//! ```sh
//! cargo run --example pytorch_parity [-- tests/fixtures/encoder/causal_key_padding]
//! ```

use kiln::backend::{cpu_device, Cpu};
use kiln::HostTensor;

fn main() -> Result<(), kiln::KilnError> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tests/fixtures/encoder/causal_key_padding".into());
    let case = kiln_tests::load_case(std::path::Path::new(&dir));
    let device = cpu_device();
    let model = case.model::<Cpu>(&device);
    println!(
        "{}: {} layers, d_model {}, nhead {}, batch_first {}",
        case.name,
        model.config.num_layers,
        model.config.d_model,
        model.config.nhead,
        model.config.batch_first
    );
    let out = model.run(case.input::<Cpu>(&device))?;
    let err = case.output_error(&HostTensor::from_tensor(out.output));
    println!("max-abs difference from PyTorch over non-padded positions: {err:.3e}");
    Ok(())
}
