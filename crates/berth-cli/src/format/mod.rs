//! Output formatting: human units, tables, Go templates, JSON indentation.

pub mod json;
pub mod table;
pub mod template;
pub mod units;
