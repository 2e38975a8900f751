//! Pagination for every list: a limit, an opaque iterator, a `done` flag and an order.
//!
//! Iterators are keyset cursors (the sort key of the last item returned), so fetching page
//! *n* costs the same as fetching page 1 and listing everything is linear. Every page also
//! hands out a `prev_iterator` (Svix's `prevIterator`: the first item's key, marked with a
//! leading `-`), which lists the page before it, back toward the start, in the same order.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::Error;

/// Page size when none is given.
pub const DEFAULT_LIMIT: usize = 50;
/// The largest page size; bigger limits are clamped to it.
pub const MAX_LIMIT: usize = 250;

/// The order of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Order {
    /// Smallest key first: oldest first for ids, A→Z for names.
    #[default]
    Ascending,
    /// Largest key first: newest first for ids, Z→A for names.
    Descending,
}

impl Order {
    /// The other order.
    fn reversed(self) -> Self {
        match self {
            Self::Ascending => Self::Descending,
            Self::Descending => Self::Ascending,
        }
    }
}

/// How to list: page size, where to continue from, and the order.
///
/// ```
/// use switchyard_webhooks::{ListOptions, Order};
/// let first_page = ListOptions::new().limit(100).order(Order::Descending);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Page size: default 50, at most 250, at least 1.
    pub limit: Option<usize>,
    /// The `iterator` of the previous page, to continue after it, or its `prev_iterator`,
    /// to list the items before it.
    pub iterator: Option<String>,
    /// The order (ascending by default).
    pub order: Order,
}

impl ListOptions {
    /// The first page, 50 items, ascending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the page size (clamped to 1..=250).
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Continues after the page that returned this iterator (its `iterator`), or lists the
    /// items before it (its `prev_iterator`).
    #[must_use]
    pub fn iterator(mut self, iterator: impl Into<String>) -> Self {
        self.iterator = Some(iterator.into());
        self
    }

    /// Sets the order.
    #[must_use]
    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    pub(crate) fn effective_limit(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
    }

    /// The iterator that continues a list after the item with this key (its id): what a
    /// page ending with that item hands out, for a caller that stops part-way through one.
    pub fn iterator_after(key: &str) -> String {
        encode_iterator(key)
    }

    /// Whether the iterator is a `prev_iterator`: the store is asked for the items before
    /// it, nearest first, and [`finish_page`] turns them back into the list's order.
    pub(crate) fn is_backward(&self) -> bool {
        self.iterator
            .as_deref()
            .is_some_and(|iterator| iterator.starts_with(BACKWARD))
    }

    pub(crate) fn to_request(&self) -> Result<PageRequest, Error> {
        let after = match &self.iterator {
            None => None,
            Some(iterator) => Some(decode_iterator(
                iterator.strip_prefix(BACKWARD).unwrap_or(iterator),
            )?),
        };
        let order = if self.is_backward() {
            self.order.reversed()
        } else {
            self.order
        };
        Ok(PageRequest {
            after,
            order,
            limit: self.effective_limit(),
        })
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items, in the requested order.
    pub items: Vec<T>,
    /// Pass this to [`ListOptions::iterator`] for the next page (absent on an empty page).
    pub iterator: Option<String>,
    /// Pass this to [`ListOptions::iterator`] for the page before this one (absent on an
    /// empty page).
    pub prev_iterator: Option<String>,
    /// No item follows this page (in the direction it was asked for: after it, or, for a
    /// page asked for with a `prev_iterator`, before it).
    pub done: bool,
}

/// A page request as a store sees it: return up to `limit + 1` items whose key comes strictly
/// after `after` in `order` (the extra item tells whether the list is done).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// The key of the last item of the previous page.
    pub after: Option<String>,
    /// The order.
    pub order: Order,
    /// The page size (the store returns one more when it can).
    pub limit: usize,
}

impl PageRequest {
    /// Whether `key` lies after the cursor in this request's order.
    pub fn is_after(&self, key: &str) -> bool {
        match (&self.after, self.order) {
            (None, _) => true,
            (Some(after), Order::Ascending) => key > after.as_str(),
            (Some(after), Order::Descending) => key < after.as_str(),
        }
    }
}

/// A page from what a store answered for `request` (up to one item more than the limit);
/// `backward` when the request was made from a `prev_iterator` (the items came nearest
/// first and are put back in the list's order).
pub(crate) fn finish_page<T>(
    mut items: Vec<T>,
    request: &PageRequest,
    backward: bool,
    key: impl Fn(&T) -> &str,
) -> Page<T> {
    let done = items.len() <= request.limit;
    items.truncate(request.limit);
    if backward {
        items.reverse();
    }
    let iterator = items.last().map(|last| encode_iterator(key(last)));
    let prev_iterator = items
        .first()
        .map(|first| format!("{BACKWARD}{}", encode_iterator(key(first))));
    Page {
        items,
        iterator,
        prev_iterator,
        done,
    }
}

/// What marks a `prev_iterator` (Svix's mark).
const BACKWARD: char = '-';

fn encode_iterator(key: &str) -> String {
    format!("i{}", URL_SAFE_NO_PAD.encode(key))
}

fn decode_iterator(iterator: &str) -> Result<String, Error> {
    let invalid = || Error::InvalidId {
        kind: "iterator",
        value: iterator.to_owned(),
    };
    let encoded = iterator.strip_prefix('i').ok_or_else(invalid)?;
    let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| invalid())?;
    String::from_utf8(bytes).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterators_roundtrip_and_reject_garbage() {
        let it = encode_iterator("msg_2bWgqMTZbJKxRJvlsbgvjpvFbWS");
        assert_eq!(
            decode_iterator(&it).unwrap(),
            "msg_2bWgqMTZbJKxRJvlsbgvjpvFbWS"
        );
        assert!(decode_iterator("garbage!").is_err());
        assert!(decode_iterator("i!!").is_err());
    }

    #[test]
    fn limits_are_clamped() {
        assert_eq!(ListOptions::new().effective_limit(), 50);
        assert_eq!(ListOptions::new().limit(0).effective_limit(), 1);
        assert_eq!(ListOptions::new().limit(10_000).effective_limit(), 250);
    }
}
