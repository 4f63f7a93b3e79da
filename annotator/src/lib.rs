pub mod auth;
pub mod db;
pub mod domain;
pub mod engine;
