//! `GET /v1/tenants`: the tenants a token sees, a page at a time, searched and sorted
//! on the server, so that a platform of 100,000 tenants lists as fast as one of ten.

use std::sync::atomic::Ordering::Relaxed;

use http::StatusCode;
use serde_json::json;

use super::reply::{error, json, Reply};
use super::Admin;
use crate::engineio::parse_query;
use crate::store::tokens::Access;
use crate::tenants::{TenantSlot, TenantStats};

/// A page's size unless asked for another, and the most one may be.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// What the list may be sorted by: the name, or one of the numbers a tenant shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortBy {
    Name,
    Sockets,
    Events,
    Faults,
    Restarts,
    MemoryBytes,
    Instances,
}

impl SortBy {
    fn named(name: &str) -> Option<SortBy> {
        Some(match name {
            "name" => SortBy::Name,
            "sockets" => SortBy::Sockets,
            "events" => SortBy::Events,
            "faults" => SortBy::Faults,
            "restarts" => SortBy::Restarts,
            "memory_bytes" => SortBy::MemoryBytes,
            "instances" => SortBy::Instances,
            _ => return None,
        })
    }

    /// The number a tenant sorts by (none for the name, which sorts by itself).
    fn key(self, stats: &TenantStats) -> u64 {
        match self {
            SortBy::Name => 0,
            SortBy::Sockets => stats.sockets.load(Relaxed),
            SortBy::Events => stats.events.load(Relaxed),
            SortBy::Faults => stats.faults.load(Relaxed),
            SortBy::Restarts => stats.restarts(),
            SortBy::MemoryBytes => stats.memory_bytes.load(Relaxed),
            SortBy::Instances => stats.instances.load(Relaxed),
        }
    }
}

/// The query of a listing.
#[derive(Debug, PartialEq)]
struct Listing {
    /// Names containing this (ASCII case ignored); empty for all.
    search: String,
    sort: SortBy,
    descending: bool,
    offset: usize,
    limit: usize,
}

impl Listing {
    /// Reads `?q=&sort=&order=&offset=&limit=`; what is not understood is an error that
    /// says which.
    fn read(query: Option<&str>) -> Result<Listing, String> {
        let mut listing = Listing {
            search: String::new(),
            sort: SortBy::Name,
            descending: false,
            offset: 0,
            limit: DEFAULT_LIMIT,
        };
        for (name, value) in parse_query(query.unwrap_or_default()) {
            match name.as_str() {
                "q" => listing.search = value.to_ascii_lowercase(),
                "sort" => {
                    listing.sort = SortBy::named(&value).ok_or(format!(
                        "sort is one of name, sockets, events, faults, restarts, memory_bytes, instances, not {value:?}"
                    ))?;
                }
                "order" => {
                    listing.descending = match value.as_str() {
                        "asc" => false,
                        "desc" => true,
                        _ => return Err(format!("order is asc or desc, not {value:?}")),
                    };
                }
                "offset" => {
                    listing.offset = value
                        .parse()
                        .map_err(|_| format!("offset is a count, not {value:?}"))?;
                }
                "limit" => {
                    listing.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or(format!("limit is 1 to {MAX_LIMIT}, not {value:?}"))?;
                }
                _ => {}
            }
        }
        Ok(listing)
    }
}

impl Admin {
    /// `GET /v1/tenants?q=&sort=&order=&offset=&limit=`: the tenants `access` sees whose
    /// names contain `q`, sorted by `sort` (`name` by default; then by name), from
    /// `offset`, at most `limit` (100 by default, 1,000 at most), with their `total`
    /// and the `next_offset` (null after the last page). Only the page is described.
    pub(super) fn list(&self, access: &Access, query: Option<&str>) -> Reply {
        let listing = match Listing::read(query) {
            Ok(listing) => listing,
            Err(message) => return error(StatusCode::BAD_REQUEST, "bad_query", message),
        };
        let search = listing.search.as_bytes();
        let keep = |name: &str| {
            let seen = match access {
                Access::Operator => true,
                Access::Tenant(own) => own == name,
            };
            seen && (search.is_empty()
                || name
                    .as_bytes()
                    .windows(search.len())
                    .any(|part| part.eq_ignore_ascii_case(search)))
        };
        let sort = listing.sort;
        let key = |slot: &TenantSlot| sort.key(slot.current().stats());
        let (names, total) = self.tenants.page(
            keep,
            (sort != SortBy::Name).then_some(&key as &dyn Fn(&TenantSlot) -> u64),
            listing.descending,
            (listing.offset, listing.limit),
        );
        let tenants: Vec<_> = names
            .iter()
            .filter_map(|name| self.describe(name))
            .collect();
        let start = listing.offset.min(total);
        let end = start.saturating_add(names.len());
        let next = (end < total).then_some(end);
        json(
            StatusCode::OK,
            json!({ "tenants": tenants, "total": total, "offset": start, "next_offset": next }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_reads_its_query_and_says_what_it_cannot() {
        let listing = Listing::read(Some("q=Ac&sort=sockets&order=desc&offset=200&limit=50"))
            .expect("a valid query");
        assert_eq!(listing.search, "ac");
        assert_eq!(listing.sort, SortBy::Sockets);
        assert!(listing.descending);
        assert_eq!((listing.offset, listing.limit), (200, 50));
        let plain = Listing::read(None).expect("no query");
        assert_eq!(
            (plain.sort, plain.descending, plain.offset, plain.limit),
            (SortBy::Name, false, 0, DEFAULT_LIMIT)
        );
        for (bad, says) in [
            ("sort=size", "sort"),
            ("order=up", "order"),
            ("offset=-1", "offset"),
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
        ] {
            let refused = Listing::read(Some(bad));
            assert!(
                refused.as_ref().is_err_and(|e| e.starts_with(says)),
                "{bad}: {refused:?}"
            );
        }
    }
}
