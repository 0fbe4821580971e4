//! Durable key-value state, private to the agent. Every write is committed
//! to the host's database before the call returns, so it survives restarts.

use crate::Error;
use crate::bindings::caxton::agent0_1_0::keyvalue;

/// Reads a value; `Ok(None)` when the key was never set.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, Error> {
    keyvalue::get(key)
}

/// Reads a value as UTF-8 text; `Ok(None)` when the key was never set.
pub fn get_string(key: &str) -> Result<Option<String>, Error> {
    match keyvalue::get(key)? {
        None => Ok(None),
        Some(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| Error::InvalidInput(format!("value of `{key}` is not UTF-8"))),
    }
}

/// Writes a value, replacing any previous one.
pub fn set(key: &str, value: impl AsRef<[u8]>) -> Result<(), Error> {
    keyvalue::set(key, value.as_ref())
}

/// Deletes a key; answers whether it existed.
pub fn delete(key: &str) -> Result<bool, Error> {
    keyvalue::delete(key)
}

/// Lists the keys that start with `prefix`, in order.
pub fn list_keys(prefix: &str) -> Result<Vec<String>, Error> {
    keyvalue::list_keys(prefix)
}
