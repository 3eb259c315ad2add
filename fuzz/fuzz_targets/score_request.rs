#![no_main]
//! Any bytes, as a scoring request body for a model of any task (the first byte picks
//! it): decoding may refuse them, never panic.

use libfuzzer_sys::fuzz_target;
use sluice_shared::dataset::contract::ColumnType;
use sluice_shared::model::signature::{InputSpec, Signature, TensorType};

fuzz_target!(|data: &[u8]| {
    let signature = Signature {
        inputs: vec![
            InputSpec { name: "age".into(), kind: ColumnType::Integer, tensor: TensorType::Double, categories: None },
            InputSpec {
                name: "sex".into(),
                kind: ColumnType::String,
                tensor: TensorType::String,
                categories: Some(vec!["Female".into(), "Male".into()]),
            },
        ],
        layout: Default::default(),
        task: sluice_shared::model::Task::ALL[data.first().map_or(0, |b| usize::from(*b) % 3)],
        label: "income".into(),
        classes: vec!["<=50K".into(), ">50K".into()],
        outputs: vec![],
    };
    // Both paths: the fast one for valid records bodies, the full decoder for the rest.
    let _ = sluice_shared::scoring::decode_body(data, &signature, 1000);
});
