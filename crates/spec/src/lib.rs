//! sandpit.toml: parse, validate with located diagnostics, JSON Schema, starter file.
