//! Record encoding: one version byte, then bincode 2 (standard config) of a plain serde
//! struct. A record whose version this build does not know is an error, never a guess;
//! a schema change bumps `VERSION` and adds a decoder for the old one here.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{StoreError, Table};

pub trait Record: Serialize + DeserializeOwned {
    const VERSION: u8;

    fn encode(&self) -> Vec<u8> {
        let mut out = vec![Self::VERSION];
        // Encoding plain structs into a Vec cannot fail.
        let body =
            bincode::serde::encode_to_vec(self, bincode::config::standard()).expect("bincode encodes plain records");
        out.extend_from_slice(&body);
        out
    }

    /// A record that changed shape overrides this to read its older versions too.
    fn decode(table: Table, bytes: &[u8]) -> Result<Self, StoreError> {
        decode_version(table, bytes, Self::VERSION)
    }
}

/// Decodes `bytes` as a `T` of exactly `version` (its first byte).
pub fn decode_version<T: DeserializeOwned>(table: Table, bytes: &[u8], expected: u8) -> Result<T, StoreError> {
    let codec = |reason: String| StoreError::Codec { table: table.name(), reason };
    let (&version, body) = bytes.split_first().ok_or_else(|| codec("empty record".into()))?;
    if version != expected {
        return Err(codec(format!("unknown record version {version}, expected {expected}")));
    }
    let (value, used) =
        bincode::serde::decode_from_slice(body, bincode::config::standard()).map_err(|e| codec(e.to_string()))?;
    if used != body.len() {
        return Err(codec(format!("{} trailing bytes", body.len() - used)));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        a: u64,
        b: String,
        c: Option<uuid::Uuid>,
        price: crate::domain::money::Money,
    }

    impl Record for Sample {
        const VERSION: u8 = 3;
    }

    #[test]
    fn round_trips_and_refuses_other_versions() {
        let s = Sample {
            a: 7,
            b: "é".into(),
            c: Some(uuid::Uuid::now_v7()),
            price: crate::domain::money::Money::from_cents(1990),
        };
        let bytes = s.encode();
        assert_eq!(bytes[0], 3);
        assert_eq!(Sample::decode(Table::Carts, &bytes).unwrap(), s);
        let mut other = bytes.clone();
        other[0] = 2;
        assert!(Sample::decode(Table::Carts, &other).is_err());
        assert!(Sample::decode(Table::Carts, &[]).is_err());
        assert!(Sample::decode(Table::Carts, &bytes[..bytes.len() - 1]).is_err());
    }
}
