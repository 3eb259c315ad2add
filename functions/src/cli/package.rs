//! `sluice package`: the Function App's deployment zip, in the layout the Functions host
//! expects: `host.json` at the root, one folder per function holding its
//! `function.json`, the `sluice` executable (mode 755) and the ONNX Runtime library
//! beside it, where Sluice looks first. The zip is what `az functionapp deployment
//! source config-zip` and the Functions deploy action take.
//!
//! The host and function files are compiled into the binary, so a package always
//! matches the executable inside it: no checkout is needed to build one.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use zip::write::SimpleFileOptions;

/// The host's configuration, compiled in like the functions' (see
/// [`crate::host::startup::FUNCTION_JSON`]).
pub const HOST_JSON: &str = include_str!("../../../host.json");

/// Writes the zip at `output` with `executable` and `onnxruntime`; returns its entries.
pub fn write(output: &Path, executable: &Path, onnxruntime: &Path) -> anyhow::Result<Vec<String>> {
    let file =
        std::fs::File::create(output).with_context(|| format!("creating {}", output.display()))?;
    let mut zip = zip::ZipWriter::new(file);
    let text = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o644);
    let mut entries = Vec::new();
    let mut add = |zip: &mut zip::ZipWriter<std::fs::File>,
                   name: String,
                   options: SimpleFileOptions,
                   from: &mut dyn std::io::Read|
     -> anyhow::Result<()> {
        zip.start_file(name.as_str(), options)?;
        std::io::copy(from, zip).with_context(|| format!("adding {name}"))?;
        entries.push(name);
        Ok(())
    };
    add(
        &mut zip,
        "host.json".into(),
        text,
        &mut HOST_JSON.as_bytes(),
    )?;
    for (name, json) in crate::host::startup::FUNCTION_JSON {
        add(
            &mut zip,
            format!("{name}/function.json"),
            text,
            &mut json.as_bytes(),
        )?;
    }
    let binary = text.unix_permissions(0o755).large_file(true);
    let mut exe = std::fs::File::open(executable)
        .with_context(|| format!("opening {}", executable.display()))?;
    add(&mut zip, "sluice".into(), binary, &mut exe)?;
    let mut library = std::fs::File::open(onnxruntime)
        .with_context(|| format!("opening {}", onnxruntime.display()))?;
    add(
        &mut zip,
        crate::onnxruntime::LIBRARY.into(),
        text.unix_permissions(0o755).large_file(true),
        &mut library,
    )?;
    zip.finish()?.flush()?;
    Ok(entries)
}
