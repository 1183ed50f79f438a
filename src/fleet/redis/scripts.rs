//! The lease protocol's Redis side: the Lua scripts that read and write a token set and its
//! lease in one step each, and the calls that run them. Each script is one atomic step on the
//! server, so two replicas never interleave a check and the write it guards.

use std::time::Duration;

use redis::{Cmd, RedisError, Value};

use super::{Failure, Redis};

/// Sets the lease to `ARGV[1]` for `ARGV[2]` ms if nobody holds it: the status `WON` when
/// this caller won, otherwise the holder's `PTTL` (ms left; -1 for a lease without expiry, -2
/// for one gone since). Won is a reply of another type than any `PTTL` answer: a lease written
/// without `PX` answers -1, and must never look won.
const ACQUIRE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return {ok = 'WON'}
end
return redis.call('PTTL', KEYS[1])
";

/// Extends the lease to `ARGV[2]` ms if `ARGV[1]` still holds it: 1 if so, else 0.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// Deletes the lease if no replica can have set it: it has no expiry, or more than `ARGV[1]`
/// ms left (replicas set and renew leases to their length). 1 if it did, else 0.
const DELETE_FOREIGN_LEASE: &str = r"
local left = redis.call('PTTL', KEYS[1])
if left == -1 or left > tonumber(ARGV[1]) then
    redis.call('DEL', KEYS[1])
    return 1
end
return 0
";

/// Deletes the key if its value is still `ARGV[1]`: 1 if it did, else 0. Releases a lease, and
/// retires a token set after a 401.
const COMPARE_AND_DELETE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
";

/// Replaces the value `ARGV[1]` with `ARGV[2]`, keeping its expiry, if it is still there: 1 if
/// it was, else 0. Retires a token set that carries a refresh token after a 401.
const COMPARE_AND_SWAP: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
    return 1
end
return 0
";

/// Writes the token set `ARGV[1]` for `ARGV[2]` ms if the token key still holds `ARGV[4]`
/// (nothing, when `ARGV[4]` is empty: a sealed value never is), and then releases the lease if
/// `ARGV[3]` still holds it, in one step: a replica that sees the lease gone finds the token
/// set there. A commit that does not write keeps the lease, so that no replica leads with the
/// older set while the committer writes its own back. Answers 2 if it wrote, plus 1 if the
/// lease was still held.
const COMMIT: &str = r"
local current = redis.call('GET', KEYS[1])
local held = redis.call('GET', KEYS[2]) == ARGV[3]
local written = 0
if (current == false and ARGV[4] == '') or current == ARGV[4] then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    written = 2
    if held then
        redis.call('DEL', KEYS[2])
    end
end
if held then
    return written + 1
end
return written
";

/// Writes the token set `ARGV[1]` for `ARGV[2]` ms if the key still holds `ARGV[3]` (nothing,
/// when `ARGV[3]` is empty): 1 if it did, else 0. Writes back a token set whose commit failed.
const WRITE_IF: &str = r"
local current = redis.call('GET', KEYS[1])
if (current == false and ARGV[3] == '') or current == ARGV[3] then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
return 0
";

/// What a commit did: whether the token set was written (the key still held what the
/// committer had read), and whether the committer's lease was still held.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Committed {
    pub(crate) written: bool,
    pub(crate) lease_held: bool,
}

/// The outcome of trying to take a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    Won,
    /// Another replica holds it, for this long at most unless it renews it.
    Held(Duration),
    /// Another holder has it, and it has no expiry: no replica of this crate writes such a
    /// lease (each sets `PX`), so a person or a tool did, and it will not go away by itself.
    HeldWithoutExpiry,
}

impl Acquired {
    /// Reads the answer of the [`ACQUIRE`] script.
    fn parse(answer: &Value) -> Result<Self, RedisError> {
        Ok(match answer {
            Value::SimpleString(status) if status == "WON" => Self::Won,
            Value::Int(-1) => Self::HeldWithoutExpiry,
            // -2 (gone since) or another negative: try again soon.
            Value::Int(left) => {
                Self::Held(u64::try_from(*left).map_or(Duration::ZERO, Duration::from_millis))
            }
            _ => {
                return Err(RedisError::from((
                    redis::ErrorKind::UnexpectedReturnType,
                    "the lease script answered neither WON nor a PTTL",
                )));
            }
        })
    }
}

impl Redis {
    /// Takes the lease for `holder` for `length`, unless another holder has it.
    pub(crate) async fn acquire(
        &self,
        lease: &str,
        holder: &str,
        length: Duration,
    ) -> Result<Acquired, Failure> {
        let mut cmd = script(ACQUIRE, &[lease]);
        cmd.arg(holder).arg(millis(length));
        let answer: Value = self.query(&cmd).await?;
        Acquired::parse(&answer).map_err(Failure::Redis)
    }

    /// Extends the lease if `holder` still holds it; `false` when it does not.
    pub(crate) async fn renew(
        &self,
        lease: &str,
        holder: &str,
        length: Duration,
    ) -> Result<bool, Failure> {
        let mut cmd = script(RENEW, &[lease]);
        cmd.arg(holder).arg(millis(length));
        Ok(self.query::<i64>(&cmd).await? == 1)
    }

    /// Deletes the lease at `key` if no replica whose leases last `lease` can have set it;
    /// `true` when it did.
    pub(crate) async fn delete_foreign_lease(
        &self,
        key: &str,
        lease: Duration,
    ) -> Result<bool, Failure> {
        let mut cmd = script(DELETE_FOREIGN_LEASE, &[key]);
        cmd.arg(millis(lease));
        Ok(self.query::<i64>(&cmd).await? == 1)
    }

    /// Deletes `key` if it still holds `value`; `true` when it did.
    pub(crate) async fn compare_and_delete(
        &self,
        key: &str,
        value: &[u8],
    ) -> Result<bool, Failure> {
        let mut cmd = script(COMPARE_AND_DELETE, &[key]);
        cmd.arg(value);
        Ok(self.query::<i64>(&cmd).await? == 1)
    }

    /// Replaces `old` at `key` with `new`, keeping its expiry, if `key` still holds `old`;
    /// `true` when it did.
    pub(crate) async fn compare_and_swap(
        &self,
        key: &str,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, Failure> {
        let mut cmd = script(COMPARE_AND_SWAP, &[key]);
        cmd.arg(old).arg(new);
        Ok(self.query::<i64>(&cmd).await? == 1)
    }

    /// Deletes `key` if it still holds `value`, in a task of its own: for a lease whose holder
    /// was dropped, which cannot wait. Does nothing without a connection or a runtime.
    pub(crate) fn spawn_compare_and_delete(&self, key: &str, value: &[u8]) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Some(mut connection) = self
            .connection
            .try_lock()
            .ok()
            .and_then(|slot| slot.clone())
        else {
            return;
        };
        let mut cmd = script(COMPARE_AND_DELETE, &[key]);
        cmd.arg(value);
        let timeout = self.timeout;
        runtime.spawn(async move {
            let deleting = cmd.query_async::<i64>(&mut connection);
            let _ = tokio::time::timeout(timeout, deleting).await;
        });
    }

    /// Writes `value` at `token` for `ttl` if `token` still holds `expected` (nothing, when
    /// `None`), and releases `lease` if `holder` still holds it.
    pub(crate) async fn commit(
        &self,
        token: &str,
        lease: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        ttl: Duration,
        holder: &str,
    ) -> Result<Committed, Failure> {
        let mut cmd = script(COMMIT, &[token, lease]);
        cmd.arg(value)
            .arg(millis(ttl))
            .arg(holder)
            .arg(expected.unwrap_or_default());
        let answer = self.query::<i64>(&cmd).await?;
        Ok(Committed {
            written: answer & 2 != 0,
            lease_held: answer & 1 != 0,
        })
    }

    /// Writes `value` at `key` for `ttl` if `key` still holds `expected` (nothing, when
    /// `None`); `true` when it did.
    pub(crate) async fn write_if(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, Failure> {
        let mut cmd = script(WRITE_IF, &[key]);
        cmd.arg(value)
            .arg(millis(ttl))
            .arg(expected.unwrap_or_default());
        Ok(self.query::<i64>(&cmd).await? == 1)
    }
}

/// `EVAL` of `source` over `keys`; arguments follow. Sent whole each time: Redis caches it,
/// and unlike `EVALSHA` it needs no reloading after a restart or on a new cluster node.
fn script(source: &str, keys: &[&str]) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(source).arg(keys.len()).arg(keys);
    cmd
}

/// The longest expiry the fleet sets in Redis, for a token set or a lease, whatever the token's
/// lifetime and the fleet's settings: Redis refuses a `PX` past `i64::MAX` milliseconds from
/// now, and would fail every write of a fleet built with `Duration::MAX`.
pub(crate) const LONGEST_EXPIRY: Duration = Duration::from_secs(365 * 24 * 3600);

/// `duration` as the milliseconds of a `PX`: at least 1, at most [`LONGEST_EXPIRY`].
fn millis(duration: Duration) -> u64 {
    let clamped = duration.min(LONGEST_EXPIRY);
    u64::try_from(clamped.as_millis()).map_or(1, |ms| ms.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_won_status_is_a_won_lease() {
        let won = Value::SimpleString("WON".to_owned());
        assert_eq!(Acquired::parse(&won).unwrap(), Acquired::Won);
        // What PTTL answers for a lease someone set without PX: held, not won.
        assert_eq!(
            Acquired::parse(&Value::Int(-1)).unwrap(),
            Acquired::HeldWithoutExpiry
        );
        assert_eq!(
            Acquired::parse(&Value::Int(-2)).unwrap(),
            Acquired::Held(Duration::ZERO)
        );
        assert_eq!(
            Acquired::parse(&Value::Int(1500)).unwrap(),
            Acquired::Held(Duration::from_millis(1500))
        );
        for other in [
            Value::Nil,
            Value::Okay,
            Value::SimpleString("OK".to_owned()),
            Value::BulkString(b"WON".to_vec()),
        ] {
            assert!(Acquired::parse(&other).is_err(), "{other:?}");
        }
    }

    #[test]
    fn every_expiry_sent_to_redis_is_between_a_millisecond_and_a_year() {
        let year_ms = 365 * 24 * 3600 * 1000;
        assert_eq!(millis(Duration::MAX), year_ms);
        assert_eq!(millis(LONGEST_EXPIRY + Duration::from_secs(1)), year_ms);
        assert_eq!(millis(Duration::from_secs(10)), 10_000);
        assert_eq!(millis(Duration::ZERO), 1);
        assert_eq!(millis(Duration::from_micros(10)), 1);
    }
}
