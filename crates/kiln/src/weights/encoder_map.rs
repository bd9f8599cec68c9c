//! The [`TransformerEncoder`]'s own `state_dict` key map, and loading and saving it as a
//! directory of `config.json` + `model.safetensors`.
//!
//! Built on the other three parts: the slot map names the parameters, the codec reads and
//! writes the file, host tensors carry the values between them.

use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::host::TensorFile;
use super::slots::{
    layer_norm_slots, linear_slots, load_slots, read_slots, SlotTarget, WeightSlot,
};
use crate::atomic::write_atomic;
use crate::config::TransformerEncoderConfig;
use crate::encoder::TransformerEncoder;
use crate::error::{KilnError, Result};

/// Values a config may ask for beyond twice what its weights file holds before it is refused
/// unbuilt.
const HOLD_SLACK: u128 = 1 << 20;

/// Refuses a config whose model is far larger than its weights file (more than twice the values
/// the file holds, plus [`HOLD_SLACK`]): it describes another model, or is hostile (a 200-byte
/// config asking for a million layers), and none of it is allocated. A closer mismatch is left to
/// the load, whose report names the missing or mis-shaped key.
pub fn check_file_holds(file: &TensorFile, params: u128, path: &Path) -> Result<()> {
    let held: u128 = file.tensors.values().map(|t| t.data.len() as u128).sum();
    if params > held.saturating_mul(2).saturating_add(HOLD_SLACK) {
        return Err(KilnError::Config(format!(
            "the config describes a model of {params} parameters, but {} holds {held} values: config and weights belong to different models",
            path.display()
        )));
    }
    Ok(())
}

/// The device of a module's first parameter, read without initialising it (`Module::devices`
/// reads every parameter's value, which allocates a lazy skeleton's zeros only to replace them).
struct FirstDevice<B: Backend>(Option<B::Device>);

impl<B: Backend> ModuleVisitor<B> for FirstDevice<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self.0.is_none() {
            self.0 = Some(param.lazy_device());
        }
    }
}

impl<B: Backend> TransformerEncoder<B> {
    /// The declarative map from PyTorch `state_dict` keys to this model's parameters, under
    /// `prefix` (`""` for a bare `nn.TransformerEncoder`).
    pub fn weight_slots(&mut self, prefix: &str) -> Vec<WeightSlot<'_, B>> {
        let mut slots = Vec::new();
        for (i, layer) in self.layers.iter_mut().enumerate() {
            let p = format!("{prefix}layers.{i}");
            let attn = &mut layer.self_attn;
            slots.push(WeightSlot::new(
                format!("{p}.self_attn.in_proj_weight"),
                SlotTarget::LinearWeight(&mut attn.in_proj.weight),
            ));
            if let Some(bias) = attn.in_proj.bias.as_mut() {
                slots.push(WeightSlot::new(
                    format!("{p}.self_attn.in_proj_bias"),
                    SlotTarget::Vector(bias),
                ));
            }
            slots.extend(linear_slots(
                &format!("{p}.self_attn.out_proj"),
                &mut attn.out_proj,
            ));
            slots.extend(linear_slots(&format!("{p}.linear1"), &mut layer.linear1));
            slots.extend(linear_slots(&format!("{p}.linear2"), &mut layer.linear2));
            slots.extend(layer_norm_slots(&format!("{p}.norm1"), &mut layer.norm1));
            slots.extend(layer_norm_slots(&format!("{p}.norm2"), &mut layer.norm2));
        }
        if let Some(norm) = self.norm.as_mut() {
            slots.extend(layer_norm_slots(&format!("{prefix}norm"), norm));
        }
        slots
    }

    /// Loads PyTorch-named weights from a safetensors file. Any missing, unexpected or
    /// mis-shaped key is an error that names it.
    pub fn load_safetensors(self, path: impl AsRef<Path>) -> Result<Self> {
        let file = TensorFile::read(path)?;
        self.load_tensor_file(&file)
    }

    /// Loads PyTorch-named weights from tensors in memory, as [`Self::load_safetensors`].
    pub fn load_tensor_file(mut self, file: &TensorFile) -> Result<Self> {
        let mut first = FirstDevice(None);
        self.visit(&mut first);
        let device = first.0.expect("model has a parameter");
        load_slots(self.weight_slots(""), file, &device).into_result()?;
        Ok(self)
    }

    /// Builds the model of `config.json` and loads `model.safetensors`. The config is checked
    /// against the file's size before the model is built: a config that asks for more
    /// parameters than the file holds is refused without allocating them.
    pub fn from_files(
        config: impl AsRef<Path>,
        weights: impl AsRef<Path>,
        device: &B::Device,
    ) -> Result<Self> {
        let config = TransformerEncoderConfig::from_json_file(config)?;
        config.validate()?;
        let weights = weights.as_ref();
        let file = TensorFile::read(weights)?;
        check_file_holds(&file, config.num_params_exact(), weights)?;
        config.try_init_zeroed::<B>(device)?.load_tensor_file(&file)
    }

    /// Loads a directory holding `config.json` and `model.safetensors`.
    pub fn from_dir(dir: impl AsRef<Path>, device: &B::Device) -> Result<Self> {
        let dir = dir.as_ref();
        Self::from_files(
            dir.join("config.json"),
            dir.join("model.safetensors"),
            device,
        )
    }

    /// The PyTorch `state_dict` of the model, on the host.
    pub fn state_dict(&mut self) -> TensorFile {
        read_slots(self.weight_slots(""))
    }

    /// Writes `model.safetensors` (f32, PyTorch names), atomically.
    pub fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        self.clone().state_dict().write(path)
    }

    /// Writes `config.json` and `model.safetensors` into `dir` (created if needed).
    pub fn save_dir(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| KilnError::io(dir, e))?;
        write_atomic(
            &dir.join("config.json"),
            self.config.to_json_string().as_bytes(),
        )?;
        self.save_safetensors(dir.join("model.safetensors"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Cpu;

    #[test]
    fn a_zeroed_skeleton_stays_lazy_until_loaded_or_read() {
        let device = Default::default();
        let config = TransformerEncoderConfig::new(16, 4, 2).with_dim_feedforward(32);
        let file = config.try_init::<Cpu>(&device).unwrap().state_dict();
        let skeleton = config.try_init_zeroed::<Cpu>(&device).unwrap();
        // Finding the device to load onto reads no parameter's value.
        let mut first = FirstDevice(None);
        skeleton.visit(&mut first);
        assert!(first.0.is_some());
        let weight = &skeleton.layers[1].linear2.weight;
        assert!(!weight.is_initialized(), "the skeleton allocated its zeros");
        // Every value comes from the file.
        let mut loaded = skeleton.clone().load_tensor_file(&file).unwrap();
        assert_eq!(loaded.state_dict().tensors, file.tensors);
        // Read before loading, a parameter is zeros of its shape.
        let zeros = skeleton.layers[1].linear2.weight.val().into_data();
        assert_eq!(zeros.shape.to_vec(), vec![32, 16]);
        assert!(zeros.to_vec::<f32>().unwrap().iter().all(|&v| v == 0.0));
    }
}
