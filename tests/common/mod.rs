//! Helpers shared by the integration tests: watching worker processes, and
//! the private sshd of the cluster cases. Not every test binary uses all.
#![allow(dead_code)]

pub(crate) use process_tree::alive;

pub(crate) mod numbers;
pub(crate) mod process_tree;
pub(crate) mod slurm;
pub(crate) mod sshd;
