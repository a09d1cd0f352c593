//! DoRA (weight-decomposed low-rank adaptation): LoRA's update plus a trained magnitude per
//! output row; PEFT's `LORA` adapter type with `use_dora`, magnitude key
//! `lora_magnitude_vector`. Settings and flags are LoRA's.

pub mod layer;

use crate::lora::{self, LoraConfig};
use crate::peft::NetShape;
use candle_core::Result;
use layer::DoraDelta;
use serde_json::Value;
use tuna_core::Rng;
use tuna_models::Model;

/// Peak learning rate when none is given (LoRA's).
pub const DEFAULT_LR: f64 = lora::DEFAULT_LR;

/// Attaches a fresh DoRA layer to every target layer of `model` (the same random draws as
/// LoRA's, then `m = ||W||`).
pub fn attach(cfg: &LoraConfig, model: &mut Model, rng: &mut Rng) -> Result<()> {
    let dev = model.device.clone();
    let targets = cfg.targets(model.info.family)?;
    targets.each(&mut model.network, &mut |_, lin| {
        let (i, o) = lin.dims()?;
        let dora = DoraDelta::init(cfg.init(i, o, rng, &dev)?, &lin.weight().dense()?)?;
        lin.delta = Some(Box::new(dora));
        Ok(())
    })
}

/// DoRA trains LoRA's matrices and the magnitudes.
pub fn trains(name: &str) -> bool {
    lora::trains(name) || name.ends_with(".lora_magnitude_vector")
}

/// Magnitudes get no weight decay: like a norm's scale, they set a size, not a direction.
pub fn no_decay(name: &str) -> bool {
    name.ends_with(".lora_magnitude_vector")
}

/// The adapter file's config fields: LoRA's with `use_dora`.
pub fn to_peft(cfg: &LoraConfig, saved: &[String], _shape: &NetShape) -> Value {
    let mut v = cfg.peft_fields(saved);
    v["use_dora"] = true.into();
    v
}

#[cfg(test)]
mod tests {
    #[test]
    fn peft_adapter_gives_peft_outputs() {
        let d = crate::peft_fixture::difference(
            "dora",
            "dora_last_hidden_state",
            crate::MethodName::Dora,
        );
        assert!(d < 1e-4, "max difference {d} from PEFT");
    }
}
