//! Picking an endpoint for a call: the strategies and the hashing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::Slot;
use crate::discovery::{Endpoint, Endpoints};

/// How a [`Balanced`](super::Balanced) client picks the endpoint of a call
/// that carries no key (calls made through
/// [`with_key`](super::Balanced::with_key) always use consistent hashing).
///
/// ```
/// use teleport::balance::Strategy;
/// assert_eq!(Strategy::default(), Strategy::PowerOfTwoChoices);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Strategy {
    /// Two live endpoints at random; the one with fewer calls in flight
    /// wins. Follows load (a slow endpoint gets fewer calls) at the cost
    /// of two atomic loads, without the herding of "least loaded of all".
    #[default]
    PowerOfTwoChoices,
    /// Each live endpoint in turn.
    RoundRobin,
    /// At random, in proportion to each endpoint's
    /// [`weight`](crate::discovery::Endpoint::weight).
    Weighted,
}

/// 64-bit FNV-1a, then a finalizer: stable across runs, platforms and Rust
/// versions (unlike `std`'s hasher), so every client of a fleet maps a
/// key to the same endpoint.
pub(crate) fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

/// The splitmix64 finalizer: spreads every input bit over the output.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The rendezvous (highest random weight) score of an endpoint for a key:
/// the key goes to the endpoint with the highest score. Adding an endpoint
/// moves only the keys it now wins (about 1/n of them); removing one moves
/// only the keys it had. Weighted: `weight / -ln(u)` with `u` uniform in
/// (0, 1) gives each endpoint a share of the keys in proportion to its
/// weight (the logarithmic method of Schindelhauer and Schomaker).
pub(crate) fn score(key_hash: u64, endpoint_hash: u64, weight: u32) -> f64 {
    let h = mix(key_hash ^ mix(endpoint_hash));
    #[allow(clippy::cast_precision_loss)]
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    f64::from(weight.max(1)) / -u.ln()
}

/// The `k` endpoints of `set` with the highest rendezvous scores for
/// `client`: the client's subset. All of them if there are no more than `k`.
pub(crate) fn subset(set: &[Endpoint], k: usize, client: u64) -> Endpoints {
    if set.len() <= k {
        return set.iter().cloned().collect();
    }
    let mut scored: Vec<(f64, &Endpoint)> = set
        .iter()
        .map(|e| (score(client, hash(e.addr.as_bytes()), e.weight), e))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(k).map(|(_, e)| e.clone()).collect()
}

/// Picks among `live` (already filtered). `None` when it is empty.
pub(crate) fn pick(
    live: &[Arc<Slot>],
    strategy: Strategy,
    key: Option<u64>,
    rr: &AtomicUsize,
) -> Option<Arc<Slot>> {
    let n = live.len();
    if n == 0 {
        return None;
    }
    if let Some(key) = key {
        return live
            .iter()
            .max_by(|a, b| {
                score(key, a.addr_hash, a.endpoint.weight).total_cmp(&score(
                    key,
                    b.addr_hash,
                    b.endpoint.weight,
                ))
            })
            .cloned();
    }
    if n == 1 {
        return Some(Arc::clone(&live[0]));
    }
    let chosen = match strategy {
        Strategy::PowerOfTwoChoices => {
            let i = fastrand::usize(..n);
            let mut j = fastrand::usize(..n - 1);
            if j >= i {
                j += 1;
            }
            let (a, b) = (&live[i], &live[j]);
            if b.in_flight() < a.in_flight() { b } else { a }
        }
        Strategy::RoundRobin => &live[rr.fetch_add(1, Ordering::Relaxed) % n],
        Strategy::Weighted => {
            let total: u64 = live.iter().map(|s| u64::from(s.endpoint.weight)).sum();
            if total == 0 {
                &live[fastrand::usize(..n)]
            } else {
                let mut r = fastrand::u64(..total);
                live.iter()
                    .find(|s| {
                        let w = u64::from(s.endpoint.weight);
                        if r < w {
                            true
                        } else {
                            r -= w;
                            false
                        }
                    })
                    .expect("r < total")
            }
        }
    };
    Some(Arc::clone(chosen))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The endpoint a key maps to among `addrs` (all weight 100).
    fn owner<'a>(key: &str, addrs: &[&'a str]) -> &'a str {
        let k = hash(key.as_bytes());
        addrs
            .iter()
            .max_by(|a, b| {
                score(k, hash(a.as_bytes()), 100).total_cmp(&score(k, hash(b.as_bytes()), 100))
            })
            .copied()
            .unwrap()
    }

    #[test]
    fn hashing_is_stable_across_runs() {
        // Pinned: every client of a fleet, in any build, must agree.
        assert_eq!(hash(b""), mix(0xcbf2_9ce4_8422_2325));
        assert_eq!(hash(b"room-7"), hash(b"room-7"));
        assert_ne!(hash(b"room-7"), hash(b"room-8"));
    }

    #[test]
    fn adding_an_endpoint_moves_only_the_keys_it_takes() {
        let before = ["10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1", "10.0.0.4:1"];
        let after = [
            "10.0.0.1:1",
            "10.0.0.2:1",
            "10.0.0.3:1",
            "10.0.0.4:1",
            "10.0.0.5:1",
        ];
        let keys: Vec<String> = (0..10_000).map(|i| format!("room-{i}")).collect();
        let mut moved = 0;
        for key in &keys {
            let (a, b) = (owner(key, &before), owner(key, &after));
            if a != b {
                assert_eq!(b, "10.0.0.5:1", "{key} moved between old endpoints");
                moved += 1;
            }
        }
        // The new endpoint takes about a fifth of the keys, no more.
        assert!(
            (1_600..=2_400).contains(&moved),
            "{moved} of 10000 keys moved"
        );
    }

    #[test]
    fn removing_an_endpoint_moves_only_its_keys_and_spreads_them() {
        let before = ["a:1", "b:1", "c:1", "d:1"];
        let after = ["a:1", "b:1", "d:1"];
        let mut per_owner = std::collections::HashMap::new();
        for i in 0..10_000 {
            let key = format!("chan-{i}");
            let (a, b) = (owner(&key, &before), owner(&key, &after));
            if a != "c:1" {
                assert_eq!(a, b, "{key} moved though its endpoint stayed");
            }
            *per_owner.entry(a).or_insert(0) += 1;
        }
        for (addr, n) in per_owner {
            assert!(
                (2_000..=3_000).contains(&n),
                "{addr} owns {n} of 10000 keys"
            );
        }
    }

    #[test]
    fn subsets_spread_evenly_and_change_by_one_endpoint_at_most() {
        let set: Vec<Endpoint> = (0..100)
            .map(|i| Endpoint::new(format!("10.0.{i}.1:7000")))
            .collect();
        let mut load = std::collections::HashMap::new();
        for client in 0..2_000u32 {
            let id = hash(format!("client-{client}").as_bytes());
            let mine = subset(&set, 10, id);
            assert_eq!(mine.len(), 10);
            for e in mine.iter() {
                *load.entry(e.addr.clone()).or_insert(0) += 1;
            }
            // One endpoint leaves: a subset that had it swaps it for one
            // other; one that did not is unchanged.
            let gone = &set[client as usize % 100];
            let fewer: Vec<Endpoint> = set
                .iter()
                .filter(|e| e.addr != gone.addr)
                .cloned()
                .collect();
            let after = subset(&fewer, 10, id);
            let kept = mine.iter().filter(|e| after.contains(e)).count();
            if mine.contains(gone) {
                assert_eq!(kept, 9, "client-{client}");
            } else {
                assert_eq!(kept, 10, "client-{client}");
            }
        }
        // 2,000 clients x 10 = 20,000 sessions over 100 endpoints: 200 each.
        assert_eq!(load.len(), 100);
        for (addr, n) in load {
            assert!((140..=260).contains(&n), "{addr} is in {n} subsets");
        }
        assert_eq!(
            subset(&set[..5], 10, 1).len(),
            5,
            "small sets are taken whole"
        );
    }

    #[test]
    fn weights_set_the_share_of_keys() {
        let heavy = hash(b"heavy:1");
        let light = hash(b"light:1");
        let heavy_wins = (0..10_000u32)
            .filter(|i| {
                let k = hash(&i.to_le_bytes());
                score(k, heavy, 300) > score(k, light, 100)
            })
            .count();
        // 300:100 → three quarters of the keys.
        assert!((7_000..=8_000).contains(&heavy_wins), "{heavy_wins}");
    }
}
