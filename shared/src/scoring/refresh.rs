//! Values read from the store and trusted for a while: an alias's resolution, a
//! model's prediction-log setting.
//!
//! Why one reader at a time: under load, many requests find a value stale at the same
//! moment. If each re-read it, every expiry would cost a burst of store reads (on a
//! busy scorer, one per request in flight). Instead the first request to find it stale
//! re-reads it, and the others keep the stale value meanwhile, for at most half a TTL
//! more. So no value older than 1.5 TTL is used, which keeps a promotion's reach
//! within a second (see [`super::ALIAS_TTL`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

// tokio's clock, so that the tests can pause it.
use tokio::time::Instant;

use crate::registry::ModelName;

struct Entry<V> {
    value: V,
    /// When the read that produced `value` began.
    read_at: Instant,
    /// A request is re-reading it.
    refreshing: bool,
}

/// Values by model, then by name within the model (an alias, or what the value is).
pub struct Refreshed<V> {
    ttl: Duration,
    entries: Mutex<HashMap<ModelName, HashMap<String, Entry<V>>>>,
}

impl<V: Clone> Refreshed<V> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ModelName, HashMap<String, Entry<V>>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value for (`model`, `name`): the one held while it is fresh (or while another
    /// request re-reads it, briefly), else what `read` returns. A failed read is not
    /// kept, so the next request tries again.
    pub async fn get<E, F>(&self, model: &ModelName, name: &str, read: F) -> Result<V, E>
    where
        F: Future<Output = Result<V, E>>,
    {
        let now = Instant::now();
        let claimed = {
            let mut entries = self.lock();
            match entries.get_mut(model).and_then(|m| m.get_mut(name)) {
                Some(e) if now.duration_since(e.read_at) < self.ttl => return Ok(e.value.clone()),
                Some(e) if e.refreshing && now.duration_since(e.read_at) < self.ttl * 3 / 2 => {
                    return Ok(e.value.clone());
                }
                // Stale, and too stale to wait for whoever is re-reading: read too.
                Some(e) if e.refreshing => false,
                Some(e) => {
                    e.refreshing = true;
                    true
                }
                None => false,
            }
        };
        let mut claim = Claim {
            cache: self,
            model,
            name,
            armed: claimed,
        };
        let value = read.await?;
        claim.armed = false;
        let mut entries = self.lock();
        let values = entries.entry(model.clone()).or_default();
        // A slow read that began before another's does not replace its newer value.
        if values.get(name).is_none_or(|e| e.read_at <= now) {
            let fresh = Entry {
                value: value.clone(),
                read_at: now,
                refreshing: false,
            };
            values.insert(name.to_owned(), fresh);
        }
        Ok(value)
    }

    /// Every model's value named `name`.
    pub fn named(&self, name: &str) -> Vec<(ModelName, V)> {
        self.lock()
            .iter()
            .filter_map(|(m, values)| Some((m.clone(), values.get(name)?.value.clone())))
            .collect()
    }
}

/// A request's claim to re-read a value; given up if the read fails or the request is
/// dropped mid-read, so another request takes over.
struct Claim<'a, V: Clone> {
    cache: &'a Refreshed<V>,
    model: &'a ModelName,
    name: &'a str,
    armed: bool,
}

impl<V: Clone> Drop for Claim<'_, V> {
    fn drop(&mut self) {
        if self.armed
            && let Some(e) = self
                .cache
                .lock()
                .get_mut(self.model)
                .and_then(|m| m.get_mut(self.name))
        {
            e.refreshing = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::time::sleep;

    const TTL: Duration = Duration::from_millis(500);

    fn model() -> ModelName {
        ModelName::parse("m").unwrap()
    }

    /// A read that takes 20 ms and counts itself.
    async fn read(reads: &AtomicUsize, value: u32) -> Result<u32, String> {
        reads.fetch_add(1, Ordering::SeqCst);
        sleep(Duration::from_millis(20)).await;
        Ok(value)
    }

    #[tokio::test(start_paused = true)]
    async fn a_fresh_value_is_not_read_again() {
        let cache = Refreshed::new(TTL);
        let reads = AtomicUsize::new(0);
        assert_eq!(cache.get(&model(), "a", read(&reads, 1)).await, Ok(1));
        sleep(TTL / 2).await;
        assert_eq!(cache.get(&model(), "a", read(&reads, 2)).await, Ok(1));
        assert_eq!(cache.get(&model(), "b", read(&reads, 3)).await, Ok(3));
        assert_eq!(reads.load(Ordering::SeqCst), 2);
        assert_eq!(cache.named("a"), [(model(), 1)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stale_value_is_read_by_one_request_while_the_others_use_it() {
        let cache = Arc::new(Refreshed::new(TTL));
        let reads = Arc::new(AtomicUsize::new(0));
        assert_eq!(cache.get(&model(), "a", read(&reads, 1)).await, Ok(1));
        sleep(TTL).await;
        let requests: Vec<_> = (0..16)
            .map(|_| {
                let (cache, reads) = (cache.clone(), reads.clone());
                tokio::spawn(async move { cache.get(&model(), "a", read(&reads, 2)).await })
            })
            .collect();
        let mut seen = Vec::new();
        for r in requests {
            seen.push(r.await.unwrap().unwrap());
        }
        assert_eq!(
            reads.load(Ordering::SeqCst),
            2,
            "one re-read for 16 requests"
        );
        seen.sort_unstable();
        assert_eq!(seen, [[1; 15].as_slice(), &[2]].concat());
        assert_eq!(cache.get(&model(), "a", read(&reads, 3)).await, Ok(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_or_abandoned_read_lets_the_next_request_read() {
        let cache = Refreshed::new(TTL);
        let reads = AtomicUsize::new(0);
        assert_eq!(cache.get(&model(), "a", read(&reads, 1)).await, Ok(1));
        sleep(TTL).await;
        let failed = cache
            .get(&model(), "a", async { Err("store down".to_owned()) })
            .await;
        assert_eq!(failed, Err("store down".to_owned()));
        // A re-read dropped half-way (its request went away) gives up its claim too:
        // the next request reads instead of taking the stale value.
        let m = model();
        let abandoned = cache.get(&m, "a", std::future::pending::<Result<u32, String>>());
        assert!(
            tokio::time::timeout(Duration::from_millis(10), abandoned)
                .await
                .is_err()
        );
        assert_eq!(cache.get(&model(), "a", read(&reads, 4)).await, Ok(4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_value_too_stale_is_read_even_while_another_request_reads_it() {
        let cache = Arc::new(Refreshed::new(TTL));
        let reads = Arc::new(AtomicUsize::new(0));
        assert_eq!(cache.get(&model(), "a", read(&reads, 1)).await, Ok(1));
        sleep(TTL).await;
        // A slow re-read holds its claim past 1.5 TTL.
        let slow = {
            let cache = cache.clone();
            tokio::spawn(async move {
                let slow_read = async {
                    sleep(TTL).await;
                    Ok::<_, String>(9)
                };
                cache.get(&model(), "a", slow_read).await
            })
        };
        sleep(TTL / 4).await;
        assert_eq!(
            cache.get(&model(), "a", read(&reads, 5)).await,
            Ok(1),
            "stale, claimed"
        );
        sleep(TTL / 2).await;
        assert_eq!(
            cache.get(&model(), "a", read(&reads, 6)).await,
            Ok(6),
            "too stale"
        );
        assert_eq!(slow.await.unwrap(), Ok(9));
        // The slow read began first, so the newer read's value stays.
        assert_eq!(cache.get(&model(), "a", read(&reads, 7)).await, Ok(6));
    }
}
