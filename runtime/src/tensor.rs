//! The tensors that cross the API: an owned float32 array with its shape, convertible to and from
//! `ndarray`.

/// A float32 tensor (row-major). `Tensor::default()` is an empty placeholder for
/// [`Session::run_into`](crate::Session::run_into) to fill.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    /// A tensor from a shape and its elements; `None` if they disagree in length.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Option<Tensor> {
        (shape.iter().product::<usize>() == data.len()).then_some(Tensor { shape, data })
    }

    /// A view of this tensor as an `ndarray` array.
    pub fn view(&self) -> ndarray::ArrayViewD<'_, f32> {
        ndarray::ArrayViewD::from_shape(self.shape.as_slice(), &self.data).expect("tensor shape matches its data")
    }

    /// Index of the largest element of each row of a `[rows, cols]` view (NaN never wins).
    pub fn argmax_rows(&self) -> Vec<usize> {
        let cols = self.shape.last().copied().unwrap_or(1).max(1);
        self.data
            .chunks(cols)
            .map(|row| {
                let mut best = 0;
                for (i, &v) in row.iter().enumerate() {
                    if v > row[best] || row[best].is_nan() {
                        best = i;
                    }
                }
                best
            })
            .collect()
    }
}

impl From<ndarray::ArrayD<f32>> for Tensor {
    fn from(a: ndarray::ArrayD<f32>) -> Tensor {
        let shape = a.shape().to_vec();
        let data = if a.is_standard_layout() { a.into_raw_vec_and_offset().0 } else { a.iter().copied().collect() };
        Tensor { shape, data }
    }
}

impl Tensor {
    /// A tensor copied from an `ndarray` view of any layout (elements in row-major order).
    pub fn from_view(a: &ndarray::ArrayViewD<'_, f32>) -> Tensor {
        let shape = a.shape().to_vec();
        let data = match a.as_slice() {
            Some(s) => s.to_vec(),
            None => a.iter().copied().collect(),
        };
        Tensor { shape, data }
    }

    /// This tensor as an owned `ndarray` array (no copy).
    pub fn into_array(self) -> ndarray::ArrayD<f32> {
        ndarray::ArrayD::from_shape_vec(self.shape, self.data).expect("tensor shape matches its data")
    }
}
