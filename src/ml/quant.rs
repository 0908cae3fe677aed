//! Linear layers on f32 or 8-bit weights.
//!
//! 8-bit is ggml's `Q8_0` through candle's quantized matmul: blocks of 32 weights, each an i8
//! with one f16 scale per block. The activations are quantized the same way on the fly, so a
//! product is an integer dot product per block. On a CPU that reads a quarter of the bytes and
//! runs 2x to 4x faster than the f32 product for the shapes our models have (one row at a time
//! in a decoder, up to a few thousand rows in an encoder), at about 1% relative error per layer.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// The number format of the weights of the layers that offer a choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Precision {
    /// The checkpoint's weights as 32-bit floats.
    #[default]
    F32,
    /// 8-bit weights (`Q8_0`: i8 in blocks of 32 with an f16 scale each), quantized at load.
    Int8,
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "int8" => Ok(Precision::Int8),
            other => Err(format!("precision {other:?}: expected \"f32\" or \"int8\"")),
        }
    }
}

/// `x · Wᵀ + b` with `W` `[out, in]` in f32 or 8-bit.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Weight,
    bias: Option<Tensor>,
}

#[derive(Debug, Clone)]
enum Weight {
    F32(candle_nn::Linear),
    Int8(QMatMul),
}

impl Linear {
    /// The layer `weight` (and `bias` when `bias`) under `vb`. Int8 needs `inputs` to be a
    /// multiple of the block (32) and the CPU (candle's quantized kernels elsewhere cover other
    /// formats); otherwise the layer stays f32.
    pub fn load(inputs: usize, outputs: usize, bias: bool, vb: VarBuilder, precision: Precision) -> Result<Self> {
        let w = vb.get((outputs, inputs), "weight")?;
        let bias = if bias { Some(vb.get(outputs, "bias")?) } else { None };
        Self::new(w, bias, precision)
    }

    pub fn new(w: Tensor, bias: Option<Tensor>, precision: Precision) -> Result<Self> {
        let weight = match precision {
            Precision::Int8 if w.dim(1)? % GgmlDType::Q8_0.block_size() == 0 && w.device().is_cpu() => {
                Weight::Int8(QMatMul::from_qtensor(QTensor::quantize(&w, GgmlDType::Q8_0)?)?)
            }
            _ => Weight::F32(candle_nn::Linear::new(w, None)),
        };
        Ok(Linear { weight, bias })
    }

    /// Whether the weights are 8-bit.
    pub fn is_int8(&self) -> bool {
        matches!(self.weight, Weight::Int8(_))
    }

    /// The 8-bit product of a layer without bias, if it is 8-bit.
    pub fn into_int8(self) -> Option<QMatMul> {
        match self.weight {
            Weight::Int8(q) => Some(q),
            Weight::F32(_) => None,
        }
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match &self.weight {
            // One row (a decoding step): the product reads each weight once, on every thread.
            Weight::F32(l) if x.device().is_cpu() && x.elem_count() == l.weight().dim(1)? => {
                let mut dims = x.dims().to_vec();
                *dims.last_mut().expect("a row has a last dimension") = l.weight().dim(0)?;
                super::cpu::logits(x, l.weight())?.reshape(dims)?
            }
            // A few rows (one image's tokens, a prompt): dot products in place, bias included.
            Weight::F32(l) if x.device().is_cpu() && x.elem_count() <= super::cpu::FEW_ROWS * l.weight().dim(1)? => {
                return super::cpu::linear(x, l.weight(), self.bias.as_ref());
            }
            Weight::F32(l) => l.forward(x)?,
            Weight::Int8(q) => q.forward(&x.contiguous()?)?,
        };
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn relative_error(a: &Tensor, b: &Tensor) -> f32 {
        let diff = (a - b).unwrap().sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        let norm = a.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        (diff / norm).sqrt()
    }

    #[test]
    fn int8_layers_agree_with_f32_within_quantisation_error() {
        let dev = Device::Cpu;
        for (rows, inputs, outputs) in [(1, 64, 96), (3, 384, 130), (50, 96, 64)] {
            let w = Tensor::randn(0f32, 0.05, (outputs, inputs), &dev).unwrap();
            let b = Tensor::randn(0f32, 1.0, outputs, &dev).unwrap();
            let x = Tensor::randn(0f32, 1.0, (2, rows, inputs), &dev).unwrap();
            let f = Linear::new(w.clone(), Some(b.clone()), Precision::F32).unwrap();
            let q = Linear::new(w, Some(b), Precision::Int8).unwrap();
            assert!(!f.is_int8() && q.is_int8());
            let (yf, yq) = (f.forward(&x).unwrap(), q.forward(&x).unwrap());
            assert_eq!(yf.dims(), [2, rows, outputs]);
            assert_eq!(yq.dims(), yf.dims());
            let err = relative_error(&yf, &yq);
            // 8 bits per weight and per activation: about 0.5% to 1% error, never 0 (that would
            // mean the f32 path ran).
            assert!(err > 1e-4 && err < 0.02, "{rows}x{inputs}x{outputs}: relative error {err}");
        }
    }

    #[test]
    fn a_single_row_f32_product_is_candles_product() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 0.05, (130, 384), &dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, 130, &dev).unwrap();
        let ours = Linear::new(w.clone(), Some(b.clone()), Precision::F32).unwrap();
        let candles = candle_nn::Linear::new(w, Some(b));
        for shape in [vec![1, 384], vec![1, 1, 384], vec![2, 1, 384]] {
            let x = Tensor::randn(0f32, 1.0, shape.as_slice(), &dev).unwrap();
            let (got, want) = (ours.forward(&x).unwrap(), candles.forward(&x).unwrap());
            assert_eq!(got.dims(), want.dims(), "{shape:?}");
            let diff = (got - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(diff < 1e-4, "{shape:?}: differs by {diff}");
        }
    }

    #[test]
    fn widths_that_are_not_whole_blocks_stay_f32() {
        let w = Tensor::ones((8, 40), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(!Linear::new(w, None, Precision::Int8).unwrap().is_int8());
    }

    #[test]
    fn precision_parses_its_names_and_names_a_wrong_one() {
        assert_eq!("int8".parse::<Precision>(), Ok(Precision::Int8));
        assert_eq!("f32".parse::<Precision>(), Ok(Precision::F32));
        assert!("q4".parse::<Precision>().unwrap_err().contains("\"q4\""));
    }
}
