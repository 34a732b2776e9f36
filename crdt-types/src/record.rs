//! What a key holds: a typed value and its expiry, under one causal context.

use crate::{CausalContext, Delta, Dot, DotStore, Expiry, JoinMode, TypedStore};
use serde::{Deserialize, Serialize};

/// The dot store of one key: its value and its expiry. A key's state is a
/// `Causal<Record>`; deleting the key removes both (observed-remove).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Record {
    /// The value.
    pub data: TypedStore,
    /// The expiry writes.
    pub expiry: Expiry,
}

impl Record {
    /// Lifts a delta of the value into a delta of the record.
    pub fn data_delta(d: Delta<TypedStore>) -> Delta<Record> {
        d.map(|data| Record {
            data,
            expiry: Expiry::default(),
        })
    }

    /// Lifts a delta of the expiry into a delta of the record.
    pub fn expiry_delta(d: Delta<Expiry>) -> Delta<Record> {
        d.map(|expiry| Record {
            data: TypedStore::Empty,
            expiry,
        })
    }
}

impl DotStore for Record {
    fn is_bottom(&self) -> bool {
        self.data.is_bottom() && self.expiry.is_bottom()
    }
    fn for_each_dot(&self, f: &mut dyn FnMut(Dot)) {
        self.data.for_each_dot(f);
        self.expiry.for_each_dot(f);
    }
    fn join(
        &mut self,
        ctx: &CausalContext,
        other: &Self,
        other_ctx: &CausalContext,
        mode: JoinMode,
    ) {
        self.data.join(ctx, &other.data, other_ctx, mode);
        self.expiry.join(ctx, &other.expiry, other_ctx, mode);
    }
    fn removal(&self) -> Self {
        Record {
            data: self.data.removal(),
            expiry: self.expiry.removal(),
        }
    }
    fn heap_bytes(&self) -> usize {
        self.data.heap_bytes() + self.expiry.heap_bytes()
    }
}
