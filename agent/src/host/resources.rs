//! The host-side values behind WIT resources: what the bindings
//! `with:` maps each resource to ([`super::bindings`]). Kept apart from the
//! capabilities that create them so the bindings depend on no capability.

use mongodb::Cursor;
use mongodb::bson::RawDocumentBuf;

/// A cursor opened by `open-cursor`, owned by the guest through the
/// resource table.
pub struct MongoCursor {
    pub(crate) target: String,
    pub(crate) cursor: Option<Cursor<RawDocumentBuf>>,
    pub(crate) grant_max_rows: u32,
    pub(crate) max_bytes: usize,
}
