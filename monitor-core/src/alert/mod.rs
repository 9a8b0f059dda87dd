//! Alert tracking: the [`AlertTracker`] turns the detectors' findings into alerts, with
//! a cooldown and an end after a few clear intervals, and [`human`] renders them as one
//! line for a person. The alert records themselves are plain data in
//! `crate::model::alert`.

pub mod human;
pub mod tracker;

pub use tracker::AlertTracker;
