//! The `mongo` capability: MongoDB commands and cursors, BSON as bytes across
//! the boundary, classified by the host like SQL statements. So far: the
//! classifier ([`classify`]); the host functions come with the WIT
//! interface.

pub mod classify;
