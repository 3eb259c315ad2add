//! How raw columns become model features, fitted on the training rows only:
//! numbers are standardised (nulls take the training mean), categories are one-hot
//! encoded (unseen values and nulls are all zeros). The same plan encodes rows for the
//! trainer and is written into `model.onnx`, so the scorer takes raw rows.

use crate::dataset::contract::ColumnType;
use crate::model::signature::{
    CATEGORIES_INPUT, InputLayout, InputSpec, LABEL_OUTPUT, NUMBERS_INPUT, OutputSpec,
    PROBABILITIES_OUTPUT, Signature, TensorType, VALUE_OUTPUT,
};
use crate::model::table::{Table, Values};
use crate::model::task::Task;

use super::linear::LinearModel;
use super::onnx::{self, Dim, GraphBuilder, attr_int, attr_ints, attr_strings, attr_tensor, elem};

#[derive(Clone, Debug, PartialEq)]
pub struct NumericFeature {
    pub name: String,
    pub kind: ColumnType,
    pub mean: f64,
    pub std: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CategoricalFeature {
    pub name: String,
    pub kind: ColumnType,
    pub categories: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FeaturePlan {
    /// Input columns in the order the config names them (the ONNX inputs' order).
    pub inputs: Vec<(String, ColumnType)>,
    pub numeric: Vec<NumericFeature>,
    pub categorical: Vec<CategoricalFeature>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FeatureError {
    #[error("feature column {0:?} is not in the data")]
    Missing(String),
}

impl FeaturePlan {
    /// Fits the plan on `table`: `inputs` are the feature columns with their dataset
    /// types; a categorical column keeps its `max_categories` most frequent values.
    pub fn fit(
        table: &Table,
        inputs: &[(String, ColumnType)],
        max_categories: usize,
    ) -> Result<Self, FeatureError> {
        let mut plan = FeaturePlan {
            inputs: inputs.to_vec(),
            numeric: vec![],
            categorical: vec![],
        };
        for (name, kind) in inputs {
            match table.column(name) {
                Some(Values::Numbers(xs)) => {
                    let present: Vec<f64> = xs.iter().copied().filter(|x| !x.is_nan()).collect();
                    let n = present.len().max(1) as f64;
                    let mean = present.iter().sum::<f64>() / n;
                    let var = present.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
                    let std = if var.sqrt() > 1e-12 { var.sqrt() } else { 1.0 };
                    plan.numeric.push(NumericFeature {
                        name: name.clone(),
                        kind: *kind,
                        mean,
                        std,
                    });
                }
                Some(Values::Text(values)) => {
                    let mut counts = std::collections::BTreeMap::<&str, u64>::new();
                    for v in values.iter().flatten() {
                        *counts.entry(v.as_str()).or_default() += 1;
                    }
                    let mut ranked: Vec<(&str, u64)> = counts.into_iter().collect();
                    // Most frequent first, ties by name: deterministic.
                    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
                    ranked.truncate(max_categories);
                    let mut categories: Vec<String> =
                        ranked.into_iter().map(|(v, _)| v.to_owned()).collect();
                    categories.sort();
                    plan.categorical.push(CategoricalFeature {
                        name: name.clone(),
                        kind: *kind,
                        categories,
                    });
                }
                None => return Err(FeatureError::Missing(name.clone())),
            }
        }
        Ok(plan)
    }

    /// Features per row.
    pub fn width(&self) -> usize {
        self.numeric.len()
            + self
                .categorical
                .iter()
                .map(|c| c.categories.len())
                .sum::<usize>()
    }

    /// Encodes `table`'s rows, row-major (`rows × width`).
    pub fn encode(&self, table: &Table) -> Result<Vec<f64>, FeatureError> {
        let rows = table.rows();
        let width = self.width();
        let mut out = vec![0.0; rows * width];
        for (j, f) in self.numeric.iter().enumerate() {
            let Some(Values::Numbers(xs)) = table.column(&f.name) else {
                return Err(FeatureError::Missing(f.name.clone()));
            };
            for (r, &x) in xs.iter().enumerate() {
                let x = if x.is_nan() { f.mean } else { x };
                out[r * width + j] = (x - f.mean) / f.std;
            }
        }
        let mut offset = self.numeric.len();
        for f in &self.categorical {
            let Some(Values::Text(values)) = table.column(&f.name) else {
                return Err(FeatureError::Missing(f.name.clone()));
            };
            for (r, v) in values.iter().enumerate() {
                if let Some(k) = v
                    .as_deref()
                    .and_then(|v| f.categories.binary_search_by(|c| c.as_str().cmp(v)).ok())
                {
                    out[r * width + offset + k] = 1.0;
                }
            }
            offset += f.categories.len();
        }
        Ok(out)
    }

    pub fn signature(&self, task: Task, label: &str, classes: &[String]) -> Signature {
        let inputs = self
            .inputs
            .iter()
            .map(|(name, kind)| {
                let categories = self
                    .categorical
                    .iter()
                    .find(|c| &c.name == name)
                    .map(|c| c.categories.clone());
                InputSpec {
                    name: name.clone(),
                    kind: *kind,
                    tensor: if categories.is_some() {
                        TensorType::String
                    } else {
                        TensorType::Double
                    },
                    categories,
                }
            })
            .collect();
        let output = |name: &str, tensor| OutputSpec {
            name: name.into(),
            tensor,
        };
        Signature {
            inputs,
            layout: InputLayout::Grouped,
            task,
            label: label.to_owned(),
            classes: classes.to_vec(),
            outputs: if task.is_classification() {
                vec![
                    output(PROBABILITIES_OUTPUT, TensorType::Double),
                    output(LABEL_OUTPUT, TensorType::Int64),
                ]
            } else {
                vec![output(VALUE_OUTPUT, TensorType::Double)]
            },
        }
    }

    /// The whole model as ONNX: this plan's preprocessing, then `model`'s scores, then
    /// the task's head (binary: sigmoid of the one score; multiclass: softmax of one score
    /// per class; regression: the score itself).
    pub fn to_onnx(
        &self,
        model: &LinearModel,
        task: Task,
        name: &str,
        metadata: &[(&str, String)],
    ) -> Vec<u8> {
        let mut g = GraphBuilder::default();
        let (n, c) = (self.numeric.len() as i64, self.categorical.len() as i64);
        let k = model.outputs;
        // Inputs as [`InputLayout::Grouped`]: the columns of each kind side by side.
        if n > 0 {
            let dims = [Dim::Named("rows"), Dim::Fixed(n)];
            g.input(onnx::value_info(NUMBERS_INPUT, elem::DOUBLE, &dims));
        }
        if c > 0 {
            let dims = [Dim::Named("rows"), Dim::Fixed(c)];
            g.input(onnx::value_info(CATEGORIES_INPUT, elem::STRING, &dims));
        }
        // The graph is compiled for serving rather than mirroring `encode` step by step:
        // for a linear model, standardising is folded into the weights and biases, and a
        // one-hot block times its weights is a lookup of the category's weights. Far
        // fewer nodes than the literal form, the same function to rounding (the trainer's
        // ORT parity check holds it to 1e-5).
        let mut bias = model.bias.clone();
        let mut terms = Vec::new();
        if n > 0 {
            let mut scaled = Vec::with_capacity(self.numeric.len() * k);
            for (i, f) in self.numeric.iter().enumerate() {
                scaled.extend(model.weights[i * k..(i + 1) * k].iter().map(|w| w / f.std));
            }
            for (i, f) in self.numeric.iter().enumerate() {
                for (b, w) in bias.iter_mut().zip(&scaled[i * k..(i + 1) * k]) {
                    *b -= w * f.mean;
                }
            }
            let means: Vec<f64> = self.numeric.iter().map(|f| f.mean).collect();
            let mean = g.initializer(onnx::doubles("numeric_mean", &[1, n], means));
            let w = g.initializer(onnx::doubles("numeric_weights", &[n, k as i64], scaled));
            // A missing number takes the mean, so it adds nothing.
            let missing = g.node("IsNaN", &[NUMBERS_INPUT], "numeric_missing", vec![]);
            let filled = g.node(
                "Where",
                &[&missing, &mean, NUMBERS_INPUT],
                "numeric_filled",
                vec![],
            );
            terms.push(g.node("MatMul", &[&filled, &w], "numeric_term", vec![]));
        }
        if c > 0 {
            terms.push(self.category_term(&mut g, model));
        }
        let b = g.initializer(onnx::doubles("bias", &[k as i64], bias));
        terms.push(b);
        let term_names: Vec<&str> = terms.iter().map(String::as_str).collect();
        let rows = Dim::Named("rows");
        let doc = match task {
            Task::Binary => {
                let logit = g.node("Sum", &term_names, "logit", vec![]);
                let one = g.initializer(onnx::doubles("one", &[1], vec![1.0]));
                let p = g.node("Sigmoid", &[&logit], "positive", vec![]);
                let q = g.node("Sub", &[&one, &p], "negative", vec![]);
                let probabilities = g.node(
                    "Concat",
                    &[&q, &p],
                    PROBABILITIES_OUTPUT,
                    vec![attr_int("axis", 1)],
                );
                self.label_output(&mut g, &probabilities, 2);
                "Sluice reference trainer: logistic regression over standardised numbers and one-hot categories (folded into per-column weights)"
            }
            Task::Multiclass => {
                let scores = g.node("Sum", &term_names, "scores", vec![]);
                let probabilities = g.node(
                    "Softmax",
                    &[&scores],
                    PROBABILITIES_OUTPUT,
                    vec![attr_int("axis", 1)],
                );
                self.label_output(&mut g, &probabilities, k as i64);
                "Sluice reference trainer: multinomial logistic regression over standardised numbers and one-hot categories (folded into per-column weights)"
            }
            Task::Regression => {
                g.node("Sum", &term_names, VALUE_OUTPUT, vec![]);
                g.output(onnx::value_info(
                    VALUE_OUTPUT,
                    elem::DOUBLE,
                    &[rows, Dim::Fixed(1)],
                ));
                "Sluice reference trainer: ridge regression over standardised numbers and one-hot categories (folded into per-column weights)"
            }
        };
        g.finish(name, doc, metadata)
    }

    /// The categorical columns' contribution to the scores, `[rows, outputs]`: one
    /// lookup for every column, each value keyed by its column's position
    /// ("3\u{1f}Private") so equal values in two columns stay apart (positions hold no
    /// separator, so no two (column, value) pairs share a key). An unknown or missing
    /// category adds nothing, as its all-zero one-hot would.
    fn category_term(&self, g: &mut GraphBuilder, model: &LinearModel) -> String {
        let c = self.categorical.len() as i64;
        let k = model.outputs;
        let prefixes: Vec<String> = (0..c).map(|i| format!("{i}\u{1f}")).collect();
        let mut keys = Vec::new();
        let mut values = Vec::new();
        let mut offset = self.numeric.len();
        for (prefix, f) in prefixes.iter().zip(&self.categorical) {
            keys.extend(f.categories.iter().map(|v| format!("{prefix}{v}")));
            values.extend_from_slice(&model.weights[offset * k..(offset + f.categories.len()) * k]);
            offset += f.categories.len();
        }
        let prefix = g.initializer(onnx::strings("category_prefix", &[1, c], &prefixes));
        let keyed = g.node(
            "StringConcat",
            &[&prefix, CATEGORIES_INPUT],
            "category_keys",
            vec![],
        );
        if k == 1 {
            // One score: the lookup gives the weight itself.
            let looked_up = g.node_in(
                onnx::ML_DOMAIN,
                "LabelEncoder",
                &[&keyed],
                "category_weights",
                vec![
                    attr_strings("keys_strings", &keys),
                    attr_tensor(
                        "values_tensor",
                        onnx::doubles("", &[values.len() as i64], values),
                    ),
                    attr_tensor("default_tensor", onnx::doubles("", &[1], vec![0.0])),
                ],
            );
            let ones = g.initializer(onnx::doubles(
                "category_ones",
                &[c, 1],
                vec![1.0; c as usize],
            ));
            return g.node("MatMul", &[&looked_up, &ones], "category_term", vec![]);
        }
        // Several scores: the lookup gives a row of a weight table, whose last row (for
        // unknown and missing values) is zeros.
        let rows = keys.len() as i64;
        let indices: Vec<i64> = (0..rows).collect();
        values.extend(std::iter::repeat_n(0.0, k));
        let index = g.node_in(
            onnx::ML_DOMAIN,
            "LabelEncoder",
            &[&keyed],
            "category_index",
            vec![
                attr_strings("keys_strings", &keys),
                attr_ints("values_int64s", &indices),
                attr_int("default_int64", rows),
            ],
        );
        let table = g.initializer(onnx::doubles(
            "category_weights",
            &[rows + 1, k as i64],
            values,
        ));
        let gathered = g.node("Gather", &[&table, &index], "category_rows", vec![]);
        let axis = g.initializer(onnx::int64s("category_axis", &[1], vec![1]));
        g.node(
            "ReduceSum",
            &[&gathered, &axis],
            "category_term",
            vec![attr_int("keepdims", 0)],
        )
    }

    /// The class index of the most probable class, and the classifier's two outputs.
    fn label_output(&self, g: &mut GraphBuilder, probabilities: &str, classes: i64) {
        g.node(
            "ArgMax",
            &[probabilities],
            LABEL_OUTPUT,
            vec![attr_int("axis", 1), attr_int("keepdims", 0)],
        );
        g.output(onnx::value_info(
            PROBABILITIES_OUTPUT,
            elem::DOUBLE,
            &[Dim::Named("rows"), Dim::Fixed(classes)],
        ));
        g.output(onnx::value_info(
            LABEL_OUTPUT,
            elem::INT64,
            &[Dim::Named("rows")],
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table {
            columns: vec![
                ("x".into(), Values::Numbers(vec![1.0, 3.0, f64::NAN])),
                (
                    "c".into(),
                    Values::Text(vec![Some("b".into()), Some("a".into()), None]),
                ),
            ],
        }
    }

    fn inputs() -> Vec<(String, ColumnType)> {
        vec![
            ("x".into(), ColumnType::Float),
            ("c".into(), ColumnType::String),
        ]
    }

    #[test]
    fn numbers_standardise_and_categories_one_hot() {
        let plan = FeaturePlan::fit(&table(), &inputs(), 10).unwrap();
        assert_eq!(plan.numeric[0].mean, 2.0);
        assert_eq!(plan.numeric[0].std, 1.0);
        assert_eq!(plan.categorical[0].categories, ["a", "b"]);
        assert_eq!(plan.width(), 3);
        let x = plan.encode(&table()).unwrap();
        // Rows: (-1, 0,1), (1, 1,0), (null → mean → 0, unseen → 0,0).
        assert_eq!(x, [-1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        let sig = plan.signature(Task::Binary, "y", &["n".into(), "p".into()]);
        assert_eq!(
            sig.inputs[1].categories.as_deref(),
            Some(&["a".to_owned(), "b".to_owned()][..])
        );
        assert_eq!(sig.inputs[0].tensor, TensorType::Double);
    }

    #[test]
    fn categories_are_capped_by_frequency() {
        let t = Table {
            columns: vec![(
                "c".into(),
                Values::Text(
                    ["z", "z", "y", "x", "x", "x"]
                        .map(|s| Some(s.into()))
                        .to_vec(),
                ),
            )],
        };
        let plan = FeaturePlan::fit(&t, &[("c".into(), ColumnType::String)], 2).unwrap();
        assert_eq!(plan.categorical[0].categories, ["x", "z"]);
    }
}
