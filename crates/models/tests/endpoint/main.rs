//! The model endpoint end to end: real ONNX Runtime, real artifacts (zips with the ONNX file and
//! `model.json`), real HTTP through the router (and one real TCP listener).

mod support;

mod errors;
mod inference;
mod integers;
mod lifecycle;
mod registration;
mod routing;
mod slow_clients;
mod usage;
