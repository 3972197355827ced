//! Use cases, one module per verb: init, build, up, down, status, ls, logs, artifacts.
