//! sandpit.toml: parse, validate with located diagnostics, JSON Schema, starter file.
//!
//! [`parse`] runs in three steps, all of which report into one list so a user sees every problem
//! at once: TOML syntax (`toml_edit`, which keeps spans), the shape of the file against the key
//! tables in `schema` (types, required and unknown keys), then the cross-key rules in `validate`.

pub mod diagnostic;
pub mod model;
mod schema;
mod starter;
mod typecheck;
mod validate;

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use model::*;
pub use schema::{json_schema, FILE_NAME};
pub use starter::starter_file;

use diagnostic::Sink;
use sandpit_domain::escape_hidden;

/// Parses and validates the text of a `sandpit.toml`, reporting every problem found.
///
/// Any problem refuses the file, unknown keys and sections included (with a did-you-mean hint):
/// a misspelt key would otherwise silently fall back to its default.
pub fn parse(source: &str) -> Result<Spec, Diagnostics> {
    let mut sink = Sink::new(source);
    let document = match toml_edit::ImDocument::parse(source) {
        Ok(document) => document,
        Err(error) => {
            // Nothing past a syntax error can be trusted, so it is the only diagnostic.
            let message = error
                .message()
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty());
            // toml_edit's message can echo the input (a key holding `\u0000`): escaped so the
            // message shows what it is about.
            let message = escape_hidden(&message.collect::<Vec<_>>().join("; "));
            let at = error.span().map_or(0, |span| span.start);
            sink.error(at, format!("invalid TOML: {message}"), None);
            return Err(sink.finish());
        }
    };
    let root = typecheck::check_table(
        &mut sink,
        document.as_table(),
        0,
        &schema::ROOT,
        "the file",
        "",
    );
    let spec = validate::build_spec(&mut sink, &root);
    match spec {
        Some(spec) if !sink.has_errors() => Ok(spec),
        _ => Err(sink.finish()),
    }
}
