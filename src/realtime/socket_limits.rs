//! How many sockets one user (token `sub`) and one source address may hold open at once
//! (`--ws-max-per-user`, `--ws-max-per-address`), so that a thousand sockets cannot
//! multiply any per-socket cost. A socket takes a [`SocketSlot`] before it upgrades and
//! gives it back when its session ends (the slot's `Drop`).

use std::net::IpAddr;
use std::sync::Arc;

use dashmap::DashMap;

/// The counters; cheap to clone (shared).
#[derive(Clone)]
pub struct SocketLimits {
    inner: Arc<Inner>,
}

struct Inner {
    per_user: usize,
    per_address: usize,
    users: DashMap<String, usize>,
    addresses: DashMap<IpAddr, usize>,
}

/// One open socket's place under the caps; released on drop.
pub struct SocketSlot {
    inner: Arc<Inner>,
    user: Option<Box<str>>,
    address: Option<IpAddr>,
}

impl SocketLimits {
    pub fn new(per_user: usize, per_address: usize) -> Self {
        SocketLimits {
            inner: Arc::new(Inner {
                per_user,
                per_address,
                users: DashMap::new(),
                addresses: DashMap::new(),
            }),
        }
    }

    /// Takes a slot for a socket of `user` (None: the secret or public key without a
    /// token) from `address`, or says which cap is reached.
    pub fn acquire(
        &self,
        user: Option<&str>,
        address: Option<IpAddr>,
    ) -> Result<SocketSlot, String> {
        let inner = &self.inner;
        if let Some(user) = user {
            let mut count = inner.users.entry(user.to_owned()).or_insert(0);
            if *count >= inner.per_user {
                return Err(format!(
                    "this user already has {} open sockets (the limit)",
                    inner.per_user
                ));
            }
            *count += 1;
        }
        // From here on, the slot's Drop gives back what was taken.
        let mut slot = SocketSlot {
            inner: inner.clone(),
            user: user.map(Box::from),
            address: None,
        };
        if let Some(address) = address {
            let mut count = inner.addresses.entry(address).or_insert(0);
            if *count >= inner.per_address {
                return Err(format!(
                    "this address already has {} open sockets (the limit)",
                    inner.per_address
                ));
            }
            *count += 1;
            slot.address = Some(address);
        }
        Ok(slot)
    }

    /// Sockets open for `user` (for tests and stats).
    pub fn user_count(&self, user: &str) -> usize {
        self.inner.users.get(user).map_or(0, |c| *c)
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        if let Some(user) = self.user.take() {
            self.inner.users.remove_if_mut(&*user, |_, count| {
                *count = count.saturating_sub(1);
                *count == 0
            });
        }
        if let Some(address) = self.address.take() {
            self.inner.addresses.remove_if_mut(&address, |_, count| {
                *count = count.saturating_sub(1);
                *count == 0
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_per_user_and_per_address_and_given_back_on_drop() {
        let limits = SocketLimits::new(2, 3);
        let here = Some(IpAddr::from([127, 0, 0, 1]));
        let a = limits.acquire(Some("u1"), here).expect("first");
        let b = limits.acquire(Some("u1"), here).expect("second");
        assert!(limits.acquire(Some("u1"), here).is_err(), "third for u1");
        let c = limits.acquire(Some("u2"), here).expect("u2");
        assert!(
            limits.acquire(Some("u3"), here).is_err(),
            "fourth from the address"
        );
        assert_eq!(
            limits.user_count("u3"),
            0,
            "a refused slot gives back its user count"
        );
        drop(a);
        let d = limits
            .acquire(Some("u1"), here)
            .expect("after a slot is freed");
        drop((b, c, d));
        assert_eq!(limits.user_count("u1"), 0);
        assert!(limits.inner.addresses.is_empty());
    }
}
