//! Integration tests of `sandpit-bucket` against real servers (a single-node Garage on loopback).

mod artifact_store;
mod garage;
