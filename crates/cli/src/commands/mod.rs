//! One module per verb: its arguments (`Args`) and `exec`, which calls the use case and prints.

pub mod artifacts;
pub mod build;
pub mod daemon;
pub mod down;
pub mod init;
pub mod logs;
pub mod ls;
pub mod status;
pub mod up;
