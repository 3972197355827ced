//! Builds from a commit: git snapshot, build plan (what is rebuilt vs reused), build execution, publishing.
