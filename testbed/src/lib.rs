//! The swh-deploy test bed: real hosts and services on one machine.
pub mod aptrepo;
