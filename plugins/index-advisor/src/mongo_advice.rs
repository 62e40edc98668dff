//! MongoDB index advice as pure functions (being written).
