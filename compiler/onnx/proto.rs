//! Reading protobuf values: tensors (raw_data and typed fields) and attributes.

use anyhow::{anyhow, bail, Result};
use resin_ir::Tensor;
use tract_onnx::pb::{attribute_proto::AttributeType, tensor_proto::DataType, AttributeProto, NodeProto, TensorProto};

/// Converts an initializer or attribute tensor. float32 stays float32; int64, int32, int8, uint8 and
/// bool become int64 (they only appear in shape arithmetic); anything else is refused by name.
pub fn tensor(t: &TensorProto) -> Result<Tensor> {
    let shape: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| anyhow!("tensor '{}' has a negative dimension {d}", t.name)))
        .collect::<Result<_>>()?;
    let len = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let Some(len) = len.filter(|&l| l <= (1 << 32)) else {
        bail!("tensor '{}' declares an absurd shape {:?}", t.name, t.dims);
    };
    if t.data_location == Some(1) {
        bail!("tensor '{}' uses external data, which is not supported: save the model with its weights inside", t.name);
    }
    let raw = &t.raw_data;
    let check = |got: usize| -> Result<()> {
        if got != len {
            bail!("tensor '{}' has {got} elements, its shape {:?} needs {len}", t.name, shape);
        }
        Ok(())
    };
    let dt = DataType::try_from(t.data_type)
        .map_err(|_| anyhow!("tensor '{}' has unknown dtype {}", t.name, t.data_type))?;
    match dt {
        DataType::Float => {
            let v: Vec<f32> = if !raw.is_empty() {
                if !raw.len().is_multiple_of(4) {
                    bail!("tensor '{}' raw_data is {} bytes, not a whole number of float32", t.name, raw.len());
                }
                check(raw.len() / 4)?;
                raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
            } else {
                check(t.float_data.len())?;
                t.float_data.clone()
            };
            Ok(Tensor::f32(shape, v))
        }
        DataType::Int64 => {
            let v: Vec<i64> = if !raw.is_empty() {
                check(raw.len() / 8)?;
                raw.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()
            } else {
                check(t.int64_data.len())?;
                t.int64_data.clone()
            };
            Ok(Tensor::i64(shape, v))
        }
        DataType::Int32 | DataType::Int8 | DataType::Uint8 | DataType::Bool | DataType::Int16 | DataType::Uint16 => {
            let width = match dt {
                DataType::Int32 => 4,
                DataType::Int16 | DataType::Uint16 => 2,
                _ => 1,
            };
            let v: Vec<i64> = if !raw.is_empty() {
                check(raw.len() / width)?;
                raw.chunks_exact(width)
                    .map(|c| match dt {
                        DataType::Int32 => i32::from_le_bytes(c.try_into().unwrap()) as i64,
                        DataType::Int16 => i16::from_le_bytes(c.try_into().unwrap()) as i64,
                        DataType::Uint16 => u16::from_le_bytes(c.try_into().unwrap()) as i64,
                        DataType::Int8 => c[0] as i8 as i64,
                        _ => c[0] as i64,
                    })
                    .collect()
            } else {
                check(t.int32_data.len())?;
                t.int32_data.iter().map(|&x| x as i64).collect()
            };
            Ok(Tensor::i64(shape, v))
        }
        other => bail!(
            "tensor '{}' has dtype {}, which is not supported (float32 and integers are)",
            t.name,
            other.as_str_name()
        ),
    }
}

/// Typed access to a node's attributes, with errors that name the node.
pub struct Attrs<'a> {
    pub node: &'a NodeProto,
}

impl<'a> Attrs<'a> {
    pub fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }

    fn typed(&self, name: &str, want: AttributeType) -> Result<Option<&'a AttributeProto>> {
        match self.get(name) {
            None => Ok(None),
            Some(a) if a.r#type == want as i32 => Ok(Some(a)),
            Some(a) => {
                let got = AttributeType::try_from(a.r#type).map(|t| t.as_str_name()).unwrap_or("UNKNOWN");
                bail!("attribute '{name}' should be {}, got {got}", want.as_str_name())
            }
        }
    }

    pub fn int(&self, name: &str, default: i64) -> Result<i64> {
        Ok(self.typed(name, AttributeType::Int)?.map_or(default, |a| a.i))
    }
    pub fn float(&self, name: &str, default: f32) -> Result<f32> {
        Ok(self.typed(name, AttributeType::Float)?.map_or(default, |a| a.f))
    }
    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        Ok(self.typed(name, AttributeType::Ints)?.map(|a| a.ints.clone()))
    }
    pub fn floats(&self, name: &str) -> Result<Option<Vec<f32>>> {
        Ok(self.typed(name, AttributeType::Floats)?.map(|a| a.floats.clone()))
    }
    pub fn string(&self, name: &str, default: &str) -> Result<String> {
        Ok(self
            .typed(name, AttributeType::String)?
            .map_or(default.to_string(), |a| String::from_utf8_lossy(&a.s).into_owned()))
    }
    pub fn tensor(&self, name: &str) -> Result<Option<&'a TensorProto>> {
        Ok(self.typed(name, AttributeType::Tensor)?.and_then(|a| a.t.as_ref()))
    }
    /// A list of non-negative sizes.
    pub fn usizes(&self, name: &str) -> Result<Option<Vec<usize>>> {
        match self.ints(name)? {
            None => Ok(None),
            Some(v) => v
                .iter()
                .map(|&x| usize::try_from(x).map_err(|_| anyhow!("attribute '{name}' has a negative value {x}")))
                .collect::<Result<Vec<_>>>()
                .map(Some),
        }
    }
}
